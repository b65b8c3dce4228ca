"""Music-like WAV clips for the benchmarks (the demo corpus's renderer, 44.1 kHz stereo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR_IN = 44100


def write_music_wavs(folder: Path, n: int, seconds: float, seed: int) -> list[str]:
    """``n`` stereo 16-bit WAVs of ``seconds`` each in ``folder``; their paths."""
    from pipeline.datasets.demo import render_audio

    paths = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        left, _ = render_audio(rng.uniform(-1, 1), rng.uniform(-1, 1), rng, SR_IN, seconds)
        path = folder / f"clip{i:03d}.wav"
        sf.write(path, np.stack([left, 0.9 * left], axis=1) / 1.1, SR_IN, subtype="PCM_16")
        paths.append(str(path))
    return paths
