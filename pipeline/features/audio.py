"""Clip-level audio descriptors: one pure function, waveform in, record out.

All spectral descriptors share one STFT per clip: the magnitude spectrogram feeds
the mel filterbank (-> log-mel -> MFCC), spectral shape statistics, RMS and chroma;
the log-mel feeds the onset envelope, which feeds the tempo estimate.
Each frame series is summarised by its mean and std over time.

Column names are ``<feature>[_<index>]_<stat>``; indices are 0-based and zero-padded
(``mfcc_03_std`` is the std over time of the fourth MFCC, ``mfcc_00`` being the
energy-like coefficient).
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

STATS = ("mean", "std")


class ClipError(ValueError):
    """A clip that cannot be turned into features; recorded, never fatal."""


@dataclass(frozen=True)
class AudioFeatureConfig:
    """Extraction settings (``audio`` in params.yaml). Defaults follow librosa's."""

    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 64
    n_mfcc: int = 20
    fmax: float | None = None
    min_duration_s: float = 0.5


def series_layout(config: AudioFeatureConfig) -> list[tuple[str, int]]:
    """(series name, number of rows) for every frame series, in column order."""
    return [
        ("mfcc", config.n_mfcc),
        ("mfcc_delta", config.n_mfcc),
        ("mfcc_delta2", config.n_mfcc),
        ("melband", config.n_mels),
        ("spectral_centroid", 1),
        ("spectral_bandwidth", 1),
        ("spectral_rolloff", 1),
        ("spectral_flatness", 1),
        ("spectral_contrast", 7),
        ("zcr", 1),
        ("rms", 1),
        ("chroma", 12),
        ("onset_strength", 1),
    ]


def feature_names(config: AudioFeatureConfig) -> list[str]:
    """Ordered column names of the clip-level audio store (without ``clip_id``)."""
    ordered = []
    for series, rows in series_layout(config):
        labels = [series] if rows == 1 else [f"{series}_{i:02d}" for i in range(rows)]
        ordered.extend(f"{label}_{stat}" for label in labels for stat in STATS)
    return ordered + ["tempo_bpm"]


def frame_series(y: np.ndarray, config: AudioFeatureConfig) -> dict[str, np.ndarray]:
    """All frame-level series of a mono waveform, each shaped (rows, n_frames)."""
    sr, n_fft, hop = config.sr, config.n_fft, config.hop_length
    magnitude = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
    power = magnitude**2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=config.n_mels, fmax=config.fmax)
    log_mel = librosa.power_to_db(mel, ref=1.0, top_db=None)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc)
    width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))  # delta needs an odd width <= frames
    return {
        "mfcc": mfcc,
        "mfcc_delta": librosa.feature.delta(mfcc, width=width, order=1),
        "mfcc_delta2": librosa.feature.delta(mfcc, width=width, order=2),
        "melband": log_mel,
        "spectral_centroid": librosa.feature.spectral_centroid(S=magnitude, sr=sr),
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(S=magnitude, sr=sr),
        "spectral_rolloff": librosa.feature.spectral_rolloff(S=magnitude, sr=sr),
        "spectral_flatness": librosa.feature.spectral_flatness(S=magnitude),
        "spectral_contrast": librosa.feature.spectral_contrast(S=magnitude, sr=sr),
        "zcr": librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop),
        "rms": librosa.feature.rms(S=magnitude, frame_length=n_fft, hop_length=hop),
        "chroma": librosa.feature.chroma_stft(S=power, sr=sr, tuning=0.0),
        "onset_strength": librosa.onset.onset_strength(S=log_mel, sr=sr)[np.newaxis, :],
    }


def extract_audio_features(y: np.ndarray, config: AudioFeatureConfig) -> dict[str, float]:
    """Clip-level descriptors of a mono float waveform sampled at ``config.sr``.

    Returns an ordered dict ``{feature_name: value}`` matching :func:`feature_names`.
    Raises :class:`ClipError` for clips that are too short, silent-invalid or
    produce non-finite values.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ClipError(f"expected a mono waveform, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ClipError("waveform contains NaN or inf samples")
    min_samples = max(config.n_fft, int(config.min_duration_s * config.sr))
    if len(y) < min_samples:
        raise ClipError(f"clip too short: {len(y) / config.sr:.3f} s, need at least {min_samples / config.sr:.3f} s")
    series = frame_series(y, config)
    record: dict[str, float] = {}
    for name, rows in series_layout(config):
        values = series[name]
        assert values.shape[0] == rows, (name, values.shape)
        summaries = {"mean": values.mean(axis=1), "std": values.std(axis=1)}
        for i in range(rows):
            label = name if rows == 1 else f"{name}_{i:02d}"
            for stat in STATS:
                record[f"{label}_{stat}"] = float(summaries[stat][i])
    onset = series["onset_strength"][0]
    tempo = librosa.feature.tempo(onset_envelope=onset, sr=config.sr, hop_length=config.hop_length)
    record["tempo_bpm"] = float(tempo[0])
    bad = [k for k, v in record.items() if not np.isfinite(v)]
    if bad:
        raise ClipError(f"non-finite features: {', '.join(bad[:5])}")
    return record
