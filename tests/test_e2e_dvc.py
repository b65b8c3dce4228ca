"""One real `dvc repro` of the whole graph on a tiny corpus, in a fresh git repo."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, write_params

pytestmark = pytest.mark.slow


def run(cmd, cwd, env):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def init_project(tmp_path: Path, overrides: dict) -> tuple[Path, dict]:
    """A fresh git + DVC repo holding the pipeline and params; returns (dvc executable, environment)."""
    for name in ("dvc.yaml", "pipeline"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    write_params(tmp_path, overrides)
    bin_dir = Path(sys.executable).parent
    env = {  # Python's defaults: compiled .pyc files land beside the code DVC hashes
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(tmp_path),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    run(["git", "init", "-q"], tmp_path, env)
    run([str(bin_dir / "dvc"), "init", "-q"], tmp_path, env)
    shutil.copy(REPO / ".dvcignore", tmp_path / ".dvcignore")
    run([str(bin_dir / "dvc"), "config", "core.analytics", "false"], tmp_path, env)
    return bin_dir, env


def test_dvc_repro_end_to_end(tmp_path):
    bin_dir, env = init_project(tmp_path, {"eval": {"n_folds": 3}})
    run([str(bin_dir / "dvc"), "repro"], tmp_path, env)

    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    every = ["audio", "concat", "late", "mean", "product", "text"]
    assert {m: sorted(f) for m, f in metrics.items()} == {
        **{m: every for m in ("lgbm", "logreg", "mlp")},
        "multitask": ["concat", "mean", "product"],
        "cnn": ["audio", "concat", "late", "mean", "product"],
        "dummy": ["none"],
        **{f"{m}@musicnn": ["audio", "concat"] for m in ("lgbm", "logreg", "mlp")},
    }
    assert metrics["lgbm@musicnn"]["concat"]["best_unimodal"] in ("lgbm@musicnn-audio", "lgbm-text")
    for model, fusions in metrics.items():
        for fusion, summary in fusions.items():
            reads_text = model != "dummy" and fusion != "audio"
            assert set(summary) == {
                "f1_macro",
                "auc_roc_macro",
                "accuracy",
                "balanced_accuracy",
                "precision_macro",
                "recall_macro",
                "f1_macro_ci95",
                "f1_macro_pooled",
                "p_value_vs_best_unimodal",
                "best_unimodal",
                "f1_delta_vs_best_unimodal",
                "audio_sets",
            } | ({"f1_macro_text_removed"} if reads_text else set())
            assert summary["f1_macro"]["std"] > 0 or model == "dummy"  # real per-fold spread, not a constant
    assert (tmp_path / "reports" / "leaderboard.md").read_text().count("\n| ") == 34  # header, 32 rows, chance
    assert (tmp_path / "models" / "cnn-late" / "folds" / "fold2" / "audio" / "head.pt").exists()
    assert (tmp_path / "dvc.lock").exists()

    assert (tmp_path / "reports" / "index.html").read_text().count("<svg") >= 7
    shown = run([str(bin_dir / "dvc"), "metrics", "show"], tmp_path, env)
    assert "reports/metrics.json" in shown and "f1_macro" in shown
    run([str(bin_dir / "dvc"), "plots", "show", "--out", str(tmp_path / "dvc_plots")], tmp_path, env)
    assert (tmp_path / "dvc_plots" / "index.html").exists()

    again = run([str(bin_dir / "dvc"), "repro"], tmp_path, env)
    assert "Running stage" not in again
    status = run([str(bin_dir / "dvc"), "status"], tmp_path, env)
    assert "up to date" in status


def single_modality_repro(tmp_path: Path, dataset: dict) -> tuple[dict, str]:
    bin_dir, env = init_project(tmp_path, {"eval": {"n_folds": 3}, "essentia": {"enabled": False}, "dataset": dataset})
    run([str(bin_dir / "dvc"), "repro"], tmp_path, env)
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    return metrics, (tmp_path / "reports" / "leaderboard.md").read_text()


def test_audio_only_corpus_through_dvc_repro(tmp_path):
    import numpy as np
    import soundfile as sf

    for label, pitch in (("low", 220.0), ("high", 880.0)):
        folder = tmp_path / "corpus" / label
        folder.mkdir(parents=True)
        for k in range(9):
            t = np.arange(33075) / 22050
            y = 0.3 * np.sin(2 * np.pi * pitch * (1 + 0.02 * k) * t) + 0.01 * np.random.default_rng(k).normal(
                size=t.size
            )
            sf.write(folder / f"clip{k}.wav", y.astype(np.float32), 22050)
    metrics, board = single_modality_repro(tmp_path, {"kind": "folders", "root": "corpus"})
    assert {m: sorted(f) for m, f in metrics.items()} == {
        "cnn": ["audio"],
        "dummy": ["none"],
        "lgbm": ["audio"],
        "logreg": ["audio"],
        "mlp": ["audio"],
        **{f"{m}@musicnn": ["audio"] for m in ("lgbm", "logreg", "mlp")},
    }
    assert metrics["logreg"]["audio"]["f1_macro"]["mean"] > 0.8  # pitch separates the classes
    assert "no text in this corpus: 25 variants that need it were skipped" in board


def test_text_only_corpus_through_dvc_repro(tmp_path):
    import pandas as pd

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    words = {"joy": "sunny dancing laughter", "gloom": "lonely tears grey"}
    rows = [{"clip_id": f"{lab}{k}", "text": f"{w} {k}", "label": lab} for lab, w in words.items() for k in range(9)]
    pd.DataFrame(rows).to_csv(corpus / "texts.csv", index=False)
    metrics, board = single_modality_repro(
        tmp_path, {"kind": "manifest", "root": "corpus", "manifest": "corpus/texts.csv"}
    )
    assert {m: sorted(f) for m, f in metrics.items()} == {
        "dummy": ["none"],
        "lgbm": ["text"],
        "logreg": ["text"],
        "mlp": ["text"],
    }
    assert metrics["logreg"]["text"]["f1_macro"]["mean"] > 0.8
    assert "no audio in this corpus: 29 variants that need it were skipped" in board
