"""The Dask executor: same results as local processes, a killed worker loses nothing."""

import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pipeline.executor import ClipFailure, ClipTask, DaskSettings, iter_clips, map_clips
from pipeline.features.audio import AudioFeatureConfig
from pipeline.stages.audio_features import extract_file

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.cluster
import dask  # noqa: E402  (after the skip: distributed brings dask)

from pipeline.executor import LOCAL_TRIM_KEY, ClipCache  # noqa: E402

SR = 22050
CONFIG = AudioFeatureConfig(melspec_frames=64)


@pytest.fixture(autouse=True)
def restored_environment():
    """Dask nannies write their workers' variables into this process; later tests must not inherit them."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def slow_extract(path: str, config: AudioFeatureConfig, calls: str) -> dict:
    """extract_file that takes long enough to be caught mid-run, and leaves a mark per computation."""
    import time
    import uuid

    (Path(calls) / f"{Path(path).stem}-{uuid.uuid4().hex}").touch()
    time.sleep(0.2)
    return extract_file(path, config)


def crash_on_broken(path: str, config: AudioFeatureConfig) -> dict:
    """A decoder crash that takes the whole worker process down (a segfault, say) on one file."""
    if path.endswith("broken.wav"):
        os._exit(1)
    return extract_file(path, config)


def crash_twice_on_clip01(path: str, config: AudioFeatureConfig) -> dict:
    """Takes its worker down on the first two tries of clip01 only (counted in a file beside it)."""
    if path.endswith("clip01.wav"):
        counter = Path(path + ".crashes")
        crashes = int(counter.read_text()) if counter.exists() else 0
        if crashes < 2:
            counter.write_text(str(crashes + 1))
            os._exit(1)
    return extract_file(path, config)


def write_clips(folder, n: int) -> list[ClipTask]:
    tasks = []
    for i in range(n):
        t = np.arange(int(1.5 * SR)) / SR
        y = 0.3 * np.sin(2 * np.pi * (220 + 20 * i) * t) + 0.01 * np.random.default_rng(i).normal(size=t.size)
        path = folder / f"clip{i:02d}.wav"
        sf.write(path, y.astype(np.float32), SR)
        tasks.append(ClipTask(f"clip{i:02d}", (str(path), CONFIG)))
    (folder / "broken.wav").write_bytes(b"RIFF....not audio")
    return [*tasks, ClipTask("broken", (str(folder / "broken.wav"), CONFIG))]


def assert_same_results(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)  # every clip once, in input order
    for clip_id, record in expected.items():
        for key, value in record.items():
            np.testing.assert_array_equal(got[clip_id][key], value, err_msg=f"{clip_id}/{key}")


def test_a_dask_local_cluster_gives_what_local_processes_give(tmp_path):
    tasks = write_clips(tmp_path, 8)
    local, local_failures = map_clips(extract_file, tasks, n_jobs=2, stage="features")
    on_dask, dask_failures = map_clips(
        extract_file, tasks, n_jobs=2, stage="features", dask=DaskSettings("local-cluster", 2)
    )
    assert_same_results(on_dask, local)
    assert dask_failures == local_failures and [f.clip_id for f in dask_failures] == ["broken"]
    assert dask_failures[0].error_type == "AudioDecodeError"


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(tmp_path):
    tasks = write_clips(tmp_path, 24)
    expected, _ = map_clips(extract_file, tasks, n_jobs=1, stage="features")
    calls = tmp_path / "calls"
    calls.mkdir()
    slow_tasks = [ClipTask(t.clip_id, (*t.args, str(calls))) for t in tasks]
    with (
        dask.config.set({LOCAL_TRIM_KEY: None}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        settings = DaskSettings(cluster.scheduler_address, 2)
        outcomes = []
        for outcome in iter_clips(slow_extract, slow_tasks, stage="features", dask=settings):
            outcomes.append(outcome)
            if len(outcomes) == 3:  # work is in flight on both workers: kill one outright
                killed = next(iter(client.run(os.getpid).values()))
                os.kill(killed, signal.SIGKILL)
        client.wait_for_workers(2, timeout=60)
        assert killed not in client.run(os.getpid).values()  # it died (its nanny started a new one)
    ids = [clip_id for clip_id, _, _ in outcomes]
    assert ids == [t.clip_id for t in tasks]  # each clip exactly once, in order
    got = {cid: o for cid, o, _ in outcomes if not isinstance(o, ClipFailure)}
    assert_same_results(got, expected)
    computed = len(list(calls.iterdir()))
    assert computed > len(tasks)  # the clip in flight on the killed worker was started again: work was recovered


def test_a_clip_that_kills_its_worker_becomes_a_recorded_failure(tmp_path):
    tasks = write_clips(tmp_path, 4)
    one_at_a_time = {"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}
    with dask.config.set(one_at_a_time):
        results, failures = map_clips(crash_on_broken, tasks, stage="features", dask=DaskSettings("local-cluster", 2))
    assert sorted(results) == [f"clip{i:02d}" for i in range(4)]
    (failure,) = failures
    assert failure.clip_id == "broken" and failure.error_type == "KilledWorker"
    assert "features-broken-" in failure.message  # the task key names the clip


def test_a_clip_killed_beside_a_crashing_one_gets_a_second_run_before_its_verdict(tmp_path):
    # Dask charges a death to every task on the dying worker; clip01 plays such a bystander:
    # its two runs die (Dask's verdict with allowed-failures 1), the third, run alone, succeeds.
    tasks = write_clips(tmp_path, 3)[:3]
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        results, failures = map_clips(
            crash_twice_on_clip01, tasks, stage="features", dask=DaskSettings("local-cluster", 2)
        )
    assert failures == []
    assert sorted(results) == ["clip00", "clip01", "clip02"]
    assert (tmp_path / "clip01.wav.crashes").read_text() == "2"


def test_the_cache_serves_dask_runs(tmp_path):
    tasks = [ClipTask(t.clip_id, t.args, source=t.args[0]) for t in write_clips(tmp_path, 6)]
    cache = ClipCache(tmp_path / "cache", "fingerprint")
    first = list(iter_clips(extract_file, tasks, n_jobs=1, stage="features", cache=cache))
    again = list(iter_clips(extract_file, tasks, stage="features", cache=cache, dask=DaskSettings("local-cluster", 2)))
    assert [cached for cid, _, cached in again if cid != "broken"] == [True] * 6  # computed locally, read on Dask
    assert_same_results(
        {cid: o for cid, o, _ in again if cid != "broken"}, {cid: o for cid, o, _ in first if cid != "broken"}
    )


def test_the_audio_stage_on_dask_writes_the_same_store(project, monkeypatch):
    import pipeline.executor
    from pipeline.params import load_params
    from pipeline.stages import AUDIO_ERRORS, AUDIO_STORE, audio_features
    from pipeline.store import read_store
    from tests.conftest import write_params

    local = read_store(AUDIO_STORE)
    write_params(project, {"executor": {"kind": "dask", "workers": 2}, "cache": {"enabled": False}})
    clusters = []
    real_client = pipeline.executor._dask_client

    def recording_client(settings):
        clusters.append(settings)
        return real_client(settings)

    monkeypatch.setattr(pipeline.executor, "_dask_client", recording_client)
    audio_features.run(load_params())
    assert clusters == [DaskSettings("local-cluster", 2)]  # the stage really ran on Dask
    pd.testing.assert_frame_equal(read_store(AUDIO_STORE), local)
    assert len(read_store(AUDIO_ERRORS)) == 0
