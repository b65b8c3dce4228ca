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
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

ALL_STATS = ("mean", "std", "min", "max", "skew", "kurtosis", "p10", "p50", "p90")
BEAT_FEATURES = ("tempo_bpm", "beat_count", "beat_interval_mean", "beat_interval_std")


class ClipError(ValueError):
    """A clip that cannot be turned into features; recorded, never fatal."""


@dataclass(frozen=True)
class AudioFeatureConfig:
    """Extraction settings (``audio`` in params.yaml).

    offset_s, duration_s: window of each file to analyse (None = to the end).
    n_mels: mel bands behind the MFCCs (librosa's default 128). n_bands: log-mel
    bands summarised as ``melband_XX``. melspec_n_mels, melspec_frames: shape of the
    frame-level log-mel store (frames at ``hop_length``; longer clips are cropped,
    shorter ones padded). hpss: add the harmonic-energy ratio (median-filter HPSS on
    the mel spectrogram, not the full STFT; off by default for its cost).
    """

    sr: int = 22050
    offset_s: float = 0.0
    duration_s: float | None = None
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

    Skew and (Fisher) kurtosis of a constant row are 0, not NaN.
    """
    x = np.asarray(values, dtype=np.float64)
    mean = x.mean(axis=1)
    centered = x - mean[:, None]
    m2 = np.mean(centered**2, axis=1)
    flat = m2 <= 1e-12 * (1.0 + mean**2)
    safe_m2 = np.where(flat, 1.0, m2)
    p10, p50, p90 = np.percentile(x, [10, 50, 90], axis=1)
    columns = {
        "mean": mean,
        "std": np.sqrt(m2),
        "min": x.min(axis=1),
        "max": x.max(axis=1),
        "skew": np.where(flat, 0.0, np.mean(centered**3, axis=1) / safe_m2**1.5),
        "kurtosis": np.where(flat, 0.0, np.mean(centered**4, axis=1) / safe_m2**2 - 3.0),
        "p10": p10,
        "p50": p50,
        "p90": p90,
    }
    return np.stack([columns[s] for s in stats], axis=1)


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

    def log_mel_of(n_mels: int) -> np.ndarray:
        return librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr, n_mels=n_mels, fmax=config.fmax))

    mel_power = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=config.n_mels, fmax=config.fmax)
    log_mel = librosa.power_to_db(mel_power)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc)
    width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))  # delta needs an odd width <= frames
    onset = librosa.onset.onset_strength(S=log_mel, sr=sr)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, tuning=0.0)
    series = {
        "mfcc": mfcc,
        "mfcc_delta": librosa.feature.delta(mfcc, width=width, order=1),
        "mfcc_delta2": librosa.feature.delta(mfcc, width=width, order=2),
        "melband": log_mel_of(config.n_bands),
        "spectral_centroid": librosa.feature.spectral_centroid(S=magnitude, sr=sr),
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(S=magnitude, sr=sr),
        "spectral_rolloff": librosa.feature.spectral_rolloff(S=magnitude, sr=sr),
        "spectral_flatness": librosa.feature.spectral_flatness(S=magnitude),
        "spectral_contrast": librosa.feature.spectral_contrast(S=magnitude, sr=sr),
        "onset_strength": onset[np.newaxis, :],
        "zcr": librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop),
        "rms": librosa.feature.rms(S=magnitude, frame_length=n_fft, hop_length=hop),
        "chroma": chroma,
        "tonnetz": librosa.feature.tonnetz(chroma=chroma),
    }
    if config.hpss:
        harmonic, percussive = librosa.decompose.hpss(mel_power, kernel_size=17)
        h, p = harmonic.sum(axis=0), percussive.sum(axis=0)
        series["harmonic_ratio"] = (h / np.maximum(h + p, 1e-12))[np.newaxis, :]

    blocks = []
    for name, rows in series_layout(config):
        assert series[name].shape[0] == rows, (name, series[name].shape)
        blocks.append(summarize_series(series[name], config.stats).reshape(-1))
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

    melspec, n_valid = _fit_frames(log_mel_of(config.melspec_n_mels), config.melspec_frames)
    return {"descriptors": descriptors, "melspec": melspec, "n_valid_frames": np.int32(n_valid)}


def extract_audio_features(y: np.ndarray, config: AudioFeatureConfig) -> dict[str, float]:
    """The clip-level descriptors of :func:`extract_clip` as ``{name: value}``."""
    return dict(zip(feature_names(config), extract_clip(y, config)["descriptors"].tolist()))
