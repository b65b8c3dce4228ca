"""Bad audio, text and manifests: a clear error before heavy work, or a recorded skip with its reason."""

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pipeline.audio_io import AudioDecodeError
from pipeline.datasets.manifest import ManifestError, read_manifest_file
from pipeline.executor import ClipTask, map_clips
from pipeline.features import ClipError
from pipeline.features.audio import AudioFeatureConfig
from pipeline.stages.audio_features import extract_file

SR = 22050
CONFIG = AudioFeatureConfig(melspec_frames=64)


def tone(seconds: float = 2.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def write_cases(folder: Path) -> dict[str, tuple[Path, str | None]]:
    """``{case: (path, expected error type name or None for a valid clip)}``."""
    cases = {}

    def add(name, filename, error=None):
        cases[name] = (folder / filename, error)

    (folder / "zero.wav").write_bytes(b"")
    add("zero-byte file", "zero.wav", "AudioDecodeError")
    sf.write(folder / "full.wav", tone(), SR)
    (folder / "truncated.wav").write_bytes((folder / "full.wav").read_bytes()[:30])
    add("truncated WAV header", "truncated.wav", "AudioDecodeError")
    rng = np.random.default_rng(0)
    (folder / "random.wav").write_bytes(rng.bytes(5000))
    add("random bytes named .wav", "random.wav", "AudioDecodeError")
    (folder / "random.mp3").write_bytes(rng.bytes(5000))
    add("random bytes named .mp3", "random.mp3", "AudioDecodeError")
    (folder / "text.flac").write_text("not audio at all\n" * 50)
    add("text file named .flac", "text.flac", "AudioDecodeError")
    sf.write(folder / "silent.wav", np.zeros(2 * SR, np.float32), SR)
    add("all-zero clip", "silent.wav")
    sf.write(folder / "short.wav", tone()[:500], SR)
    add("shorter than one FFT frame", "short.wav", "ClipError")
    for subtype in ("PCM_U8", "PCM_24", "FLOAT"):
        sf.write(folder / f"{subtype}.wav", tone(), SR, subtype=subtype)
        add(f"{subtype} WAV", f"{subtype}.wav")
    sf.write(folder / "stereo.wav", np.stack([tone()] * 2, axis=1), SR)
    add("stereo", "stereo.wav")
    sf.write(folder / "six.wav", np.stack([tone()] * 6, axis=1), SR)
    add("6 channels", "six.wav")
    sf.write(folder / "k8.wav", tone(sr=8000), 8000)
    add("8 kHz", "k8.wav")
    sf.write(folder / "k96.wav", tone(sr=96000), 96000)
    add("96 kHz", "k96.wav")
    broken = tone()
    broken[100:200], broken[300] = np.nan, np.inf
    sf.write(folder / "nan.wav", broken, SR, subtype="FLOAT")
    add("NaN and inf samples", "nan.wav", "ClipError")
    os.symlink(folder / "loop_b.wav", folder / "loop_a.wav")
    os.symlink(folder / "loop_a.wav", folder / "loop_b.wav")
    add("symlink loop", "loop_a.wav", "AudioDecodeError")
    return cases


def test_every_bad_audio_file_gives_a_typed_reason_and_good_ones_finite_features(tmp_path):
    cases = write_cases(tmp_path)
    for name, (path, error) in cases.items():
        if error is None:
            record = extract_file(str(path), CONFIG)
            assert np.isfinite(record["descriptors"]).all(), name
            assert record["melspec"].shape == (96, 64), name
        else:
            with pytest.raises((AudioDecodeError, ClipError)) as caught:
                extract_file(str(path), CONFIG)
            assert type(caught.value).__name__ == error, name
            assert str(caught.value), name


def test_a_run_over_bad_files_records_each_with_its_reason(tmp_path):
    cases = write_cases(tmp_path)
    tasks = [ClipTask(name, (str(path), CONFIG), str(path)) for name, (path, _) in cases.items()]
    results, failures = map_clips(extract_file, tasks, n_jobs=2, stage="features")
    failed = {f.clip_id: f for f in failures}
    assert set(failed) == {name for name, (_, error) in cases.items() if error}
    assert set(results) == {name for name, (_, error) in cases.items() if not error}
    for name, failure in failed.items():
        assert failure.error_type == cases[name][1] and failure.message


def test_a_long_recording_is_read_only_within_the_analysis_window(tmp_path):
    from pipeline.audio_io import load_audio

    path = tmp_path / "long.flac"
    with sf.SoundFile(path, "w", SR, 1, format="FLAC") as out:  # 10 minutes, written in blocks
        for _ in range(60):
            out.write(tone(10.0))
    y = load_audio(path, SR, offset_s=120.0, duration_s=30.0)
    assert y.shape == (30 * SR,)


def write_hour_long_wav(path: Path, sr: int = 8000) -> Path:
    """One hour of tone (8 kHz, 16-bit: 58 MB), written a minute at a time."""
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as out:
        minute = tone(60.0, sr)
        for _ in range(60):
            out.write(minute)
    return path


def test_an_hour_long_file_is_cropped_to_max_duration_not_loaded_whole(tmp_path):
    path = write_hour_long_wav(tmp_path / "hour.wav")
    capped = AudioFeatureConfig(melspec_frames=64, max_duration_s=60.0)
    tracemalloc.start()
    try:
        record = extract_file(str(path), capped)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the whole hour resampled to 22,050 Hz is 318 MB before any STFT (measured uncapped: 4.5 GB peak)
    assert peak < 300e6
    assert float(record["source_s"]) == 3600.0
    first_minute = extract_file(str(path), AudioFeatureConfig(melspec_frames=64, duration_s=60.0))
    np.testing.assert_array_equal(record["descriptors"], first_minute["descriptors"])
    assert AudioFeatureConfig().window_s == 600.0  # the default cap when duration_s is null
    assert AudioFeatureConfig(duration_s=900.0).window_s == 900.0  # an explicit window is honoured
    assert AudioFeatureConfig(max_duration_s=None).window_s is None
    with pytest.raises(ValueError, match="audio.max_duration_s must be > 0 or null"):
        AudioFeatureConfig(max_duration_s=0)


def test_the_audio_stage_lists_cropped_files_and_essentia_reads_the_same_window(project, capsys):
    import pyarrow.parquet as pq

    from pipeline.params import load_params
    from pipeline.stages import AUDIO_ERRORS, AUDIO_STORE, ESSENTIA_STORE, MANIFEST, audio_features, essentia_features
    from pipeline.store import read_metadata, read_store, write_store
    from tests.conftest import write_params

    manifest = read_store(MANIFEST)  # six clips are enough to see one cropped among them
    write_store(manifest.head(6), MANIFEST, pq.read_schema(MANIFEST).remove_metadata(), read_metadata(MANIFEST))
    long_clip = project / "data" / "demo" / "audio" / "demo_00005.wav"
    sf.write(long_clip, np.tile(sf.read(long_clip, dtype="float32")[0], 6), SR)  # 2 s -> 12 s
    write_params(project, {"audio": {"max_duration_s": 5.0}})
    audio_features.run(load_params())
    assert "1 file(s) go on past audio.offset_s + max_duration_s (0.0 + 5.0 s)" in capsys.readouterr().out
    assert read_metadata(AUDIO_ERRORS)["cropped_clips"] == {"demo_00005": 12.0}
    assert len(read_store(AUDIO_ERRORS)) == 0 and len(read_store(AUDIO_STORE)) == 6  # kept, not skipped
    capped = read_store(AUDIO_STORE).set_index("clip_id").loc["demo_00005"]
    essentia_features.run(load_params())
    capped_music = read_store(ESSENTIA_STORE).set_index("clip_id").loc["demo_00005"]
    write_params(project, {"audio": {"duration_s": 5.0}})  # the same 5 s, asked for explicitly: no crop listed
    audio_features.run(load_params())
    assert read_metadata(AUDIO_ERRORS)["cropped_clips"] == {}
    pd.testing.assert_series_equal(read_store(AUDIO_STORE).set_index("clip_id").loc["demo_00005"], capped)
    essentia_features.run(load_params())
    pd.testing.assert_series_equal(read_store(ESSENTIA_STORE).set_index("clip_id").loc["demo_00005"], capped_music)


def test_read_audio_reports_a_cut_exactly(tmp_path):
    from pipeline.audio_io import read_audio

    path = tmp_path / "ten.wav"
    sf.write(path, tone(10.0), SR)
    assert read_audio(path, SR, 0.0, 10.0)[1] is None  # the window is the whole file: nothing cut
    assert read_audio(path, SR, 0.0, None)[1] is None
    y, cut_s = read_audio(path, SR, 2.0, 5.0)
    assert len(y) == 5 * SR and cut_s == 10.0
    assert read_audio(path, SR, 6.0, 5.0)[1] is None  # the file ends inside the window


def write_csv(folder: Path, rows: list[dict]) -> Path:
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "escape", ["../../etc/passwd", "../outside.wav", "sub/../../outside.wav", " ../outside.wav", "../corpus2/x.wav"]
)
def test_a_path_escaping_the_manifest_folder_is_refused_never_opened(tmp_path, escape):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    path = write_csv(corpus, [{"clip_id": "a", "audio_path": escape, "label": "x"}])
    with pytest.raises(ManifestError, match="leaves the manifest's folder .*refused"):
        read_manifest_file(path)
    text_path = write_csv(corpus, [{"clip_id": "a", "text_path": escape, "label": "x"}])
    with pytest.raises(ManifestError, match="text_path .* leaves the manifest's folder"):
        read_manifest_file(text_path)


