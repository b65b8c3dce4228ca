"""librosa's numba kernels are compiled by one process before any worker starts (numba issue #10128)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def warm_cache_without_the_beat_tracker(cache_dir: Path) -> None:
    """Copy the venv's cached librosa kernels (``make`` compiles them) into ``cache_dir``, all but the beat
    tracker's dynamic program: the test then compiles that pair cold (the one numba issue #10128 broke),
    not every kernel (~50 s)."""
    import librosa
    from numba.core.caching import _CacheLocator

    for cached in Path(librosa.__file__).parent.rglob("__pycache__/*.nb[ic]"):
        if cached.name.startswith(("beat.__beat_track_dp", "guf-beat.__beat_track_dp")):
            continue
        source_dir = cached.parent.parent
        target = cache_dir / _CacheLocator.get_suitable_cache_subpath(str(source_dir / "any.py"))
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cached, target / cached.name)


@pytest.mark.slow  # a cold numba compile in a fresh process
def test_compile_jit_kernels_fills_the_numba_cache_for_the_beat_tracker(tmp_path):
    warm_cache_without_the_beat_tracker(tmp_path)
    assert not any(p.name.startswith("guf-beat.__beat_track_dp") for p in tmp_path.rglob("*.nbi"))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    code = "from pipeline.features.audio import compile_jit_kernels; compile_jit_kernels()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    cached = {p.name for p in tmp_path.rglob("*.nbi")}
    # the gufunc and its wrapper: the pair that concurrent first compiles can mismatch
    assert any(n.startswith("beat.__beat_track_dp") for n in cached), cached
    assert any(n.startswith("guf-beat.__beat_track_dp") for n in cached), cached


def test_the_audio_stage_compiles_before_its_workers_start(project, monkeypatch):
    from pipeline.features import audio
    from pipeline.params import load_params
    from pipeline.stages import audio_features, clips

    calls = []
    monkeypatch.setattr(audio, "compile_jit_kernels", lambda config=None: calls.append("compile"))
    original = clips.ClipStores.run
    monkeypatch.setattr(
        clips.ClipStores, "run", lambda self, *a, **k: calls.append("workers") or original(self, *a, **k)
    )
    audio_features.run(load_params("params.yaml"))
    assert calls == ["compile", "workers"]
