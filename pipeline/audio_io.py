"""Reading and writing audio files (the I/O around the pure feature functions)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from pipeline.sources import is_url, open_source
from pipeline.store import atomic_path

PREROLL_FRAMES = 16384  # decoded and dropped before a seek target in MP3/OGG: 8192 measured enough for MP3


class AudioDecodeError(ValueError):
    """A file that cannot be decoded into a waveform."""

    stage = "decode"


def read_audio(
    path: str | Path, sr: int, offset_s: float = 0.0, duration_s: float | None = None
) -> tuple[np.ndarray, float | None]:
    """Decode ``path``'s window to a mono float32 waveform at ``sr`` Hz (soundfile + soxr).

    Only ``[offset_s, offset_s + duration_s)`` is read (to the end of the file when
    ``duration_s`` is None), so long recordings never sit in memory whole; ``path`` may
    be an fsspec URL (:mod:`pipeline.sources`). WAV, FLAC,
    OGG/Vorbis and MP3 (libsndfile >= 1.1) decode natively. Channels are averaged to
    mono; other rates are resampled with soxr's high-quality setting.

    Returns the waveform and, when the file goes on past the window, its length in
    seconds from the header (an estimate for MP3 without a length tag), else None.
    Whether it goes on is decided exactly, by asking for one frame more than the window.
    """
    try:
        with contextlib.ExitStack() as opened:
            source = opened.enter_context(open_source(path)) if is_url(path) else str(path)
            f = opened.enter_context(sf.SoundFile(source))
            native_sr = f.samplerate
            start = min(round(offset_s * native_sr), f.frames)
            frames = -1 if duration_s is None else round(duration_s * native_sr)
            # Compressed decoders need a few frames to settle after a seek: start early, drop them.
            preroll = min(start, PREROLL_FRAMES) if f.format in ("MP3", "OGG") else 0
            if start:
                f.seek(start - preroll)
            data = f.read(frames=frames if frames < 0 else frames + preroll + 1, dtype="float32", always_2d=True)
            data = data[preroll:]
            source_s = f.frames / native_sr
    except Exception as exc:  # soundfile raises several types for bad files
        raise AudioDecodeError(f"{path}: cannot decode audio ({type(exc).__name__}: {exc})") from exc
    cut_s = None
    if 0 <= frames < data.shape[0]:
        data, cut_s = data[:frames], max(source_s, offset_s + duration_s)
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{path}: no samples in the requested window (offset {offset_s} s)")
    y = data.mean(axis=1)
    if native_sr != sr:
        y = soxr.resample(y, native_sr, sr, quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32), cut_s


def load_audio(path: str | Path, sr: int, offset_s: float = 0.0, duration_s: float | None = None) -> np.ndarray:
    """The waveform of :func:`read_audio` alone."""
    return read_audio(path, sr, offset_s, duration_s)[0]


def write_wav(path: str | Path, y: np.ndarray, sr: int) -> None:
    """Write a mono 16-bit PCM WAV atomically."""
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.asarray(y, dtype=np.float32), sr, subtype="PCM_16", format="WAV")
