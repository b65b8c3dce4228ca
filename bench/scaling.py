"""Executor scaling: clips/s of the audio stage's work on local processes and on Dask, in one run.

Generates N music-like clips (default 256 of 10 s, 44.1 kHz stereo WAV) and runs what the
audio stage runs — decode + ``extract_clip`` per clip, then both stores (descriptors and
the log-mel tensors) written — with: local joblib processes, 1 and 2 workers (the
baseline is local with 1 worker, single-file stores), and a Dask ``LocalCluster`` of 1
and 2 single-threaded worker processes (cluster start-up excluded: a warm-up pass runs
first on the same cluster). Each executor runs twice: single-file stores (rows come back
to this process, which writes them) and partitioned stores (each worker writes its own
part files, 64 clips a part; only clip ids and errors come back). Prints clips/s and ratios against the
baseline; JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpus import write_music_wavs  # noqa: E402  (bench/ is on sys.path when run as a script)
from results_io import emit  # noqa: E402

from pipeline.executor import ClipTask  # noqa: E402
from pipeline.features.audio import AudioFeatureConfig, feature_names  # noqa: E402
from pipeline.params import ExecutorParams, Params, StoreParams  # noqa: E402
from pipeline.stages.audio_features import extract_file, tabulate  # noqa: E402
from pipeline.stages.clips import ClipStores, StoreSpec  # noqa: E402
from pipeline.store import audio_schema, melspec_schema  # noqa: E402

CONFIG = AudioFeatureConfig()
ROWS_PER_PART = 64  # 4 parts of the default 256 clips: two per worker


def make_tasks(folder: Path, n: int, seconds: float) -> list[ClipTask]:
    paths = write_music_wavs(folder, n, seconds, seed=5)
    return [ClipTask(f"c{i}", (path, CONFIG)) for i, path in enumerate(paths)]


def run_stage(tasks: list[ClipTask], out: Path, executor: ExecutorParams, partitioned: bool) -> None:
    """Map the audio job over ``tasks`` and write the two audio stores, as the stage does."""
    names = feature_names(CONFIG)
    stores = [
        StoreSpec(out / "audio.parquet", audio_schema(names), {}),
        StoreSpec(out / "melspec.parquet", melspec_schema(CONFIG.melspec_n_mels, CONFIG.melspec_frames), {}),
    ]
    params = Params(executor=executor, store=StoreParams(partitioned=partitioned, rows_per_part=ROWS_PER_PART))
    with ClipStores(params, stores) as stage:
        failures, _ = stage.run(extract_file, tasks, functools.partial(tabulate, names=names), "features", "x", None)
    assert not failures and stage.rows == len(tasks)


def clips_per_s(tasks: list[ClipTask], out: Path, executor: ExecutorParams, partitioned: bool) -> float:
    workers = executor.workers if executor.kind == "dask" else executor.n_jobs
    run_stage(tasks[: 4 * workers], out, executor, False)  # warm-up: one clip a task reaches every worker
    start = time.perf_counter()
    run_stage(tasks, out, executor, partitioned)
    return len(tasks) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=256, help="clips (default 256)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10 s)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    import dask
    from distributed import Client, LocalCluster

    from pipeline.executor import LOCAL_TRIM_KEY

    result: dict = {"clips": args.clips, "clip_s": args.seconds, "cores": os.cpu_count()}
    layouts = {"": False, "_partitioned": True}
    with tempfile.TemporaryDirectory() as tmp:
        tasks = make_tasks(Path(tmp), args.clips, args.seconds)
        out = Path(tmp) / "stores"
        for workers in (1, 2):
            for suffix, partitioned in layouts.items():
                local = ExecutorParams(kind="local", n_jobs=workers)
                result[f"local_{workers}_workers{suffix}_clips_per_s"] = clips_per_s(tasks, out, local, partitioned)
        for workers in (1, 2):  # a cluster kept across the warm-up and the timed pass, as mmer starts one
            kwargs = {"threads_per_worker": 1, "processes": True, "host": "127.0.0.1", "dashboard_address": None}
            with dask.config.set({LOCAL_TRIM_KEY: None}), LocalCluster(n_workers=workers, **kwargs) as cluster:
                with Client(cluster):
                    on_dask = ExecutorParams(kind="dask", address=cluster.scheduler_address, workers=workers)
                    for suffix, partitioned in layouts.items():
                        speed = clips_per_s(tasks, out, on_dask, partitioned)
                        result[f"dask_{workers}_workers{suffix}_clips_per_s"] = speed
    base = result["local_1_workers_clips_per_s"]
    for key in [k for k in result if k.endswith("clips_per_s")]:
        result[key] = round(result[key], 2)
        result[key.replace("clips_per_s", "vs_local_1")] = round(result[key] / base, 2)
    emit(result, args.json)


if __name__ == "__main__":
    main()
