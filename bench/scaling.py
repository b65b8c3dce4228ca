"""Executor scaling: clips/s of the audio job on local processes and on Dask, in one run.

Generates N music-like clips (default 120 of 10 s, 44.1 kHz stereo WAV) and runs mmer's per-clip
audio job (decode + ``extract_clip``) over them with: local joblib processes, 1 and 2
workers (the baseline is local with 1 worker), and a Dask ``LocalCluster`` of 1 and 2
single-threaded worker processes (cluster start-up excluded: a warm-up pass runs first
on the same cluster). Prints clips/s and ratios against the baseline; JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpus import write_music_wavs  # noqa: E402  (bench/ is on sys.path when run as a script)
from results_io import emit  # noqa: E402

from pipeline.executor import ClipTask, DaskSettings, iter_clips  # noqa: E402
from pipeline.features.audio import AudioFeatureConfig  # noqa: E402
from pipeline.stages.audio_features import extract_file  # noqa: E402


def make_tasks(folder: Path, n: int, seconds: float) -> list[ClipTask]:
    paths = write_music_wavs(folder, n, seconds, seed=5)
    return [ClipTask(f"c{i}", (path, AudioFeatureConfig())) for i, path in enumerate(paths)]


def clips_per_s(tasks: list[ClipTask], n_jobs: int = 1, dask: DaskSettings | None = None) -> float:
    list(iter_clips(extract_file, tasks[: 2 * n_jobs], n_jobs=n_jobs, dask=dask, desc="warm-up"))
    start = time.perf_counter()
    outcomes = list(iter_clips(extract_file, tasks, n_jobs=n_jobs, dask=dask, desc=f"x{n_jobs}"))
    elapsed = time.perf_counter() - start
    assert all(isinstance(o, dict) for _, o, _ in outcomes)
    return len(tasks) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=120, help="clips (default 120)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10 s)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    import dask
    from distributed import Client, LocalCluster

    from pipeline.executor import LOCAL_TRIM_KEY

    result: dict = {"clips": args.clips, "clip_s": args.seconds, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tasks = make_tasks(Path(tmp), args.clips, args.seconds)
        result["local_1_worker_clips_per_s"] = clips_per_s(tasks, 1)
        result["local_2_workers_clips_per_s"] = clips_per_s(tasks, 2)
        for workers in (1, 2):  # a cluster kept across the warm-up and the timed pass, as mmer starts one
            kwargs = {"threads_per_worker": 1, "processes": True, "host": "127.0.0.1", "dashboard_address": None}
            with dask.config.set({LOCAL_TRIM_KEY: None}), LocalCluster(n_workers=workers, **kwargs) as cluster:
                with Client(cluster):
                    settings = DaskSettings(cluster.scheduler_address, workers)
                    result[f"dask_{workers}_workers_clips_per_s"] = clips_per_s(tasks, workers, settings)
    base = result["local_1_worker_clips_per_s"]
    for key in [k for k in result if k.endswith("clips_per_s")]:
        result[key] = round(result[key], 2)
        result[key.replace("clips_per_s", "vs_local_1")] = round(result[key] / base, 2)
    emit(result, args.json)


if __name__ == "__main__":
    main()
