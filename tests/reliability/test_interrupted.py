"""A run killed with SIGKILL mid-extraction resumes from the cache and ends with the same store."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.stages import AUDIO_STORE


def mmer(project: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "pipeline.cli", *args]
    return subprocess.Popen(
        cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


@pytest.mark.slow
def test_kill_during_audio_extraction_then_rerun(project):
    from tests.conftest import write_params

    uninterrupted = pd.read_parquet(project / AUDIO_STORE)  # the tiny project's store, built without interruption
    write_params(project, {"executor": {"n_jobs": 1}, "cache": {"dir": "fresh_cache"}})
    (project / AUDIO_STORE).unlink()
    cache = project / "fresh_cache" / "audio"
    run = mmer(project, "audio-features")
    deadline = time.monotonic() + 120
    while len(list(cache.rglob("*.npz"))) < 5 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run.poll() is None, "the run finished before it could be killed"
    os.killpg(run.pid, signal.SIGKILL)  # the stage and its worker processes
    run.wait()
    done_before_kill = len(list(cache.rglob("*.npz")))
    assert 5 <= done_before_kill < len(uninterrupted)
    assert not (project / AUDIO_STORE).exists()  # no partial store under the real name

    rerun = mmer(project, "audio-features")
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out
    from_cache = int(out.split(" from cache")[0].split()[-1])
    assert from_cache >= done_before_kill  # finished clips were not recomputed
    resumed = pd.read_parquet(project / AUDIO_STORE)
    assert resumed["clip_id"].is_unique and len(resumed) == len(uninterrupted)
    pd.testing.assert_frame_equal(
        resumed.sort_values("clip_id").reset_index(drop=True),
        uninterrupted.sort_values("clip_id").reset_index(drop=True),
    )
    assert not list((project / "features").glob(".*.tmp"))  # the killed run's temp file was cleaned up or replaced


def test_a_full_disk_fails_clearly_and_keeps_the_previous_store(tmp_path, monkeypatch):
    import errno

    import pyarrow as pa
    import pyarrow.parquet as pq
    import pytest

    from pipeline.store import DiskFullError, write_store

    schema = pa.schema([("clip_id", pa.string()), ("x", pa.float32())])
    path = tmp_path / "features" / "store.parquet"
    write_store(pd.DataFrame({"clip_id": ["a"], "x": [1.0]}), path, schema, {"store": "test"})
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", disk_full)
    with pytest.raises(
        DiskFullError, match="store.parquet: no space left on the device .*previous store.parquet is intact"
    ):
        write_store(pd.DataFrame({"clip_id": ["b"], "x": [2.0]}), path, schema, {"store": "test"})
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["store.parquet"]  # no temp file left behind
