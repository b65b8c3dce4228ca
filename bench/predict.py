"""`mmer predict` against the feature extraction it runs, on fresh demo songs, in the same run.

Generates ``--clips`` demo clips of ``--seconds`` s (a seed the pipeline's corpus does
not use), then times (a) the bundle's feature extraction alone — the stages it runs,
with the bundle's configuration, ``--jobs`` workers, no cache — and (b) the whole
``mmer predict`` (reading and checking the bundle, extraction, the model, writing the
predictions). The ratio b / a is the overhead of everything that is not extraction.
Needs a bundle (``make repro``). ``--json PATH`` writes the result.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from results_io import emit  # noqa: E402  (bench/ is on sys.path when run as a script)


def extraction_only(bundle_dir: Path, manifest: Path, jobs: int) -> float:
    """Seconds of the feature stages ``mmer predict`` runs for this bundle, alone."""
    from pipeline.bundle import read_bundle
    from pipeline.predict import collect_inputs, extract, feature_params, working_directory, write_inputs

    bundle = read_bundle(bundle_dir)
    clips = collect_inputs([manifest])
    with tempfile.TemporaryDirectory() as tmp, working_directory(Path(tmp)):
        params = feature_params(bundle, jobs, None, None)
        write_inputs(clips, bundle)
        started = time.perf_counter()
        extract(params, bundle, clips)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None, help="default: the one folder under models/bundles")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from pipeline.datasets.demo import generate_corpus
    from pipeline.predict import predict, write_table

    bundle = args.bundle or next(p for p in sorted((ROOT / "models" / "bundles").iterdir()) if p.is_dir())
    with tempfile.TemporaryDirectory() as tmp:
        songs = Path(tmp) / "songs"
        generate_corpus(songs, args.clips, args.seconds, 22050, 7, 0.08, args.jobs)
        manifest = songs / "manifest.csv"
        extract_s = extraction_only(bundle, manifest, args.jobs)
        started = time.perf_counter()
        table, metrics = predict(bundle, [manifest], jobs=args.jobs, cache_dir=None)
        write_table(table, Path(tmp) / "predictions.parquet")
        predict_s = time.perf_counter() - started
    emit(
        {
            "date": datetime.date.today().isoformat(),
            "bundle": bundle.name,
            "clips": args.clips,
            "seconds_per_clip": args.seconds,
            "workers": args.jobs,
            "extract_s": extract_s,
            "predict_s": predict_s,
            "overhead_ratio": predict_s / extract_s,
            "songs_per_s": args.clips / predict_s,
            "f1_macro": metrics["f1_macro_pooled"] if metrics else None,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
