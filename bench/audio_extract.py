"""Audio extraction benchmark: mmer's extractor against a plain librosa loop, in one run.

Generates N music-like clips (30 s, 44.1 kHz stereo WAV, plus MP3 copies when
libsndfile can encode MP3), then measures:

(a) a naive loop: ``librosa.load`` and each ``librosa.feature.*`` / ``librosa.beat.*``
    called on the waveform with library defaults (every call recomputes its STFT,
    chroma estimates tuning, tonnetz computes a CQT chroma);
(b) mmer's per-clip job (decode + ``extract_clip``) with 1 worker;
(c) the same with all workers;
(d) peak RSS of ``mmer audio-features`` over a manifest of ``--rss-clips`` rows
    (the N files repeated, cache off), i.e. the streaming writer at corpus scale.

Prints a table and writes JSON with ``--json PATH``. Ratios are measured in the same
run, so they hold on any machine; absolute clips/s depend on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.datasets.demo import render_audio  # noqa: E402
from pipeline.executor import ClipTask, iter_clips, resolve_n_jobs  # noqa: E402
from pipeline.features.audio import AudioFeatureConfig  # noqa: E402
from pipeline.stages.audio_features import extract_file  # noqa: E402

SR_IN = 44100


def make_clips(folder: Path, n: int, duration_s: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """N stereo 44.1 kHz WAVs (and MP3 copies where possible)."""
    wavs, mp3s = [], []
    can_mp3 = "MP3" in sf.available_formats()
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        left, _ = render_audio(rng.uniform(-1, 1), rng.uniform(-1, 1), rng, SR_IN, duration_s)
        right = 0.9 * left + 0.05 * rng.normal(size=left.shape).astype(np.float32)
        stereo = np.stack([left, right], axis=1) / 1.1
        path = folder / f"clip{i:04d}.wav"
        sf.write(path, stereo, SR_IN, subtype="PCM_16")
        wavs.append(str(path))
        if can_mp3:
            sf.write(folder / f"clip{i:04d}.mp3", stereo, SR_IN, format="MP3", subtype="MPEG_LAYER_III")
            mp3s.append(str(folder / f"clip{i:04d}.mp3"))
    return wavs, mp3s


def naive_features(path: str) -> dict[str, np.ndarray]:
    """The descriptor list computed the way a notebook usually does it."""
    import librosa

    y, sr = librosa.load(path, sr=22050)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    series = {
        "mfcc": mfcc,
        "mfcc_delta": librosa.feature.delta(mfcc),
        "mfcc_delta2": librosa.feature.delta(mfcc, order=2),
        "melband": librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=32)),
        "centroid": librosa.feature.spectral_centroid(y=y, sr=sr),
        "bandwidth": librosa.feature.spectral_bandwidth(y=y, sr=sr),
        "rolloff": librosa.feature.spectral_rolloff(y=y, sr=sr),
        "flatness": librosa.feature.spectral_flatness(y=y),
        "contrast": librosa.feature.spectral_contrast(y=y, sr=sr),
        "onset": librosa.onset.onset_strength(y=y, sr=sr)[None, :],
        "zcr": librosa.feature.zero_crossing_rate(y),
        "rms": librosa.feature.rms(y=y),
        "chroma": librosa.feature.chroma_stft(y=y, sr=sr),
        "tonnetz": librosa.feature.tonnetz(y=y, sr=sr),
        "melspec": librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=96)),
    }
    librosa.beat.beat_track(y=y, sr=sr)
    return {name: np.concatenate([v.mean(axis=1), v.std(axis=1)]) for name, v in series.items()}


def time_naive(paths: list[str]) -> tuple[float, list[dict]]:
    naive_features(paths[0])  # warm-up: imports, numba compilation
    start = time.perf_counter()
    results = [naive_features(p) for p in paths]
    return time.perf_counter() - start, results


def time_mmer(paths: list[str], config: AudioFeatureConfig, n_jobs: int, repeat: int = 1) -> tuple[float, list[dict]]:
    """Seconds per pass over ``paths`` (mean of ``repeat`` passes, run as one stream of tasks)."""
    tasks = [ClipTask(f"c{i}", (os.path.abspath(p), config)) for i, p in enumerate(paths * repeat)]
    warm = tasks[: max(2, resolve_n_jobs(n_jobs))]
    list(iter_clips(extract_file, warm, n_jobs=n_jobs, desc="warm-up"))  # start workers, compile numba
    start = time.perf_counter()
    outcomes = list(iter_clips(extract_file, tasks, n_jobs=n_jobs, desc=f"mmer x{n_jobs}"))
    elapsed = (time.perf_counter() - start) / repeat
    failed = [o for _, o, _ in outcomes if not isinstance(o, dict)]
    if failed:
        raise RuntimeError(f"mmer failed on benchmark clips: {failed[:2]}")
    return elapsed, [o for _, o, _ in outcomes[: len(paths)]]


def stage_peak_rss_mb(paths: list[str], n_rows: int, workdir: Path) -> tuple[float, float]:
    """Run `mmer prepare` + `mmer audio-features` on n_rows manifest rows; (peak RSS MB, seconds)."""
    import pandas as pd
    import yaml

    rows = [
        {"clip_id": f"r{i:06d}", "audio_path": paths[i % len(paths)], "text": "la", "label": "ab"[i % 2]}
        for i in range(n_rows)
    ]
    pd.DataFrame(rows).to_csv(workdir / "manifest.csv", index=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["dataset"].update(kind="manifest", root=str(workdir), manifest=str(workdir / "manifest.csv"))
    params["cache"]["enabled"] = False
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    mmer = [sys.executable, "-m", "pipeline.cli"]
    subprocess.run([*mmer, "prepare"], cwd=workdir, env=env, check=True, capture_output=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run([*mmer, "audio-features"], cwd=workdir, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    peak_kb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    return peak_kb / 1024, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=24, help="distinct clips to time (default 24)")
    parser.add_argument("--duration", type=float, default=30.0, help="clip length in seconds (default 30)")
    parser.add_argument("--repeat", type=int, default=4, help="passes over the clips for mmer's timings")
    parser.add_argument("--rss-clips", type=int, default=2000, help="manifest rows for the RSS run (0 = skip)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    config = AudioFeatureConfig()
    workers = resolve_n_jobs(-1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"generating {args.clips} clips of {args.duration:.0f} s (44.1 kHz stereo) ...", flush=True)
        wavs, mp3s = make_clips(tmp, args.clips, args.duration)
        t_naive, naive = time_naive(wavs)
        # several passes for mmer: fewer seconds per pass, and less tail imbalance between workers
        t_one, mine = time_mmer(wavs, config, 1, args.repeat)
        t_all, _ = time_mmer(wavs, config, workers, args.repeat)
        t_mp3 = time_mmer(mp3s, config, 1)[0] if mp3s else None
        from dataclasses import replace

        t_hpss = time_mmer(wavs, replace(config, hpss=True), 1)[0]
        naive_mfcc = np.stack([r["mfcc"][:20] for r in naive])
        mine_mfcc = np.stack([r["descriptors"][: 20 * len(config.stats) : len(config.stats)] for r in mine])
        max_rel_diff = float(np.max(np.abs(mine_mfcc - naive_mfcc)) / np.max(np.abs(naive_mfcc)))
        rss_mb, rss_s = (None, None)
        if args.rss_clips:
            print(f"peak RSS of `mmer audio-features` on {args.rss_clips} rows ...", flush=True)
            (tmp / "rss").mkdir()
            rss_mb, rss_s = stage_peak_rss_mb(wavs, args.rss_clips, tmp / "rss")

    n = args.clips
    result = {
        "clips": n,
        "clip_duration_s": args.duration,
        "workers": workers,
        "naive_clips_per_s": n / t_naive,
        "clips_per_s": n / t_one,
        "clips_per_s_all_workers": n / t_all,
        "x_realtime": n * args.duration / t_one,
        "x_realtime_all_workers": n * args.duration / t_all,
        "speedup_vs_naive": t_naive / t_one,
        f"scaling_{workers}_workers": t_one / t_all,
        "mp3_clips_per_s": n / t_mp3 if t_mp3 else None,
        "hpss_extra_s_per_clip": (t_hpss - t_one) / n,
        "max_rel_diff": max_rel_diff,
        "rss_clips": args.rss_clips,
        "peak_rss_mb": rss_mb,
        "rss_run_clips_per_s": args.rss_clips / rss_s if rss_s else None,
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
