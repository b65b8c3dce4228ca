"""Clip-level audio descriptors and the frame-level log-mel: one pure function per clip.

:func:`extract_clip` takes a mono waveform and returns plain numpy arrays; no I/O.
All spectral features share one STFT: its power feeds the mel filterbanks (-> log-mel
-> MFCC; band energies; the log-mel store), spectral shape statistics, RMS and chroma
(-> tonnetz); the log-mel feeds the onset envelope (spectral flux), which feeds the
beat tracker (tempo and beat intervals).

MFCCs follow ``librosa.feature.mfcc(y=...)`` exactly (128 mels, ``power_to_db`` with
``top_db=80``), so they match a plain librosa loop. Chroma is computed with
``tuning=0`` (no tuning estimation) and tonnetz from that STFT chroma rather than
librosa's default CQT chroma: both are several times cheaper.

Each frame series is summarised by the statistics in ``config.stats``; columns are
named ``<feature>[_<index>]_<stat>`` with 0-based, zero-padded indices
(``mfcc_03_std``; ``chroma_09_mean`` is pitch class A, C being 0).

librosa is imported by the functions that compute, so the settings load without it
(params, ``mmer inspect``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pipeline.features import ClipError

ALL_STATS = ("mean", "std", "min", "max", "skew", "kurtosis", "p10", "p50", "p90")
BEAT_FEATURES = ("tempo_bpm", "beat_count", "beat_interval_mean", "beat_interval_std")


@dataclass(frozen=True)
class AudioFeatureConfig:
    """Extraction settings (``audio`` in params.yaml).

    offset_s, duration_s: window of each file to analyse (None = to the end).
    max_duration_s: cap on that window when duration_s is None, so an hour-long file
    never sits in memory whole: longer files are analysed over their first
    max_duration_s seconds after offset_s, and the crop is recorded (None = no cap).
    n_mels: mel bands behind the MFCCs (librosa's default 128). n_bands: log-mel
    bands summarised as ``melband_XX``. melspec_n_mels, melspec_frames: shape of the
    frame-level log-mel store (frames at ``hop_length``; longer clips are cropped,
    shorter ones padded). hpss: add the harmonic-energy ratio (median-filter HPSS on
    the mel spectrogram, not the full STFT; off by default for its cost).
    """

    sr: int = 22050
    offset_s: float = 0.0
    duration_s: float | None = None
    max_duration_s: float | None = 600.0
    n_fft: int = 2048
    hop_length: int = 512
    n_mfcc: int = 20
    n_mels: int = 128
    n_bands: int = 32
    fmax: float | None = None
    stats: tuple[str, ...] = ALL_STATS
    hpss: bool = False
    melspec_n_mels: int = 96
    melspec_frames: int = 432
    min_duration_s: float = 0.5

    def __post_init__(self) -> None:
        unknown = sorted(set(self.stats) - set(ALL_STATS))
        if unknown or not self.stats:
            raise ValueError(f"audio.stats: unknown or empty {unknown}; choose from {list(ALL_STATS)}")
        if self.offset_s < 0:
            raise ValueError(f"audio.offset_s must be >= 0, got {self.offset_s}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"audio.duration_s must be > 0 or null (to the end), got {self.duration_s}")
        if self.max_duration_s is not None and self.max_duration_s <= 0:
            raise ValueError(f"audio.max_duration_s must be > 0 or null (no cap), got {self.max_duration_s}")

    @property
    def window_s(self) -> float | None:
        """Seconds read from each file: duration_s, else the max_duration_s cap (None = all)."""
        return self.duration_s if self.duration_s is not None else self.max_duration_s


def series_layout(config: AudioFeatureConfig) -> list[tuple[str, int]]:
    """(series name, number of rows) for every summarised frame series, in column order."""
    layout = [
        ("mfcc", config.n_mfcc),
        ("mfcc_delta", config.n_mfcc),
        ("mfcc_delta2", config.n_mfcc),
        ("melband", config.n_bands),
        ("spectral_centroid", 1),
        ("spectral_bandwidth", 1),
        ("spectral_rolloff", 1),
        ("spectral_flatness", 1),
        ("spectral_contrast", 7),
        ("onset_strength", 1),
        ("zcr", 1),
        ("rms", 1),
        ("chroma", 12),
        ("tonnetz", 6),
    ]
    if config.hpss:
        layout.append(("harmonic_ratio", 1))
    return layout


def feature_names(config: AudioFeatureConfig) -> list[str]:
    """Ordered descriptor names of ``features/audio.parquet`` (without ``clip_id``)."""
    names = []
    for series, rows in series_layout(config):
        labels = [series] if rows == 1 else [f"{series}_{i:02d}" for i in range(rows)]
        names.extend(f"{label}_{stat}" for label in labels for stat in config.stats)
    return names + list(BEAT_FEATURES)


def summarize_series(values: np.ndarray, stats: tuple[str, ...]) -> np.ndarray:
    """Statistics over time of a (rows, frames) series -> (rows, len(stats)), float64.

    One sort per row gives min, max and the percentiles (linear interpolation, as
    ``np.percentile``). Skew and (Fisher) kurtosis of a constant row are 0, not NaN.
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[1]
    mean = x.mean(axis=1)
    centered = x - mean[:, None]
    squared = centered * centered
    m2 = squared.mean(axis=1)
    flat = m2 <= (np.finfo(np.float64).resolution * mean) ** 2  # scipy's test for a constant row
    safe_m2 = np.where(flat, 1.0, m2)
    ordered = np.sort(x, axis=1)

    def percentile(q: float) -> np.ndarray:
        position = q * (n - 1)
        lo = int(np.floor(position))
        hi = min(lo + 1, n - 1)
        return ordered[:, lo] + (position - lo) * (ordered[:, hi] - ordered[:, lo])

    columns = {
        "mean": lambda: mean,
        "std": lambda: np.sqrt(m2),
        "min": lambda: ordered[:, 0],
        "max": lambda: ordered[:, -1],
        "skew": lambda: np.where(flat, 0.0, (squared * centered).mean(axis=1) / safe_m2**1.5),
        "kurtosis": lambda: np.where(flat, 0.0, (squared * squared).mean(axis=1) / safe_m2**2 - 3.0),
        "p10": lambda: percentile(0.10),
        "p50": lambda: percentile(0.50),
        "p90": lambda: percentile(0.90),
    }
    return np.stack([columns[s]() for s in stats], axis=1)


@lru_cache(maxsize=16)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmax: float | None) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=fmax, dtype=np.float32)


