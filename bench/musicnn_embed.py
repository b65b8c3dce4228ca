"""musicnn embedding speed: patches/s and clips/s of the per-clip musicnn job, in one run.

Generates N music-like clips (30 s, 44.1 kHz stereo WAV) and measures, through the
same executor the stage uses (one torch/BLAS thread per worker):

(a) the baseline: mmer's hand-crafted descriptor job (decode + ``extract_clip``), 1 worker;
(b) the musicnn job (decode at 16 kHz, log-mel, 3-s patches through the PyTorch port), 1 worker;
(c) the musicnn job with 2 workers;
(d) the network alone on a batch of 32 patches (no decoding), 1 thread.

Prints patches/s, clips/s, real-time factors and ratios against (a); writes JSON with
``--json PATH``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpus import write_music_wavs  # noqa: E402  (bench/ is on sys.path when run as a script)
from results_io import emit  # noqa: E402

from pipeline.executor import ClipTask, iter_clips  # noqa: E402
from pipeline.features.audio import AudioFeatureConfig  # noqa: E402
from pipeline.features.musicnn import PATCH_FRAMES, MusicnnConfig  # noqa: E402
from pipeline.features.musicnn_net import load_musicnn  # noqa: E402
from pipeline.stages import audio_features, musicnn_features  # noqa: E402


def time_jobs(job, args_tail: tuple, paths: list[str], n_jobs: int) -> tuple[float, list]:
    """Seconds for one pass of ``job`` over ``paths`` through the executor (after a warm-up)."""
    tasks = [ClipTask(f"c{i}", (os.path.abspath(p), *args_tail)) for i, p in enumerate(paths)]
    list(iter_clips(job, tasks[: max(2, n_jobs)], n_jobs=n_jobs, desc="warm-up"))  # workers, weights, numba
    start = time.perf_counter()
    outcomes = list(iter_clips(job, tasks, n_jobs=n_jobs, desc=f"{job.__module__.split('.')[-1]} x{n_jobs}"))
    elapsed = time.perf_counter() - start
    failed = [o for _, o, _ in outcomes if not isinstance(o, dict)]
    if failed:
        raise RuntimeError(f"benchmark clips failed: {failed[:2]}")
    return elapsed, [o for _, o, _ in outcomes]


def time_network(model_name: str, batch: int = 32, repeat: int = 5) -> float:
    """Patches per second of the network alone, one thread."""
    import torch

    torch.set_num_threads(1)
    model = load_musicnn(model_name)
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 4, (batch, PATCH_FRAMES, 96)).astype(np.float32))
    with torch.inference_mode():
        model(x)
        start = time.perf_counter()
        for _ in range(repeat):
            model(x)
    return batch * repeat / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16, help="clips (default 16)")
    parser.add_argument("--duration", type=float, default=30.0, help="clip length in seconds (default 30)")
    parser.add_argument("--model", default="MSD_musicnn", help="MSD_musicnn or MTT_musicnn")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    config = MusicnnConfig(model=args.model)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_music_wavs(Path(tmp), args.clips, args.duration, seed=3)
        base_s, _ = time_jobs(audio_features.extract_file, (AudioFeatureConfig(),), paths, 1)
        one_s, records = time_jobs(musicnn_features.extract_file, (config, 0.0, None), paths, 1)
        two_s, _ = time_jobs(musicnn_features.extract_file, (config, 0.0, None), paths, 2)
    patches = sum(int(r["n_patches"]) for r in records)
    audio_s = args.clips * args.duration
    result = {
        "clips": args.clips,
        "clip_s": args.duration,
        "patches": patches,
        "descriptors_1_worker_clips_per_s": round(args.clips / base_s, 2),
        "musicnn_1_worker_clips_per_s": round(args.clips / one_s, 2),
        "musicnn_1_worker_patches_per_s": round(patches / one_s, 1),
        "musicnn_2_workers_clips_per_s": round(args.clips / two_s, 2),
        "musicnn_2_workers_patches_per_s": round(patches / two_s, 1),
        "musicnn_2_workers_x_real_time": round(audio_s / two_s, 1),
        "network_only_patches_per_s_1_thread": round(time_network(args.model), 1),
        "musicnn_time_vs_descriptors": round(one_s / base_s, 2),
        "scaling_2_workers": round(one_s / two_s, 2),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
