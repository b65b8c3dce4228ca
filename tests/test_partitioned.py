"""Partitioned stores: folders of part files written by the workers, read like one file."""

import functools
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.executor import ClipCache, DaskSettings, iter_partitions, map_clips, partitions
from pipeline.features.audio import feature_names
from pipeline.inspect_store import describe
from pipeline.params import load_params
from pipeline.stages import (
    AUDIO_ERRORS,
    AUDIO_STORE,
    ESSENTIA_STORE,
    MELSPEC_STORE,
    TEXT_STORE,
    audio_features,
    essentia_features,
    text_features,
)
from pipeline.stages.audio_features import extract_file, tabulate
from pipeline.stages.clips import TableSink
from pipeline.store import (
    COMMON_METADATA,
    DatasetWriter,
    PartFolder,
    audio_schema,
    melspec_schema,
    part_name,
    read_matrix,
    read_metadata,
    read_store,
    read_tensor,
    write_store,
    write_text,
)
from tests.conftest import write_params
from tests.test_dask import CONFIG, crash_on_broken, restored_environment, slow_extract, write_clips  # noqa: F401

SCHEMA = pa.schema([("clip_id", pa.string()), ("x", pa.float32())])


def frame(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"clip_id": ids, "x": np.arange(len(ids), dtype=np.float32)})


def test_a_dataset_reads_back_in_part_order_with_its_metadata(tmp_path):
    path = tmp_path / "store.parquet"
    with DatasetWriter(path, SCHEMA, {"store": "toy"}) as writer:
        writer.parts.write(frame(["c", "d"]), "part-00001")
        writer.parts.write(frame(["a", "b"]), "part-00000")
        assert not path.exists()  # nothing visible before the block ends
    assert sorted(p.name for p in path.iterdir()) == [COMMON_METADATA, "part-00000.parquet", "part-00001.parquet"]
    assert read_store(path)["clip_id"].tolist() == ["a", "b", "c", "d"]
    assert read_metadata(path) == {"store": "toy"}
    assert pq.read_schema(path / "part-00001.parquet").metadata[b"mmer"] == b'{"store": "toy"}'  # each part says it too
    assert pd.read_parquet(path)["clip_id"].tolist() == ["a", "b", "c", "d"]  # pandas/pyarrow read the folder


