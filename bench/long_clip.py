"""An hour-long recording through the audio job: memory and time with and without the cap.

Writes one hour of music-like audio (44.1 kHz stereo, 16-bit WAV: 635 MB) and runs
mmer's per-clip audio job (decode + ``extract_clip``) on it in a fresh process per
setting, so each peak RSS is that setting's alone:

(a) the baseline: ``audio.max_duration_s: null`` (the whole hour is decoded and analysed);
(b) the default cap, ``max_duration_s: 600`` (the first 10 minutes);
(c) ``duration_s: 30`` (MERGE's clip length, as a reference).

Prints seconds and peak RSS with ratios against (a); writes JSON with ``--json PATH``.
Needs about 5 GB of memory (the uncapped run) and 0.7 GB in the temp folder.
"""

from __future__ import annotations

import argparse
import json
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

from results_io import emit  # noqa: E402  (bench/ is on sys.path when run as a script)

SR_IN = 44100
SETTINGS = {
    "uncapped": {"max_duration_s": None},
    "default_cap_600s": {},
    "window_30s": {"duration_s": 30.0},
}


def write_hour(path: Path, minutes: int) -> None:
    """``minutes`` of the demo renderer's music, stereo, written a minute at a time."""
    from pipeline.datasets.demo import render_audio

    with sf.SoundFile(path, "w", SR_IN, 2, subtype="PCM_16") as out:
        for minute in range(minutes):
            rng = np.random.default_rng([7, minute])
            left, _ = render_audio(rng.uniform(-1, 1), rng.uniform(-1, 1), rng, SR_IN, 60.0)
            out.write(np.stack([left, 0.9 * left], axis=1) / 1.1)


def child(path: str, setting: str) -> None:
    """Run the job once in this process; print seconds and this process's peak RSS as JSON."""
    from threadpoolctl import threadpool_limits

    from pipeline.features.audio import AudioFeatureConfig
    from pipeline.stages.audio_features import extract_file

    config = AudioFeatureConfig(**SETTINGS[setting])
    with threadpool_limits(1):
        start = time.perf_counter()
        record = extract_file(path, config)
        seconds = time.perf_counter() - start
    assert np.isfinite(record["descriptors"]).all()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb}))


def measure(path: Path, setting: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(path), setting], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"long_clip: the {setting} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=60, help="recording length in minutes (default 60)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "SETTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hour.wav"
        write_hour(path, args.minutes)
        runs = {setting: measure(path, setting) for setting in SETTINGS}
    base = runs["uncapped"]
    result: dict = {"recording_min": args.minutes, "source": "44.1 kHz stereo 16-bit WAV"}
    for setting, run in runs.items():
        result[f"{setting}_s"] = round(run["seconds"], 2)
        result[f"{setting}_peak_rss_mb"] = round(run["rss_mb"])
    for setting in ("default_cap_600s", "window_30s"):
        result[f"{setting}_rss_vs_uncapped"] = round(runs[setting]["rss_mb"] / base["rss_mb"], 3)
        result[f"{setting}_time_vs_uncapped"] = round(runs[setting]["seconds"] / base["seconds"], 3)
    emit(result, args.json)


if __name__ == "__main__":
    main()
