import numpy as np
import pytest
import soundfile as sf

from pipeline.audio_io import AudioDecodeError, load_audio
from pipeline.features import ClipError
from pipeline.features.audio import (
    AudioFeatureConfig,
    extract_audio_features,
    extract_clip,
    feature_names,
    summarize_series,
)

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
    # 9 statistics of (3 x 20 MFCC + 32 bands + 4 spectral + 7 contrast + onset + zcr + rms + 12 chroma + 6 tonnetz)
    assert len(record) == 9 * (60 + 32 + 4 + 7 + 3 + 12 + 6) + 4
    assert all(np.isfinite(v) for v in record.values())
    for name in ("mfcc_03_std", "spectral_centroid_p90", "chroma_09_mean", "tonnetz_05_kurtosis", "beat_interval_std"):
        assert name in record


def test_sine_centroid_and_chroma_peak():
    record = extract_audio_features(sine(440), CONFIG)
    assert record["spectral_centroid_mean"] == pytest.approx(440, rel=0.05)
    chroma = [record[f"chroma_{i:02d}_mean"] for i in range(12)]
    assert int(np.argmax(chroma)) == 9  # pitch class A (C=0)


def test_click_track_tempo_and_beat_intervals():
    record = extract_audio_features(click_track(120), CONFIG)
    assert record["tempo_bpm"] == pytest.approx(120, rel=0.03)
    assert record["beat_interval_mean"] == pytest.approx(0.5, rel=0.03)
    assert record["beat_count"] >= 15


def test_summary_statistics_match_their_definitions():
    from scipy import stats

    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, size=(3, 500))
    out = summarize_series(x, ("mean", "std", "min", "max", "skew", "kurtosis", "p10", "p50", "p90"))
    np.testing.assert_allclose(out[:, 0], x.mean(axis=1))
    np.testing.assert_allclose(out[:, 1], x.std(axis=1))
    np.testing.assert_allclose(out[:, 4], stats.skew(x, axis=1))
    np.testing.assert_allclose(out[:, 5], stats.kurtosis(x, axis=1))
    np.testing.assert_allclose(out[:, 7], np.median(x, axis=1))
    constant = summarize_series(np.full((1, 50), 3.0), ("skew", "kurtosis", "p90"))
    assert constant.tolist() == [[0.0, 0.0, 3.0]]


def test_analysis_window_is_checked():
    with pytest.raises(ValueError, match="offset_s must be >= 0"):
        AudioFeatureConfig(offset_s=-1.0)
    with pytest.raises(ValueError, match="duration_s must be > 0 or null"):
        AudioFeatureConfig(duration_s=0.0)


def test_silent_clip_gives_a_finite_row():
    record = extract_audio_features(np.zeros(2 * SR, dtype=np.float32), CONFIG)
    assert all(np.isfinite(v) for v in record.values())
    assert record["rms_max"] == 0.0 and record["beat_count"] == 0.0 and record["beat_interval_mean"] == 0.0


def test_stats_are_configurable_and_checked():
    config = AudioFeatureConfig(stats=("mean", "p90"))
    names = feature_names(config)
    assert names[:2] == ["mfcc_00_mean", "mfcc_00_p90"]
    assert not any(n.endswith("_std") for n in names if not n.startswith("beat_"))
    assert len(extract_clip(sine(440), config)["descriptors"]) == len(names)
    with pytest.raises(ValueError, match="unknown or empty \\['median'\\]"):
        AudioFeatureConfig(stats=("mean", "median"))


def test_melspec_is_cropped_or_padded_to_a_fixed_shape():
    config = AudioFeatureConfig(melspec_n_mels=40, melspec_frames=100)
    short = extract_clip(sine(440, seconds=1.0), config)  # 1 + 22050 // 512 = 44 frames
    assert short["melspec"].shape == (40, 100) and short["melspec"].dtype == np.float32
    assert int(short["n_valid_frames"]) == 44
    assert np.all(short["melspec"][:, 44:] == short["melspec"].min())
    long = extract_clip(sine(440, seconds=5.0), config)
    assert int(long["n_valid_frames"]) == 100
    assert int(np.argmax(long["melspec"][:, 50])) == int(np.argmax(short["melspec"][:, 20]))  # same band lit


def test_optional_harmonic_ratio():
    plain = feature_names(CONFIG)
    with_hpss = AudioFeatureConfig(hpss=True)
    record = extract_audio_features(sine(440), with_hpss)
    assert set(record) - set(plain) == {f"harmonic_ratio_{s}" for s in CONFIG.stats}
    assert record["harmonic_ratio_mean"] > 0.9  # a steady sine is harmonic
    clicks = extract_audio_features(click_track(120), with_hpss)
    assert clicks["harmonic_ratio_mean"] < record["harmonic_ratio_mean"]


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
    stereo = np.stack([sine(440, 1.0), np.zeros(SR, dtype=np.float32)], axis=1)  # right channel silent
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 44100)  # written as if 44.1 kHz: 1 s of data is 22050 frames
    y = load_audio(path, 22050)
    assert y.ndim == 1 and y.dtype == np.float32
    assert len(y) == pytest.approx(11025, abs=2)
    assert np.abs(y).max() == pytest.approx(0.25, abs=0.01)  # the average of both channels


