"""Music descriptors from essentia: one pure function, waveform in, record out.

The waveform comes from mmer's own loader (soundfile + soxr), decoded once, as a
float32 numpy array: essentia's MonoLoader resamples about 20x slower, and essentia
is very slow on Python lists. Choices, for speed at equal meaning:

- tempo: ``RhythmExtractor2013(method="degara")`` (several times faster than the
  default ``multifeature``, which is the only one that reports a confidence), with
  ``LoopBpmConfidence`` giving the beat confidence;
- frame descriptors (dissonance, spectral complexity, HPCP, pitch salience) share one
  frame loop: window -> spectrum -> spectral peaks. HPCP bins follow essentia's
  convention: ``hpcp_00`` is A (reference 440 Hz), ``hpcp_03`` is C.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.features import ClipError

SILENCE_LUFS = -70.0  # EBU R128's absolute gate: nothing quieter counts as programme material
KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_ENHARMONIC = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb"}


@dataclass(frozen=True)
class MusicFeatureConfig:
    """Settings of the essentia stage (``essentia`` in params.yaml)."""

    enabled: bool = True
    sr: int = 44100
    frame_size: int = 2048
    hop_size: int = 1024
    rhythm_method: Literal["degara", "multifeature"] = "degara"
    min_duration_s: float = 1.0


def music_feature_names() -> list[str]:
    """Ordered numeric columns of ``features/essentia.parquet`` (besides clip_id, key, scale)."""
    names = [
        "key_index",
        "scale_is_major",
        "key_strength",
        "bpm",
        "beat_confidence",
        "danceability",
        "dynamic_complexity",
        "loudness_integrated_lufs",
        "loudness_range_lu",
    ]
    for series in ("dissonance", "spectral_complexity", "pitch_salience"):
        names += [f"{series}_mean", f"{series}_std"]
    names += [f"hpcp_{i:02d}_mean" for i in range(12)] + [f"hpcp_{i:02d}_std" for i in range(12)]
    return names


def extract_music_features(y: np.ndarray, config: MusicFeatureConfig) -> dict[str, float | str]:
    """Key, tempo, danceability, loudness and tonal/spectral descriptors of a mono clip.

    ``y`` is float32 at ``config.sr``. Returns ``key`` and ``scale`` as strings plus the
    numeric columns of :func:`music_feature_names`. Raises :class:`ClipError` for
    clips that are too short or give non-finite values.
    """
    import essentia

    essentia.log.infoActive = False
    essentia.log.warningActive = False
    import essentia.standard as es

    y = np.ascontiguousarray(y, dtype=np.float32)
    sr = float(config.sr)
    if len(y) < config.min_duration_s * sr:
        raise ClipError(f"clip too short for music descriptors: {len(y) / sr:.3f} s < {config.min_duration_s} s")

    stereo = np.ascontiguousarray(np.stack([y, y], axis=1))
    _, _, integrated, loudness_range = es.LoudnessEBUR128(sampleRate=sr)(stereo)
    if integrated <= SILENCE_LUFS:  # key, tempo and danceability of silence are meaningless numbers
        raise ClipError(f"clip is silent for music descriptors (integrated loudness {integrated:.1f} LUFS)")
    key, scale, strength = es.KeyExtractor(sampleRate=sr)(y)
    key = _ENHARMONIC.get(key, key)
    bpm, _, _, _, _ = es.RhythmExtractor2013(method=config.rhythm_method)(y)
    beat_confidence = es.LoopBpmConfidence(sampleRate=sr)(y, bpm) if bpm > 0 else 0.0
    danceability, _ = es.Danceability(sampleRate=sr)(y)
    dynamic_complexity, _ = es.DynamicComplexity(sampleRate=sr)(y)

    window = es.Windowing(type="blackmanharris62", size=config.frame_size)
    spectrum = es.Spectrum(size=config.frame_size)
    peaks = es.SpectralPeaks(
        sampleRate=sr,
        orderBy="magnitude",
        magnitudeThreshold=1e-5,
        maxPeaks=100,
        minFrequency=20,
        maxFrequency=min(5000.0, sr / 2 - 1),
    )
    dissonance, complexity, hpcp, salience = (
        es.Dissonance(),
        es.SpectralComplexity(sampleRate=sr),
        es.HPCP(sampleRate=sr),
        es.PitchSalience(sampleRate=sr),
    )
    frames = {"dissonance": [], "spectral_complexity": [], "pitch_salience": [], "hpcp": []}
    for frame in es.FrameGenerator(y, frameSize=config.frame_size, hopSize=config.hop_size, startFromZero=True):
        spec = spectrum(window(frame))
        freqs, mags = peaks(spec)
        order = np.argsort(freqs)  # dissonance needs ascending frequencies
        freqs, mags = np.ascontiguousarray(freqs[order]), np.ascontiguousarray(mags[order])
        frames["dissonance"].append(dissonance(freqs, mags) if len(freqs) > 1 else 0.0)
        frames["spectral_complexity"].append(complexity(spec))
        frames["pitch_salience"].append(salience(spec))
        frames["hpcp"].append(hpcp(freqs, mags))

    record: dict[str, float | str] = {
        "key": key,
        "scale": scale,
        "key_index": float(KEYS.index(key)) if key in KEYS else -1.0,
        "scale_is_major": 1.0 if scale == "major" else 0.0,
        "key_strength": float(strength),
        "bpm": float(bpm),
        "beat_confidence": float(beat_confidence),
        "danceability": float(danceability),
        "dynamic_complexity": float(dynamic_complexity),
        "loudness_integrated_lufs": float(integrated),
        "loudness_range_lu": float(loudness_range),
    }
    for series in ("dissonance", "spectral_complexity", "pitch_salience"):
        values = np.asarray(frames[series], dtype=np.float64)
        record[f"{series}_mean"], record[f"{series}_std"] = float(values.mean()), float(values.std())
    hpcp_frames = np.asarray(frames["hpcp"], dtype=np.float64)
    for i in range(12):
        record[f"hpcp_{i:02d}_mean"] = float(hpcp_frames[:, i].mean())
    for i in range(12):
        record[f"hpcp_{i:02d}_std"] = float(hpcp_frames[:, i].std())
    bad = [k for k, v in record.items() if isinstance(v, float) and not np.isfinite(v)]
    if bad:
        raise ClipError(f"non-finite music descriptors: {', '.join(bad[:5])}")
    return record