def test_a_text_file_behind_a_symlink_leading_out_is_refused(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (tmp_path / "big_disk" / "lyrics").mkdir(parents=True)
    (tmp_path / "big_disk" / "secret.txt").write_text("not yours")
    (tmp_path / "big_disk" / "lyrics" / "a.txt").write_text("la la")
    (corpus / "linked").symlink_to(tmp_path / "big_disk" / "lyrics")
    # text is copied into the manifest store, so links are resolved before the check
    for value in ("linked/../secret.txt", "linked/a.txt"):
        path = write_csv(corpus, [{"clip_id": "a", "text_path": value, "label": "x"}])
        with pytest.raises(ManifestError, match="text_path .* leaves the manifest's folder"):
            read_manifest_file(path)


def test_absolute_paths_paths_inside_and_symlinked_folders_are_accepted(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (tmp_path / "big_disk").mkdir()
    (corpus / "linked").symlink_to(tmp_path / "big_disk")  # data living elsewhere, linked in by its owner
    elsewhere = tmp_path / "elsewhere.wav"
    rows = [
        {"clip_id": "a", "audio_path": "sub/../sub/a.wav", "label": "x"},
        {"clip_id": "b", "audio_path": str(elsewhere), "label": "y"},
        {"clip_id": "c", "audio_path": "linked/c.wav", "label": "y"},
    ]
    monkeypatch.chdir(tmp_path)
    df = read_manifest_file(write_csv(corpus, rows))
    assert df["audio_path"].tolist() == ["corpus/sub/a.wav", str(elsewhere), "corpus/linked/c.wav"]


def test_text_that_is_not_utf8_is_decoded_with_replacement_and_recorded(tmp_path, monkeypatch, capsys):
    from pipeline.params import load_params
    from pipeline.stages import MANIFEST, prepare
    from pipeline.store import read_metadata
    from tests.conftest import write_params

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "m.csv").write_bytes(b"clip_id,text,label\na,caf\xe9 ol\xe9,x\nb,fine,x\nc,good,y\nd,ok,y\n")
    df = read_manifest_file(corpus / "m.csv")
    assert df["text"].tolist()[:2] == ["caf\ufffd ol\ufffd", "fine"]
    dataset = {"kind": "manifest", "root": str(corpus), "manifest": str(corpus / "m.csv")}
    write_params(tmp_path, {"dataset": dataset, "eval": {"n_folds": 2}})
    monkeypatch.chdir(tmp_path)
    prepare.run(load_params())
    assert read_metadata(MANIFEST)["text_decoding_replaced"] == ["a"]
    assert "1 text(s) had bytes that are not UTF-8" in capsys.readouterr().out


def test_long_rtl_cjk_emoji_and_empty_texts_embed_or_count_as_missing(project):
    from pipeline.params import load_params
    from pipeline.stages import MANIFEST, TEXT_STORE, text_features
    from pipeline.store import read_matrix, read_metadata, read_store, write_store
    from tests.conftest import write_params

    write_params(project, {"text": {"batch_size": 4}})  # a 1,200-word-piece text takes 6 windows: 2 batches
    assert load_params().text.batch_size == 4
    manifest = read_store(MANIFEST)
    texts = {
        0: "la la love " * 400,  # 1,200 word-pieces, more windows than one batch holds
        1: "أحبك يا قمري " * 20,  # right-to-left
        2: "我爱你 🌙💔 사랑해",
        3: "   \n\t ",
        4: "",
    }
    for row, text in texts.items():
        manifest.loc[row, "text"] = text
    import pyarrow.parquet as pq

    write_store(manifest, MANIFEST, pq.read_schema(MANIFEST).remove_metadata(), read_metadata(MANIFEST))
    text_features.run(load_params())
    ids, matrix, present = read_matrix(TEXT_STORE)
    store = read_store(TEXT_STORE).set_index("clip_id")
    by_id = dict(zip(ids, range(len(ids))))
    for row in (0, 1, 2):
        cid = manifest["clip_id"][row]
        assert present[by_id[cid]] and np.isfinite(matrix[by_id[cid]]).all()
        assert abs(np.linalg.norm(matrix[by_id[cid]]) - 1) < 1e-4
    long_text = store.loc[manifest["clip_id"][0]]
    assert long_text["n_tokens"] == 1_200  # every word-piece of the long text, not the first window's
    window, overlap = 256 - 2, load_params().text.overlap  # MiniLM: 256 positions, [CLS] and [SEP]
    assert long_text["n_chunks"] == -(-(1_200 - overlap) // (window - overlap)) > load_params().text.batch_size
    for row in (3, 4):
        assert not store.loc[manifest["clip_id"][row], "has_text"]