def test_other_engines_read_the_folder(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    import dask.dataframe as dd

    path = tmp_path / "store.parquet"
    with DatasetWriter(path, SCHEMA, {"store": "toy"}) as writer:
        for i in range(3):
            writer.parts.write(frame([f"c{i}a", f"c{i}b"]), f"part-{i:05d}")
    (rows,) = duckdb.sql(f"SELECT count(*), sum(x) FROM '{path}/*.parquet'").fetchall()
    assert rows == (6, 3.0)
    assert sorted(dd.read_parquet(str(path)).compute()["clip_id"]) == ["c0a", "c0b", "c1a", "c1b", "c2a", "c2b"]


def test_a_failed_write_keeps_the_previous_store_and_no_temp_folder(tmp_path):
    path = tmp_path / "store.parquet"
    write_store(frame(["old"]), path, SCHEMA, {"store": "toy"})
    with pytest.raises(RuntimeError, match="boom"), DatasetWriter(path, SCHEMA, {}) as writer:
        writer.parts.write(frame(["new"]), "part-00000")
        raise RuntimeError("boom")
    assert path.is_file() and read_store(path)["clip_id"].tolist() == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["store.parquet"]


def test_a_folder_replaces_a_file_and_a_file_replaces_a_folder(tmp_path):
    path = tmp_path / "store.parquet"
    write_store(frame(["file"]), path, SCHEMA, {})
    with DatasetWriter(path, SCHEMA, {}) as writer:
        writer.parts.write(frame(["folder"]), "part-00000")
    assert path.is_dir() and read_store(path)["clip_id"].tolist() == ["folder"]
    write_store(frame(["file again"]), path, SCHEMA, {})
    assert path.is_file() and read_store(path)["clip_id"].tolist() == ["file again"]
    assert [p.name for p in tmp_path.iterdir()] == ["store.parquet"]  # nothing left aside


def test_an_empty_dataset_keeps_its_schema(tmp_path):
    path = tmp_path / "store.parquet"
    with DatasetWriter(path, SCHEMA, {"store": "toy"}):
        pass
    empty = read_store(path)
    assert list(empty.columns) == ["clip_id", "x"] and len(empty) == 0


def test_lost_parts_are_an_error_and_nothing_is_replaced(tmp_path):
    path = tmp_path / "store.parquet"
    write_store(frame(["old"]), path, SCHEMA, {})
    with pytest.raises(RuntimeError, match="the part files hold 2 rows, 3 clips were computed"):
        with DatasetWriter(path, SCHEMA, {}) as writer:
            writer.parts.write(frame(["a", "b"]), "part-00000")
            writer.expected_rows = 3
    assert read_store(path)["clip_id"].tolist() == ["old"]


def test_a_worker_that_cannot_see_the_folder_refuses_to_write(tmp_path):
    with pytest.raises(FileNotFoundError, match="not visible on .*workers must share the client's features/ folder"):
        PartFolder(str(tmp_path / "elsewhere"), SCHEMA).write(frame(["a"]), "part-00000")
    assert not (tmp_path / "elsewhere").exists()  # not created behind the client's back


def test_only_stores_replace_a_folder(tmp_path):
    (tmp_path / "report.json").mkdir()
    with pytest.raises(IsADirectoryError, match="a folder is in the way"):
        write_text("{}", tmp_path / "report.json")
    assert (tmp_path / "report.json").is_dir()


def test_a_folder_without_parts_is_not_a_store(tmp_path):
    (tmp_path / "store.parquet").mkdir()
    with pytest.raises(FileNotFoundError, match="without part-\\*.parquet files"):
        read_store(tmp_path / "store.parquet")


def audio_sink(tmp_path: Path) -> tuple[TableSink, list[DatasetWriter]]:
    names = feature_names(CONFIG)
    writers = [
        DatasetWriter(tmp_path / "audio.parquet", audio_schema(names), {}),
        DatasetWriter(tmp_path / "melspec.parquet", melspec_schema(CONFIG.melspec_n_mels, CONFIG.melspec_frames), {}),
    ]
    return functools.partial(tabulate, names=names), writers


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_local_workers_write_the_parts_and_send_back_no_rows(tmp_path, n_jobs):
    tasks = write_clips(tmp_path, 7)  # 7 clips + a broken one, 3 per part
    rows, writers = audio_sink(tmp_path)
    with writers[0] as descriptors, writers[1] as mels:
        sink = TableSink(rows, (descriptors.parts, mels.parts))
        results = list(iter_partitions(extract_file, partitions(tasks, 3), sink, n_jobs=n_jobs, stage="features"))
    outcomes = [o for part, _ in results for o in part]
    assert [cid for cid, _, _ in outcomes] == [t.clip_id for t in tasks]
    assert [cid for cid, failure, _ in outcomes if failure is not None] == ["broken"]
    assert all(failure is None or failure.error_type == "AudioDecodeError" for _, failure, _ in outcomes)
    assert sorted(p.name for p in descriptors.path.glob("part-*")) == [f"part-0000{i}.parquet" for i in range(3)]
    ids, mel, _ = read_tensor(mels.path)
    assert ids.tolist() == [f"clip{i:02d}" for i in range(7)] and mel.shape == (7, CONFIG.melspec_n_mels, 64)
    expected, _ = map_clips(extract_file, tasks, n_jobs=1, stage="features")  # what the file path streams
    np.testing.assert_array_equal(mel, np.stack([expected[i]["melspec"] for i in ids]))
    matrix = np.stack([expected[i]["descriptors"] for i in ids])
    np.testing.assert_array_equal(read_store(descriptors.path).iloc[:, 1:].to_numpy(), matrix)


def test_partitions_use_the_cache(tmp_path):
    tasks = [t.__class__(t.clip_id, t.args, source=t.args[0]) for t in write_clips(tmp_path, 4)[:4]]
    cache = ClipCache(tmp_path / "cache", "fingerprint")
    rows, writers = audio_sink(tmp_path)
    for expected in (False, True):
        with writers[0] as descriptors, writers[1] as mels:
            sink = TableSink(rows, (descriptors.parts, mels.parts))
            results = list(iter_partitions(extract_file, partitions(tasks, 2), sink, n_jobs=1, cache=cache))
        assert [cached for part, _ in results for _, _, cached in part] == [expected] * 4


def test_partition_names_sort_in_input_order():
    names = [p.name for p in partitions(list(range(99_999)), 1)]
    assert names[:2] == ["part-00000", "part-00001"] and names[-1] == "part-99998" and sorted(names) == names
    rerun = [part_name(2, 0), part_name(2, 10), part_name(2, 999_999)]  # part 2 rerun one clip per part
    order = [part_name(1), *rerun, part_name(3), part_name(10)]
    assert sorted(f"{n}.parquet" for n in order) == [f"{n}.parquet" for n in order]
    with pytest.raises(ValueError, match="exceed 100000 parts; raise store.rows_per_part"):
        partitions(list(range(100_001)), 1)
    with pytest.raises(ValueError, match="in \\[1, 1000000\\]"):
        partitions([1], 0)


def partitioned_params(project, **overrides) -> object:
    write_params(
        project, {"store": {"partitioned": True, "rows_per_part": 16}, "cache": {"enabled": False}, **overrides}
    )
    return load_params()


def test_stages_write_partitioned_stores_equal_to_single_files(project):
    stores = (AUDIO_STORE, MELSPEC_STORE, ESSENTIA_STORE, TEXT_STORE)
    files = {path: read_store(path) for path in (AUDIO_STORE, ESSENTIA_STORE)}
    mels, embeddings = read_tensor(MELSPEC_STORE), read_matrix(TEXT_STORE)
    text_counts = read_store(TEXT_STORE, columns=["clip_id", "has_text", "n_tokens", "n_chunks"])
    metas = {path: read_metadata(path) for path in stores}
    params = partitioned_params(project)
    audio_features.run(params)
    essentia_features.run(params)
    text_features.run(params)
    for path in stores:
        assert path.is_dir(), path
        assert len(list(path.glob("part-*.parquet"))) == 3, path  # 40 clips, 16 a part
        assert read_metadata(path) == metas[path]  # the same description, in _common_metadata
    for path, expected in files.items():  # every column: descriptors, essentia's key and scale
        pd.testing.assert_frame_equal(read_store(path), expected)
    for got, expected in zip(read_tensor(MELSPEC_STORE), mels):  # ids, (40, 96, 64) tensors, valid frames
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(read_matrix(TEXT_STORE), embeddings):  # ids, (40, 384) embeddings, present
        np.testing.assert_array_equal(got, expected)
    pd.testing.assert_frame_equal(read_store(TEXT_STORE, columns=list(text_counts.columns)), text_counts)
    assert len(read_store(AUDIO_ERRORS)) == 0
    summary = describe(AUDIO_STORE)
    assert "40 rows" in summary and "in 3 part files (a partitioned store)" in summary and '"store": "audio"' in summary


def test_training_on_partitioned_stores_gives_what_single_files_give(project):
    from pipeline.stages import train

    oof = project / "models" / "logreg-concat" / "oof.parquet"
    train.run(load_params(), "logreg", "concat")
    from_files = pd.read_parquet(oof)
    params = partitioned_params(project)
    for stage in (audio_features, essentia_features, text_features):
        stage.run(params)
    train.run(params, "logreg", "concat")
    pd.testing.assert_frame_equal(pd.read_parquet(oof), from_files)


@pytest.mark.cluster
def test_the_audio_stage_writes_its_parts_on_dask_workers(project):
    pytest.importorskip("distributed")
    expected = read_store(AUDIO_STORE)
    params = partitioned_params(project, executor={"kind": "dask", "workers": 2})
    audio_features.run(params)
    assert AUDIO_STORE.is_dir()
    pd.testing.assert_frame_equal(read_store(AUDIO_STORE), expected)


@pytest.mark.cluster
def test_a_worker_killed_mid_run_loses_and_duplicates_no_part(tmp_path):
    distributed = pytest.importorskip("distributed")
    tasks = write_clips(tmp_path, 16)
    calls = tmp_path / "calls"
    calls.mkdir()
    slow = [t.__class__(t.clip_id, (*t.args, str(calls))) for t in tasks]
    rows, writers = audio_sink(tmp_path)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
        writers[0] as descriptors,
        writers[1] as mels,
    ):
        sink = TableSink(rows, (descriptors.parts, mels.parts))
        settings = DaskSettings(cluster.scheduler_address, 2)
        stream = iter_partitions(slow_extract, partitions(slow, 2), sink, stage="features", dask=settings)
        results = [next(stream)]
        busy = next(worker for worker, tasks in client.processing().items() if tasks)
        os.kill(client.run(os.getpid, workers=[busy])[busy], signal.SIGKILL)  # a worker in the middle of a part
        results += list(stream)
    outcomes = [o for part, _ in results for o in part]
    assert [cid for cid, _, _ in outcomes] == [t.clip_id for t in tasks]
    assert len(list(calls.iterdir())) > len(tasks)  # a part in flight was started again
    got = read_store(descriptors.path)
    assert got["clip_id"].tolist() == [f"clip{i:02d}" for i in range(16)]  # each clip once, in order


@pytest.mark.cluster
def test_a_clip_that_kills_its_worker_costs_only_that_clip(tmp_path):
    pytest.importorskip("distributed")
    import dask

    tasks = write_clips(tmp_path, 5)  # clip00..04 + broken: parts [00 01 02] [03 04 broken]
    rows, writers = audio_sink(tmp_path)
    one_at_a_time = {"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}
    with dask.config.set(one_at_a_time), writers[0] as descriptors, writers[1] as mels:
        sink = TableSink(rows, (descriptors.parts, mels.parts))
        settings = DaskSettings("local-cluster", 2)
        results = list(iter_partitions(crash_on_broken, partitions(tasks, 3), sink, stage="features", dask=settings))
    failures = [f for part, _ in results for _, f, _ in part if f is not None]
    assert [(f.clip_id, f.error_type) for f in failures] == [("broken", "KilledWorker")]
    parts = sorted(p.name for p in descriptors.path.glob("part-*"))
    assert parts == ["part-00000.parquet", "part-00001-000000.parquet", "part-00001-000001.parquet"]
    assert read_store(descriptors.path)["clip_id"].tolist() == [f"clip{i:02d}" for i in range(5)]
