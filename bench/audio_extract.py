"""Audio extraction benchmark: mmer's extractor against a plain librosa loop, in one run.

Generates N music-like clips (30 s, 44.1 kHz stereo WAV, plus MP3 copies when
libsndfile can encode MP3), then measures:

(a) a naive loop: ``librosa.load`` and each ``librosa.feature.*`` / ``librosa.beat.*``
    called on the waveform with library defaults (every call recomputes its STFT,
    chroma estimates tuning, tonnetz computes a CQT chroma);
(b) mmer's per-clip job (decode + ``extract_clip``) with 1 worker;
(c) the same with all workers;
(d) peak memory of ``mmer audio-features`` over a manifest of ``--rss-clips`` rows
    (the N files repeated, cache off): PSS of the main process and all workers.

Every timing is single-threaded per worker (BLAS limited to one thread). A second
naive loop with mmer's cheaper chroma and tonnetz definitions shows how much of the
speed-up is implementation rather than definitions.

Prints a table and writes JSON with ``--json PATH``. Ratios are measured in the same
run, so they hold on any machine; absolute clips/s depend on the CPU.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import emit  # noqa: E402  (bench/ is on sys.path when run as a script)

from pipeline.datasets.demo import render_audio  # noqa: E402
from pipeline.executor import ClipTask, iter_clips, resolve_n_jobs  # noqa: E402
from pipeline.features.audio import AudioFeatureConfig, feature_names  # noqa: E402
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


def naive_features(path: str, same_definitions: bool = False) -> dict[str, np.ndarray]:
    """The descriptor list computed the way a notebook usually does it.

    With ``same_definitions``, chroma skips tuning estimation and tonnetz uses that STFT
    chroma, as mmer does: what remains of the speed-up is then implementation alone.
    """
    import librosa

    y, sr = librosa.load(path, sr=22050)
    chroma_kw = {"tuning": 0.0} if same_definitions else {}
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, **chroma_kw)
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
        "chroma": chroma,
        "tonnetz": librosa.feature.tonnetz(chroma=chroma) if same_definitions else librosa.feature.tonnetz(y=y, sr=sr),
        "melspec": librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=96)),
    }
    librosa.beat.beat_track(y=y, sr=sr)
    return {name: np.concatenate([v.mean(axis=1), v.std(axis=1)]) for name, v in series.items()}


def time_naive(paths: list[str], same_definitions: bool = False) -> tuple[float, list[dict]]:
    """Seconds for the plain loop over ``paths``, single-threaded like one mmer worker."""
    with threadpool_limits(1):
        naive_features(paths[0], same_definitions)  # warm-up: imports, numba compilation
        start = time.perf_counter()
        results = [naive_features(p, same_definitions) for p in paths]
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


def _tree_pss_mb(pid: int) -> float:
    """Proportional set size of a process and all its descendants (shared pages split fairly)."""
    import psutil

    total = 0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                total += proc.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
    except psutil.NoSuchProcess:
        pass
    return total / 2**20


def stage_peak_rss_mb(paths: list[str], n_rows: int, workdir: Path) -> tuple[float, float]:
    """Run `mmer prepare` + `mmer audio-features` on n_rows manifest rows.

    Returns (peak memory of the whole stage in MB: PSS of the main process plus every
    worker, sampled every 0.2 s; seconds).
    """
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
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*mmer, "audio-features"], cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _tree_pss_mb(proc.pid))
        time.sleep(0.2)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"mmer audio-features failed: {proc.stderr.read().decode()[-2000:]}")
    return peak, elapsed


def shared_max_rel_diff(mine: list[dict], naive: list[dict], config: AudioFeatureConfig) -> float:
    """Largest relative difference of mean/std over families both compute with the same definition."""
    names = feature_names(config)
    pairs = {
        "mfcc": "mfcc",
        "mfcc_delta": "mfcc_delta",
        "mfcc_delta2": "mfcc_delta2",
        "melband": "melband",
        "spectral_centroid": "centroid",
        "spectral_bandwidth": "bandwidth",
        "spectral_rolloff": "rolloff",
        "spectral_flatness": "flatness",
        "spectral_contrast": "contrast",
        "onset_strength": "onset",
        "zcr": "zcr",
        "rms": "rms",
    }
    worst = 0.0
    for ours, theirs in pairs.items():
        for stat_index, stat in enumerate(("mean", "std")):
            cols = [i for i, n in enumerate(names) if re.fullmatch(rf"{ours}(_\d+)?_{stat}", n)]
            a = np.stack([m["descriptors"][cols] for m in mine]).astype(np.float64)
            b = np.stack([np.split(r[theirs], 2)[stat_index] for r in naive])
            worst = max(worst, float(np.max(np.abs(a - b)) / np.max(np.abs(b))))
    return worst


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
        t_naive_same, _ = time_naive(wavs, same_definitions=True)
        # several passes for mmer: fewer seconds per pass, and less tail imbalance between workers
        t_one, mine = time_mmer(wavs, config, 1, args.repeat)
        t_all, _ = time_mmer(wavs, config, workers, args.repeat)
        t_mp3 = time_mmer(mp3s, config, 1)[0] if mp3s else None
        from dataclasses import replace

        t_hpss = time_mmer(wavs, replace(config, hpss=True), 1)[0]
        naive_mfcc = np.stack([r["mfcc"][:20] for r in naive])
        mine_mfcc = np.stack([r["descriptors"][: 20 * len(config.stats) : len(config.stats)] for r in mine])
        max_rel_diff = float(np.max(np.abs(mine_mfcc - naive_mfcc)) / np.max(np.abs(naive_mfcc)))
        max_rel_diff_shared = shared_max_rel_diff(mine, naive, config)
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
        "speedup_vs_naive_same_definitions": t_naive_same / t_one,
        f"scaling_{workers}_workers": t_one / t_all,
        "mp3_clips_per_s": n / t_mp3 if t_mp3 else None,
        "hpss_extra_s_per_clip": (t_hpss - t_one) / n,
        "max_rel_diff": max_rel_diff,
        "max_rel_diff_shared_features": max_rel_diff_shared,
        "rss_clips": args.rss_clips,
        "peak_rss_mb": rss_mb,  # PSS of the stage's main process + workers
        "rss_run_clips_per_s": args.rss_clips / rss_s if rss_s else None,
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
