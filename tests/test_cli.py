import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import COMMANDS, main
from pipeline.stages import AUDIO_STORE


def test_inspect_shows_groups_and_metadata(project, capsys):
    assert main(["inspect", str(AUDIO_STORE)]) == 0
    out = capsys.readouterr().out
    assert "features/audio.parquet: 40 rows x 1121 columns" in out
    assert "mfcc_delta2" in out and '"store": "audio"' in out and "manifest_sha256" in out


def test_bad_params_give_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("train:\n  folds: 5\n")
    assert main(["prepare"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mmer prepare: error: params: unknown key 'train.folds'")


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "mmer"  # the console-script entry point, not python -m
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("mmer ")


def test_cache_clear(project, capsys):
    assert main(["cache", "clear"]) == 0
    assert "removed 160 cached clip results" in capsys.readouterr().out  # 40 audio, essentia, musicnn, texts
    assert not (project / ".mmer_cache").exists()


def test_every_sub_command_has_a_function_and_help_stays_light(capsys):
    with pytest.raises(SystemExit, match="0"):
        main(["--help"])
    listed = re.search(r"\{([a-z,-]+)\}", capsys.readouterr().out).group(1).split(",")
    assert sorted(listed) == sorted(COMMANDS)
    heavy = ("torch", "librosa", "lightgbm", "pandas")
    code = f"import sys, pipeline.cli; print([m for m in {heavy} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # each command imports its stage's libraries when it runs
