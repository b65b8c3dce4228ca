"""librosa's numba kernels are compiled by one process before any worker starts (numba issue #10128)."""

import os
import subprocess
import sys

import pytest


@pytest.mark.slow  # a cold numba compile in a fresh process
def test_compile_jit_kernels_fills_the_numba_cache_for_the_beat_tracker(tmp_path):
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