def test_load_audio_reads_only_the_requested_window(tmp_path):
    y = np.concatenate([np.zeros(SR, dtype=np.float32), sine(440, 1.0), np.zeros(SR, dtype=np.float32)])
    sf.write(tmp_path / "clip.flac", y, SR)
    window = load_audio(tmp_path / "clip.flac", SR, offset_s=1.0, duration_s=1.0)
    assert len(window) == SR and np.abs(window).max() > 0.45
    assert len(load_audio(tmp_path / "clip.flac", SR, offset_s=2.5)) == SR // 2
    with pytest.raises(AudioDecodeError, match="no samples in the requested window"):
        load_audio(tmp_path / "clip.flac", SR, offset_s=10.0)


def test_mp3_decodes_natively(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile has no MP3 support")
    sf.write(tmp_path / "clip.mp3", sine(440, 2.0), SR, format="MP3", subtype="MPEG_LAYER_III")
    y = load_audio(tmp_path / "clip.mp3", SR)
    assert abs(len(y) - 2 * SR) < 0.05 * SR
    assert extract_audio_features(y, CONFIG)["spectral_centroid_mean"] == pytest.approx(440, rel=0.1)


def test_mp3_window_equals_the_same_slice_of_a_full_decode(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile has no MP3 support")
    t = np.arange(5 * SR) / SR
    y = (0.3 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 0.7 * t)).astype(np.float32)  # not periodic
    sf.write(tmp_path / "clip.mp3", y, SR, format="MP3", subtype="MPEG_LAYER_III")
    full = load_audio(tmp_path / "clip.mp3", SR)
    for offset in (0.3, 1.7, 2.5, 3.6):  # a plain seek lands wrong and decodes garbage for ~0.2 s
        window = load_audio(tmp_path / "clip.mp3", SR, offset_s=offset, duration_s=1.0)
        start = round(offset * SR)
        np.testing.assert_allclose(window, full[start : start + SR], atol=1e-5)


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


def test_fast_spectral_shape_matches_librosa():
    import librosa

    from pipeline.features.audio import spectral_shape

    rng = np.random.default_rng(0)
    y = (sine(300, 2.0) + 0.3 * sine(2500, 2.0) + 0.05 * rng.normal(size=2 * SR)).astype(np.float32)
    y[SR // 2 : SR] = 0.0  # a silent stretch exercises the near-zero-frame handling
    magnitude = np.abs(librosa.stft(y))
    ours = spectral_shape(magnitude, SR, 2048)
    reference = {
        "spectral_centroid": librosa.feature.spectral_centroid(S=magnitude, sr=SR),
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(S=magnitude, sr=SR),
        "spectral_rolloff": librosa.feature.spectral_rolloff(S=magnitude, sr=SR),
        "spectral_flatness": librosa.feature.spectral_flatness(S=magnitude),
    }
    for name, expected in reference.items():
        np.testing.assert_allclose(ours[name], expected, rtol=2e-4, atol=1e-6, err_msg=name)


def test_chroma_matches_librosa_chroma_stft():
    import librosa

    y = sine(440, 2.0) + sine(554.37, 2.0)
    power = np.abs(librosa.stft(y)) ** 2
    from pipeline.features.audio import _chroma_basis, _normalize_frames

    ours = _normalize_frames(_chroma_basis(SR, 2048) @ power, np.inf)
    np.testing.assert_allclose(ours, librosa.feature.chroma_stft(S=power, sr=SR, tuning=0.0), rtol=1e-5, atol=1e-7)


def test_fast_zero_crossing_rate_matches_librosa():
    import librosa

    from pipeline.features.audio import zero_crossing_rate

    rng = np.random.default_rng(1)
    y = np.concatenate([sine(100, 1.0), np.zeros(3000, np.float32), rng.normal(size=5001).astype(np.float32)])
    np.testing.assert_allclose(
        zero_crossing_rate(y, 2048, 512), librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512)
    )


def test_fast_rms_matches_librosa_on_the_waveform():
    import librosa

    from pipeline.features.audio import frame_rms

    rng = np.random.default_rng(2)
    y = np.concatenate([sine(100, 1.0, amp=0.8), np.zeros(3000, np.float32), rng.normal(size=5001).astype(np.float32)])
    np.testing.assert_allclose(
        frame_rms(y, 2048, 512), librosa.feature.rms(y=y, frame_length=2048, hop_length=512), rtol=1e-5, atol=1e-7
    )
