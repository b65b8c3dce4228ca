from pathlib import Path

import numpy as np
import pytest

from pipeline.executor import (
    ClipCache,
    ClipFailure,
    ClipTask,
    StageFailed,
    check_error_budget,
    clear_cache,
    iter_clips,
    map_clips,
)


def square_unless_negative(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative input {x}")
    return x * x


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_failures_are_recorded_and_the_rest_completes(n_jobs):
    tasks = [ClipTask(f"c{i}", (x,)) for i, x in enumerate([1, -2, 3, -4, 5])]
    results, failures = map_clips(square_unless_negative, tasks, n_jobs=n_jobs, stage="features")
    assert results == {"c0": 1, "c2": 9, "c4": 25}
    assert list(results) == ["c0", "c2", "c4"]  # input order
    assert failures == [
        ClipFailure("c1", "features", "ValueError", "negative input -2"),
        ClipFailure("c3", "features", "ValueError", "negative input -4"),
    ]


def test_error_budget_summarises_the_failures():
    failures = [ClipFailure(f"c{i}", "decode", "AudioDecodeError", "bad header") for i in range(3)]
    check_error_budget(3, 100, 0.05, failures, "audio_features")  # 3% is within budget
    with pytest.raises(
        StageFailed, match=r"3 of 10 clips failed \(30.0% > .*decode/AudioDecodeError: 3.*c0: bad header"
    ):
        check_error_budget(3, 10, 0.05, failures, "audio_features")


def read_and_double(path: str) -> dict:
    return {"doubled": 2 * np.loadtxt(path, ndmin=1)}


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_cache_hits_unchanged_sources_and_misses_changed_ones(tmp_path, n_jobs):
    sources = []
    for i in range(4):
        path = tmp_path / f"clip{i}.txt"
        path.write_text(f"{i}\n")
        sources.append(str(path))
    cache = ClipCache(tmp_path / "cache", fingerprint="v1")
    tasks = [ClipTask(f"c{i}", (p,), source=p) for i, p in enumerate(sources)]
    first = list(iter_clips(read_and_double, tasks, n_jobs=n_jobs, cache=cache))
    assert [cached for _, _, cached in first] == [False] * 4
    (tmp_path / "clip2.txt").write_text("20\n")  # changed bytes -> new key
    second = list(iter_clips(read_and_double, tasks, n_jobs=n_jobs, cache=cache))
    assert [cached for _, _, cached in second] == [True, True, False, True]
    assert second[2][1]["doubled"].tolist() == [40.0]
    other = ClipCache(tmp_path / "cache", fingerprint="v2")  # changed settings -> all recomputed
    assert not any(c for _, _, c in iter_clips(read_and_double, tasks, n_jobs=n_jobs, cache=other))
    assert clear_cache(tmp_path / "cache") == 9 and not (tmp_path / "cache").exists()


def test_corrupt_cache_entry_is_a_miss(tmp_path):
    source = tmp_path / "clip.txt"
    source.write_text("1\n")
    cache = ClipCache(tmp_path / "cache", "v1")
    key = cache.key(str(source))
    cache.save(key, {"x": np.ones(3)})
    next((tmp_path / "cache").rglob("*.npz")).write_bytes(b"truncated")
    assert cache.load(key) is None
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_interrupted_cache_write_leaves_no_entry(tmp_path, monkeypatch):
    source = tmp_path / "clip.txt"
    source.write_text("1\n")
    cache = ClipCache(tmp_path / "cache", "v1")
    key = cache.key(str(source))

    def dies_midway(fh, **arrays):
        fh.write(b"PK\x03\x04 half an entry")
        raise KeyboardInterrupt  # as if the run were killed while writing

    monkeypatch.setattr(np, "savez", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        cache.save(key, {"x": np.ones(3)})
    monkeypatch.undo()
    assert cache.load(key) is None
    assert not list((tmp_path / "cache").rglob("*"))[1:]  # only the shard folder, no temp or partial file


def test_a_file_changed_during_extraction_is_not_cached(tmp_path):
    source = tmp_path / "clip.txt"
    source.write_text("1\n")
    cache = ClipCache(tmp_path / "cache", "v1")

    def rewrite_while_working(path: str) -> dict:
        Path(path).write_text("2\n")
        return {"x": np.ones(1)}

    list(iter_clips(rewrite_while_working, [ClipTask("c", (str(source),), str(source))], n_jobs=1, cache=cache))
    assert not list((tmp_path / "cache").rglob("*.npz"))
