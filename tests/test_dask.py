"""The Dask executor: same results as local processes, a killed worker loses nothing."""

import os
import signal

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pipeline.executor import ClipFailure, ClipTask, DaskSettings, iter_clips, map_clips
from pipeline.features.audio import AudioFeatureConfig
from pipeline.stages.audio_features import extract_file

distributed = pytest.importorskip("distributed")

SR = 22050
CONFIG = AudioFeatureConfig(melspec_frames=64)


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
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        settings = DaskSettings(cluster.scheduler_address, 2)
        outcomes = []
        for outcome in iter_clips(extract_file, tasks, stage="features", dask=settings):
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


def test_the_audio_stage_on_dask_writes_the_same_store(project):
    from pipeline.params import load_params
    from pipeline.stages import AUDIO_ERRORS, AUDIO_STORE, audio_features
    from pipeline.store import read_store
    from tests.conftest import write_params

    local = read_store(AUDIO_STORE)
    write_params(project, {"executor": {"kind": "dask", "workers": 2}, "cache": {"enabled": False}})
    audio_features.run(load_params())
    pd.testing.assert_frame_equal(read_store(AUDIO_STORE), local)
    assert len(read_store(AUDIO_ERRORS)) == 0
