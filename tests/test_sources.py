"""Audio behind fsspec URLs: manifests, decoding, the cache and the stages read them like local files."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline.audio_io import AudioDecodeError, read_audio
from pipeline.datasets.manifest import ManifestError, read_manifest_file, validate_manifest
from pipeline.executor import ClipCache
from pipeline.sources import is_url, source_exists, source_state
from pipeline.stages import AUDIO_STORE, MANIFEST, audio_features
from pipeline.store import read_metadata, read_store, write_store


def tone(path, seconds: float = 1.0, sr: int = 22050):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr)
    return path


def test_urls_are_told_from_paths():
    assert is_url("s3://bucket/a.mp3") and is_url("file:///data/a.wav") and is_url("gs://b/c.flac")
    assert not is_url("data/a.wav") and not is_url("/abs/a.wav") and not is_url("C:/x.wav")


def test_a_file_url_decodes_like_its_path(tmp_path):
    path = tone(tmp_path / "a.wav", 2.0)
    url = path.as_uri()
    local, _ = read_audio(path, 16000, offset_s=0.5, duration_s=1.0)
    remote, _ = read_audio(url, 16000, offset_s=0.5, duration_s=1.0)
    np.testing.assert_array_equal(remote, local)
    assert source_exists(url) and not source_exists(url + ".missing")
    before = source_state(url)
    assert source_state(url) == before
    tone(path, 1.0)  # rewritten: the cache must not trust a result computed from the old bytes
    assert source_state(url) != before
    cache = ClipCache(tmp_path / "cache", "fp")
    assert cache.key(url) == cache.key(str(path))  # the key is the bytes, wherever they are


def test_an_unknown_scheme_names_the_package_to_install(tmp_path):
    with pytest.raises(AudioDecodeError, match="no fsspec filesystem for nosuch://"):
        read_audio("nosuch://bucket/a.wav", 22050)


def test_a_manifest_may_name_urls_and_missing_ones_are_errors(tmp_path):
    urls = [tone(tmp_path / f"{name}.wav").as_uri() for name in ("a", "b")]
    rows = [{"clip_id": c, "audio_path": u, "label": lab} for c, u, lab in zip("ab", urls, ["happy", "sad"])]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    df = validate_manifest(read_manifest_file(tmp_path / "m.csv"), n_folds=1)
    assert df["audio_path"].tolist() == urls  # kept as written, not joined to the manifest's folder
    rows.append({"clip_id": "c", "audio_path": (tmp_path / "gone.wav").as_uri(), "label": "happy"})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ManifestError, match="1 audio file\\(s\\) not found, e.g. file://.*gone.wav"):
        validate_manifest(read_manifest_file(tmp_path / "m.csv"), n_folds=1)


def test_the_audio_stage_reads_urls(project):
    from pipeline.params import load_params
    from tests.conftest import write_params

    write_params(project, {"cache": {"enabled": False}})  # decode every clip through its URL
    expected = read_store(AUDIO_STORE)
    manifest = read_store(MANIFEST)
    manifest["audio_path"] = [(project / p).resolve().as_uri() for p in manifest["audio_path"]]
    write_store(manifest, MANIFEST, pq.read_schema(MANIFEST).remove_metadata(), read_metadata(MANIFEST))
    audio_features.run(load_params())
    got = read_store(AUDIO_STORE)
    assert got["clip_id"].tolist() == expected["clip_id"].tolist()
    pd.testing.assert_frame_equal(got, expected)


def test_a_text_path_url_is_refused_with_the_way_out(tmp_path):
    a = tone(tmp_path / "a.wav")
    rows = [{"clip_id": "a", "audio_path": "a.wav", "text_path": "s3://bucket/a.txt", "label": "happy"}]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(
        ManifestError, match="text_path 's3://bucket/a.txt' of clip 'a' is a URL; text files must be local"
    ):
        read_manifest_file(tmp_path / "m.csv")
    assert a.exists()
