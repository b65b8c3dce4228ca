"""Manifest validation at scale: how long ``prepare`` checks a 100k-row manifest.

Writes N empty audio files and a CSV manifest naming them (relative paths, text,
label, group), then measures in one run:

(a) the baseline: ``pandas.read_csv`` of the same file (the floor any reader pays);
(b) mmer's reading + validation (``read_manifest_file`` + ``validate_manifest``:
    column mapping, path-escape refusal, duplicate ids, labels, groups, every audio
    file's existence), i.e. what runs before any heavy work;
(c) the whole ``prepare`` stage (b plus the Parquet manifest store) in a scratch project;
(d) (b) on a tenth of the rows, to show the cost grows linearly.

Prints seconds and ratios against (a); writes JSON with ``--json PATH``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import emit  # noqa: E402  (bench/ is on sys.path when run as a script)

from pipeline.datasets.manifest import read_manifest_file, validate_manifest  # noqa: E402

LABELS = ("angry", "calm", "happy", "sad")


def write_corpus(folder: Path, n: int) -> Path:
    """N empty audio files under ``folder/audio`` and ``folder/manifest.csv`` naming them."""
    audio = folder / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"audio/clip{i:06d}.wav"
        (folder / name).touch()
        rows.append(
            {
                "id": f"clip{i:06d}",
                "file": name,
                "lyrics": f"line {i} of a song about the {LABELS[i % 4]} sea",
                "mood": LABELS[i % 4],
                "artist": f"artist{i % 997}",
            }
        )
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def best_of(repeat: int, job) -> float:
    """Fastest of ``repeat`` timed calls (seconds)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return min(times)


COLUMNS = {"clip_id": "id", "audio_path": "file", "text": "lyrics", "label": "mood", "group": "artist"}


def validate(path: Path) -> pd.DataFrame:
    """What prepare does before heavy work, from the manifest's own folder (paths are relative)."""
    return validate_manifest(read_manifest_file(path, COLUMNS), n_folds=5)


def run_prepare(folder: Path, manifest: Path) -> None:
    """The whole prepare stage on ``manifest`` in a scratch project at ``folder``."""
    import yaml

    from pipeline.params import load_params
    from pipeline.stages import prepare

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["dataset"].update(
        {"kind": "manifest", "root": str(manifest.parent), "manifest": str(manifest), "columns": COLUMNS}
    )
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        prepare.run(load_params("params.yaml"))
    finally:
        os.chdir(cwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="manifest rows (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats; the fastest counts")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = write_corpus(Path(tmp) / "big", args.rows)
        small = write_corpus(Path(tmp) / "small", args.rows // 10)
        cwd = os.getcwd()
        os.chdir(big.parent)  # relative audio paths resolve from here, as in a project
        try:
            assert len(validate(big)) == args.rows
            read_s = best_of(args.repeat, lambda: pd.read_csv(big, dtype=str))
            validate_s = best_of(args.repeat, lambda: validate(big))
        finally:
            os.chdir(cwd)
        os.chdir(small.parent)
        try:
            small_s = best_of(args.repeat, lambda: validate(small))
        finally:
            os.chdir(cwd)
        project = Path(tmp) / "project"
        project.mkdir()
        prepare_s = best_of(1, lambda: run_prepare(project, big))
    result = {
        "rows": args.rows,
        "read_csv_s": round(read_s, 3),
        "read_and_validate_s": round(validate_s, 3),
        "prepare_stage_s": round(prepare_s, 3),
        "validate_vs_read_csv": round(validate_s / read_s, 2),
        "prepare_vs_read_csv": round(prepare_s / read_s, 2),
        "per_row_cost_100pct_vs_10pct": round((validate_s / args.rows) / (small_s / (args.rows // 10)), 2),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
