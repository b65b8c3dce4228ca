import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.store import (
    ERRORS_SCHEMA,
    audio_schema,
    read_matrix,
    read_metadata,
    read_store,
    text_schema,
    write_json,
    write_store,
)


def test_audio_store_round_trip_with_metadata(tmp_path):
    df = pd.DataFrame({"clip_id": ["a", "b"], "x_mean": [1.5, 2.5], "x_std": [0.1, 0.2]})
    path = tmp_path / "audio.parquet"
    write_store(df, path, audio_schema(["x_mean", "x_std"]), {"store": "audio", "feature_names": ["x_mean", "x_std"]})
    back = read_store(path)
    assert back["clip_id"].tolist() == ["a", "b"]
    np.testing.assert_allclose(back["x_mean"], [1.5, 2.5])
    assert str(pq.read_schema(path).field("x_std").type) == "float"
    assert read_metadata(path) == {"feature_names": ["x_mean", "x_std"], "store": "audio"}
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_text_store_matrix_with_null_rows_without_python_loops(tmp_path):
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "text.parquet"
    df = pd.DataFrame(
        {
            "clip_id": ["a", "b", "c"],
            "has_text": [True, False, True],
            "n_tokens": [5, 0, 7],
            "n_chunks": [1, 0, 1],
            "embedding": [vectors[0], None, vectors[2]],
        }
    )
    write_store(df, path, text_schema(4), {})
    ids, matrix, present = read_matrix(path)
    assert ids.tolist() == ["a", "b", "c"] and present.tolist() == [True, False, True]
    assert matrix.shape == (3, 4) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[[0, 2]], vectors[[0, 2]])
    assert not matrix[1].any()
    assert pq.read_table(path).column("embedding").null_count == 1


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "errors.parquet"
    good = pd.DataFrame([{"clip_id": "a", "path": "a.wav", "stage": "decode", "error_type": "E", "message": "m"}])
    write_store(good, path, ERRORS_SCHEMA, {"v": 1})
    with pytest.raises(ValueError, match="lack columns"):
        write_store(good.drop(columns="message"), path, ERRORS_SCHEMA, {"v": 2})
    assert read_metadata(path) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["errors.parquet"]


def test_missing_store_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `dvc repro`"):
        read_store(tmp_path / "absent.parquet")


def test_json_is_byte_identical_for_equal_content(tmp_path):
    write_json({"b": 1, "a": [1.0, 2.0]}, tmp_path / "one.json")
    write_json({"a": [1.0, 2.0], "b": 1}, tmp_path / "two.json")
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()


def test_store_metadata_records_the_cpu_and_kernel_overrides(tmp_path, monkeypatch):
    from pipeline.store import KERNEL_ENV, store_metadata

    manifest = tmp_path / "manifest.parquet"
    manifest.write_bytes(b"m")
    for name in KERNEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    cpu = store_metadata("audio", {}, [], manifest)["cpu"]
    assert set(cpu) == {"machine", "model", "simd", "kernel_env"}
    assert cpu["kernel_env"] == {"MKL_CBWR": "COMPATIBLE"}
    assert cpu["simd"] == sorted(cpu["simd"])
    if cpu["machine"] in ("x86_64", "AMD64"):
        assert "SSE2" in cpu["simd"]  # every x86-64 CPU has it; numpy names features in capitals
