"""Reading and writing audio files (the I/O around the pure feature functions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class AudioDecodeError(ValueError):
    """A file that cannot be decoded into a waveform."""

    stage = "decode"


def load_audio(path: str | Path, sr: int) -> np.ndarray:
    """Decode ``path`` to a mono float32 waveform at ``sr`` Hz (soundfile + soxr).

    Multi-channel audio is averaged to mono; other rates are resampled with soxr's
    high-quality setting.
    """
    try:
        data, native_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for bad files
        raise AudioDecodeError(f"{path}: cannot decode audio ({type(exc).__name__}: {exc})") from exc
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{path}: file holds no samples")
    y = data.mean(axis=1)
    if native_sr != sr:
        y = soxr.resample(y, native_sr, sr, quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32)


def write_wav(path: str | Path, y: np.ndarray, sr: int) -> None:
    """Write a mono 16-bit PCM WAV."""
    sf.write(str(path), np.asarray(y, dtype=np.float32), sr, subtype="PCM_16")
