import numpy as np
import pytest

from pipeline.features import ClipError
from pipeline.features.music import KEYS, MusicFeatureConfig, extract_music_features, music_feature_names

CONFIG = MusicFeatureConfig()
SR = CONFIG.sr


def triad(root_hz: float, third: int, seconds: float = 4.0, gain: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    tones = sum(np.sin(2 * np.pi * root_hz * 2 ** (step / 12) * t) for step in (0, third, 7))
    return (gain * tones).astype(np.float32)


@pytest.mark.parametrize(
    ("root_hz", "third", "key", "scale"),
    [
        (261.63, 4, "C", "major"),
        (261.63, 3, "C", "minor"),
        (220.0, 3, "A", "minor"),
        (392.0, 4, "G", "major"),
    ],
)
def test_key_and_mode_of_synthetic_triads(root_hz, third, key, scale):
    record = extract_music_features(triad(root_hz, third), CONFIG)
    assert (record["key"], record["scale"]) == (key, scale)
    assert record["key_index"] == KEYS.index(key) and record["scale_is_major"] == float(scale == "major")


def test_loudness_orders_two_gains_by_their_decibel_difference():
    quiet = extract_music_features(triad(261.63, 4, gain=0.05), CONFIG)["loudness_integrated_lufs"]
    loud = extract_music_features(triad(261.63, 4, gain=0.4), CONFIG)["loudness_integrated_lufs"]
    assert loud - quiet == pytest.approx(20 * np.log10(0.4 / 0.05), abs=0.5)


def test_record_has_every_named_column_finite():
    record = extract_music_features(triad(261.63, 4), CONFIG)
    assert set(record) == {"key", "scale", *music_feature_names()}
    assert all(np.isfinite(record[name]) for name in music_feature_names())
    hpcp = [record[f"hpcp_{i:02d}_mean"] for i in range(12)]
    assert {int(i) for i in np.argsort(hpcp)[-3:]} == {3, 7, 10}  # C, E, G with HPCP bin 0 = A (440 Hz)


def test_too_short_clip_is_a_clip_error():
    with pytest.raises(ClipError, match="too short for music descriptors"):
        extract_music_features(np.zeros(1000, dtype=np.float32), CONFIG)


@pytest.mark.parametrize("gain", [0.0, 10 ** (-80 / 20)])
def test_silence_is_a_clip_error_not_a_row_of_nonsense(gain):
    with pytest.raises(ClipError, match="silent"):
        extract_music_features(triad(261.63, 4, gain=gain), CONFIG)