@lru_cache(maxsize=4)
def _chroma_basis(sr: int, n_fft: int) -> np.ndarray:
    import librosa

    return librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=0.0, dtype=np.float32)


def _normalize_frames(x: np.ndarray, order: float) -> np.ndarray:
    """Scale each column to unit L1 (order 1) or max (order inf) norm; near-silent columns stay as they are."""
    norm = np.abs(x).sum(axis=0) if order == 1 else np.abs(x).max(axis=0)
    return x / np.where(norm < np.finfo(x.dtype).tiny, 1.0, norm).astype(x.dtype)


def zero_crossing_rate(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.zero_crossing_rate`` (centred frames, edge padding) from one cumulative sum.

    librosa frames the signal first and scans every frame (each sample frame_length/hop
    times); here each sample is looked at once. Shape (1, n_frames).
    """
    padded = np.pad(y, frame_length // 2, mode="edge")
    negative = np.signbit(np.where(np.abs(padded) <= 1e-10, 0.0, padded))
    crossings = np.concatenate([[0], np.cumsum(negative[1:] != negative[:-1])])
    starts = np.arange(1 + (len(padded) - frame_length) // hop_length) * hop_length
    counts = crossings[starts + frame_length - 1] - crossings[starts]
    return (counts / frame_length)[np.newaxis, :]


def frame_rms(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.rms(y=...)`` (centred frames, zero padding) from one cumulative sum. Shape (1, n_frames)."""
    padded = np.pad(y.astype(np.float64), frame_length // 2, mode="constant")
    energy = np.concatenate([[0.0], np.cumsum(padded**2)])
    starts = np.arange(1 + (len(padded) - frame_length) // hop_length) * hop_length
    mean_square = (energy[starts + frame_length] - energy[starts]) / frame_length
    return np.sqrt(np.maximum(mean_square, 0.0))[np.newaxis, :]


def spectral_shape(magnitude: np.ndarray, sr: int, n_fft: int, roll_percent: float = 0.85) -> dict[str, np.ndarray]:
    """Centroid, bandwidth, rolloff and flatness of a magnitude spectrogram in one pass.

    Same definitions and defaults as librosa's ``spectral_centroid``, ``spectral_bandwidth``
    (p=2), ``spectral_rolloff`` and ``spectral_flatness`` (power 2, amin 1e-10), without
    normalising the spectrogram once per feature. Each value is shaped (1, n_frames).
    """
    import librosa

    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft).astype(magnitude.dtype)[:, None]
    weights = _normalize_frames(magnitude, 1)
    centroid = (freqs * weights).sum(axis=0, keepdims=True)
    bandwidth = np.sqrt((weights * (freqs - centroid) ** 2).sum(axis=0, keepdims=True))
    cumulative = np.cumsum(magnitude, axis=0)
    reached = cumulative >= roll_percent * cumulative[-1:]
    rolloff = freqs[np.argmax(reached, axis=0), 0][np.newaxis, :]
    power = np.maximum(1e-10, magnitude**2)
    flatness = np.exp(np.log(power).mean(axis=0, keepdims=True)) / power.mean(axis=0, keepdims=True)
    return {
        "spectral_centroid": centroid,
        "spectral_bandwidth": bandwidth,
        "spectral_rolloff": rolloff,
        "spectral_flatness": flatness,
    }


def _fit_frames(log_mel: np.ndarray, n_frames: int) -> tuple[np.ndarray, int]:
    """Crop or pad (with the clip's minimum) a (n_mels, T) log-mel to n_frames."""
    valid = min(log_mel.shape[1], n_frames)
    out = np.full((log_mel.shape[0], n_frames), log_mel.min(), dtype=np.float32)
    out[:, :valid] = log_mel[:, :valid]
    return out, valid


def extract_clip(y: np.ndarray, config: AudioFeatureConfig) -> dict[str, np.ndarray]:
    """Describe one mono float waveform sampled at ``config.sr``.

    Returns ``descriptors`` (float32, ordered as :func:`feature_names`), ``melspec``
    (float32 log-mel in dB, shape (melspec_n_mels, melspec_frames)) and
    ``n_valid_frames`` (frames of ``melspec`` that hold audio rather than padding).
    Raises :class:`ClipError` for clips that are too short, not mono, or give
    non-finite values.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ClipError(f"expected a mono waveform, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ClipError("waveform contains NaN or inf samples")
    sr, n_fft, hop = config.sr, config.n_fft, config.hop_length
    min_samples = max(n_fft, int(config.min_duration_s * sr))
    if len(y) < min_samples:
        raise ClipError(f"clip too short: {len(y) / sr:.3f} s, need at least {min_samples / sr:.3f} s")

    magnitude = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
    power = magnitude**2

    def log_mel_of(n_mels: int) -> tuple[np.ndarray, np.ndarray]:
        mel = _mel_basis(sr, n_fft, n_mels, config.fmax) @ power
        return mel, librosa.power_to_db(mel)

    mel_power, log_mel = log_mel_of(config.n_mels)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc)
    width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))  # delta needs an odd width <= frames
    onset = librosa.onset.onset_strength(S=log_mel, sr=sr)
    chroma = _normalize_frames(_chroma_basis(sr, n_fft) @ power, np.inf)
    series = {
        "mfcc": mfcc,
        "mfcc_delta": librosa.feature.delta(mfcc, width=width, order=1),
        "mfcc_delta2": librosa.feature.delta(mfcc, width=width, order=2),
        "melband": log_mel_of(config.n_bands)[1],
        **spectral_shape(magnitude, sr, n_fft),
        "spectral_contrast": librosa.feature.spectral_contrast(S=magnitude, sr=sr),
        "onset_strength": onset[np.newaxis, :],
        "zcr": zero_crossing_rate(y, n_fft, hop),
        "rms": frame_rms(y, n_fft, hop),
        "chroma": chroma,
        "tonnetz": librosa.feature.tonnetz(chroma=chroma),
    }
    if config.hpss:
        harmonic, percussive = librosa.decompose.hpss(mel_power, kernel_size=17)
        h, p = harmonic.sum(axis=0), percussive.sum(axis=0)
        series["harmonic_ratio"] = (h / np.maximum(h + p, 1e-12))[np.newaxis, :]

    layout = series_layout(config)
    for name, rows in layout:
        assert series[name].shape[0] == rows, (name, series[name].shape)
    stacked = np.concatenate([series[name] for name, _ in layout], axis=0)  # every series shares the frames
    blocks = [summarize_series(stacked, config.stats).reshape(-1)]
    tempo, beats = librosa.beat.beat_track(onset_envelope=onset, sr=sr, hop_length=hop)
    intervals = np.diff(librosa.frames_to_time(beats, sr=sr, hop_length=hop))
    # With fewer than two beats there is no interval: both interval stats are 0.
    beat_stats = [
        float(np.atleast_1d(tempo)[0]),
        float(len(beats)),
        float(intervals.mean()) if len(intervals) else 0.0,
        float(intervals.std()) if len(intervals) else 0.0,
    ]
    descriptors = np.concatenate([*blocks, beat_stats]).astype(np.float32)
    if not np.all(np.isfinite(descriptors)):
        names = feature_names(config)
        bad = [names[i] for i in np.flatnonzero(~np.isfinite(descriptors))[:5]]
        raise ClipError(f"non-finite features: {', '.join(bad)}")

    melspec, n_valid = _fit_frames(log_mel_of(config.melspec_n_mels)[1], config.melspec_frames)
    return {"descriptors": descriptors, "melspec": melspec, "n_valid_frames": np.int32(n_valid)}


def extract_audio_features(y: np.ndarray, config: AudioFeatureConfig) -> dict[str, float]:
    """The clip-level descriptors of :func:`extract_clip` as ``{name: value}``."""
    return dict(zip(feature_names(config), extract_clip(y, config)["descriptors"].tolist()))


def compile_jit_kernels(config: AudioFeatureConfig | None = None) -> None:
    """Compile librosa's numba kernels in this process, filling numba's on-disk cache.

    numba writes a gufunc's two cache files (``beat.*.nbc`` and ``guf-beat.*.nbc``) in
    separate steps, so worker processes that compile the same kernel at once can leave
    a mismatched pair, and every later process that loads it crashes with SIGSEGV in
    ``librosa.beat.beat_track`` (numba issue #10128). A stage calls this once before
    its workers start, so that they only read the cache.
    """
    config = config or AudioFeatureConfig()
    t = np.arange(int(max(3.0, 2 * config.min_duration_s) * config.sr)) / config.sr
    clicks = (np.sin(2 * np.pi * 440 * t) * (np.mod(t, 0.5) < 0.05)).astype(np.float32)
    extract_clip(clicks, config)
