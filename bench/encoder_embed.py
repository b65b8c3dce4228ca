"""Transformers encoder speed: x real time of the per-clip encoder job, batching, workers, bfloat16, memory.

Random-initialised models built from configs (nothing is downloaded): ``tiny`` (2 layers,
width 32, the tests' model) and ``base`` (wav2vec2-base: 12 layers, width 768, 95 M
parameters; speed depends on the architecture, not on the weights). On N music-like clips
(decoded at 16 kHz, 10-s windows, every hidden layer pooled), in one run:

(a) the baseline: a naive loop, one window per forward pass (``batch_size: 1``), in this process;
(b) the batched job (``batch_size`` windows a pass), in this process;
(c) the stage's job through the executor with 1 and 2 workers (one torch thread each);
(d) bfloat16 against float32 (base, the first 10 s of two clips, one window a pass): throughput and the
    largest deviation of the pooled features; whether the CPU has native bfloat16 instructions.

Prints x real time, ratios against (a) and peak RSS; writes JSON with ``--json PATH``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from corpus import write_music_wavs  # noqa: E402  (bench/ is on sys.path when run as a script)
from results_io import emit  # noqa: E402

from pipeline import audio_io  # noqa: E402
from pipeline.executor import ClipTask, iter_clips  # noqa: E402
from pipeline.features.encoders import EncoderConfig, embed_clip, load_encoder  # noqa: E402
from pipeline.stages import encoder_features  # noqa: E402
from tests.tiny_encoders import save_tiny_encoder  # noqa: E402


def save_base(folder: Path) -> Path:
    """A random wav2vec2-base (the architecture of wav2vec2/HuBERT/WavLM-base and MERT-95M's transformer)."""
    import torch
    import transformers as T

    torch.manual_seed(0)
    T.Wav2Vec2Model(T.Wav2Vec2Config()).eval().save_pretrained(folder)
    T.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(folder)
    return folder


def in_process(config: EncoderConfig, waves: list[np.ndarray]) -> tuple[float, list[dict]]:
    """Seconds to embed ``waves`` in this process with one torch thread (after a warm-up clip)."""
    import torch

    torch.set_num_threads(1)
    encoder = load_encoder(config)
    embed_clip(waves[0], encoder)
    start = time.perf_counter()
    records = [embed_clip(y, encoder) for y in waves]
    return time.perf_counter() - start, records


def through_executor(config: EncoderConfig, paths: list[str], n_jobs: int) -> float:
    """Seconds for the stage's job over ``paths`` with ``n_jobs`` workers (after a warm-up)."""
    tasks = [ClipTask(f"c{i}", (os.path.abspath(p), config, 0.0, None, 1)) for i, p in enumerate(paths)]
    list(iter_clips(encoder_features.extract_file, tasks[: max(2, n_jobs)], n_jobs=n_jobs, desc="warm-up"))
    start = time.perf_counter()
    outcomes = list(iter_clips(encoder_features.extract_file, tasks, n_jobs=n_jobs, desc=f"encoder x{n_jobs}"))
    elapsed = time.perf_counter() - start
    failed = [o for _, o, _ in outcomes if not isinstance(o, dict)]
    if failed:
        raise RuntimeError(f"benchmark clips failed: {failed[:2]}")
    return elapsed


def native_bf16() -> bool:
    """Whether the CPU has bfloat16 instructions (Linux: avx512_bf16 or amx_bf16 in /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def max_deviation(a: list[dict], b: list[dict]) -> float:
    """Largest |a - b| / max|a| over every pooled array of every clip."""
    worst = 0.0
    for ra, rb in zip(a, b):
        for key, value in ra.items():
            if key != "n_windows":
                worst = max(worst, float(np.abs(value - rb[key]).max() / max(np.abs(value).max(), 1e-12)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8, help="clips (default 8)")
    parser.add_argument("--duration", type=float, default=20.0, help="clip length in seconds (default 20)")
    parser.add_argument("--batch", type=int, default=4, help="windows per forward pass of the batched job")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    result: dict = {"clips": args.clips, "clip_s": args.duration, "window_s": 10.0, "batch_size": args.batch}
    audio_s = args.clips * args.duration
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = write_music_wavs(tmp, args.clips, args.duration, seed=5)
        waves = [audio_io.load_audio(p, 16000, 0.0, None) for p in paths]
        models = {"tiny": save_tiny_encoder("wav2vec2", tmp / "tiny"), "base": save_base(tmp / "base")}
        for size, folder in models.items():
            options = dict(model=str(folder), window_s=10.0, hop_s=10.0)
            naive_s, naive = in_process(EncoderConfig(**options, batch_size=1), waves)
            batched_s, batched = in_process(EncoderConfig(**options, batch_size=args.batch), waves)
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            one_s = through_executor(EncoderConfig(**options, batch_size=args.batch), paths, 1)
            two_s = through_executor(EncoderConfig(**options, batch_size=args.batch), paths, 2)
            result |= {
                f"{size}_naive_x_real_time": round(audio_s / naive_s, 2),
                f"{size}_batched_x_real_time": round(audio_s / batched_s, 2),
                f"{size}_batched_vs_naive": round(naive_s / batched_s, 2),
                f"{size}_batched_max_deviation_vs_naive": float(f"{max_deviation(naive, batched):.2e}"),
                f"{size}_1_worker_x_real_time": round(audio_s / one_s, 2),
                f"{size}_2_workers_x_real_time": round(audio_s / two_s, 2),
                f"{size}_scaling_2_workers": round(one_s / two_s, 2),
                f"{size}_peak_rss_mb_in_process": round(rss_mb, 1),
            }
            if size == "base":  # on the first 10 s only: without native bf16 (AVX512-BF16, AMX) it is very slow
                first = [waves[0][:160000], waves[1][:160000]]
                fp32_s, fp32 = in_process(EncoderConfig(**options, batch_size=1), first)
                bf16_s, bf16 = in_process(EncoderConfig(**options, batch_size=1, dtype="bfloat16"), first)
                result |= {
                    "base_bfloat16_x_real_time": round(10.0 / bf16_s, 2),
                    "base_bfloat16_vs_float32": round(fp32_s / bf16_s, 3),
                    "base_bfloat16_max_deviation": float(f"{max_deviation(fp32, bf16):.2e}"),
                    "cpu_has_native_bf16": native_bf16(),
                }
    emit(result, args.json)


if __name__ == "__main__":
    main()
