import numpy as np
import pytest
import soundfile as sf

from pipeline.audio_io import AudioDecodeError, load_audio
from pipeline.features.audio import AudioFeatureConfig, ClipError, extract_audio_features, feature_names

CONFIG = AudioFeatureConfig()
SR = CONFIG.sr


def sine(freq, seconds=3.0, amp=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def click_track(bpm, seconds=10.0):
    y = np.zeros(int(seconds * SR), dtype=np.float32)
    click = np.hanning(64) * np.sin(2 * np.pi * 2000 * np.arange(64) / SR)
    for start in np.arange(0, seconds, 60 / bpm):
        i = int(start * SR)
        y[i : i + 64] += click[: len(y) - i]
    return y


def test_record_matches_feature_names_in_order():
    record = extract_audio_features(sine(440), CONFIG)
    assert list(record) == feature_names(CONFIG)
    assert len(record) == 2 * (3 * 20 + 64 + 4 + 7 + 2 + 12 + 1) + 1
    assert all(np.isfinite(v) for v in record.values())
    assert "mfcc_03_std" in record and "spectral_centroid_mean" in record and "chroma_09_mean" in record


def test_sine_centroid_and_chroma_peak():
    record = extract_audio_features(sine(440), CONFIG)
    assert record["spectral_centroid_mean"] == pytest.approx(440, rel=0.05)
    chroma = [record[f"chroma_{i:02d}_mean"] for i in range(12)]
    assert int(np.argmax(chroma)) == 9  # pitch class A (C=0)


def test_click_track_tempo():
    assert extract_audio_features(click_track(120), CONFIG)["tempo_bpm"] == pytest.approx(120, rel=0.03)


def test_louder_signal_has_higher_rms():
    quiet = extract_audio_features(sine(440, amp=0.1), CONFIG)["rms_mean"]
    loud = extract_audio_features(sine(440, amp=0.4), CONFIG)["rms_mean"]
    assert loud == pytest.approx(4 * quiet, rel=0.01)


@pytest.mark.parametrize(
    ("signal", "message"),
    [
        (np.zeros(100, dtype=np.float32), "clip too short"),
        (np.full(SR, np.nan, dtype=np.float32), "NaN or inf"),
        (np.zeros((2, SR), dtype=np.float32), "expected a mono waveform"),
    ],
)
def test_bad_waveforms_raise_clip_error(signal, message):
    with pytest.raises(ClipError, match=message):
        extract_audio_features(signal, CONFIG)


def test_load_audio_downmixes_and_resamples(tmp_path):
    stereo = np.stack([sine(440, 1.0), sine(440, 1.0)], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 44100)  # written as if 44.1 kHz: 1 s of data is 22050 frames
    y = load_audio(path, 22050)
    assert y.ndim == 1 and y.dtype == np.float32
    assert len(y) == pytest.approx(11025, abs=2)


def test_load_audio_names_the_bad_file(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF not really a wav")
    with pytest.raises(AudioDecodeError, match="broken.wav: cannot decode audio"):
        load_audio(path, 22050)


def test_real_recordings_give_finite_features(ravdess):
    import pandas as pd

    rows = pd.read_csv(ravdess / "manifest.csv").head(4)
    for rel in rows["audio_path"]:
        record = extract_audio_features(load_audio(ravdess / rel, SR), CONFIG)
        assert all(np.isfinite(v) for v in record.values())
        assert 50 < record["spectral_centroid_mean"] < 5000
