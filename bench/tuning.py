"""Nested tuning and per-group normalisation: what they cost and what they change, on the demo and on RAVDESS.

For each (corpus, variant), in the same run and scratch project: the variant untuned
(params.yaml's ``train`` values) and tuned (``tune.enabled: true``, ``--trials`` trials
per outer fold, the default search spaces and inner folds); pooled out-of-fold
macro-F1 of both and the stage's train seconds (its own ``runtime.train_seconds``).
On RAVDESS (grouped by singer) also ``train.normalize: group`` against ``global``.

The demo variants read the workspace's stores (``make repro`` first); RAVDESS stores
are built in the scratch project from ``../shared/data/ravdess_song`` (essentia and
musicnn off: the vector learners read the descriptors). ``--json PATH`` writes the result.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from results_io import emit  # noqa: E402  (bench/ is on sys.path when run as a script)

from pipeline.predict import working_directory  # noqa: E402

RAVDESS = ROOT.parent / "shared" / "data" / "ravdess_song"
DEMO_VARIANTS = (("logreg", "concat"), ("lgbm", "concat"), ("mlp", "concat"))
RAVDESS_VARIANTS = (("logreg", "audio"), ("lgbm", "audio"), ("mlp", "audio"))


def write_params(folder: Path, overrides: dict) -> None:
    """params.yaml of the workspace with nested ``overrides``."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())

    def merge(base: dict, extra: dict) -> None:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value

    merge(params, overrides)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def score(folder: Path, model: str, fusion: str, overrides: dict, base: dict) -> tuple[float, float]:
    """Pooled macro-F1 and train seconds of one variant trained in ``folder`` with ``base`` + ``overrides``."""
    import pandas as pd
    from sklearn.metrics import f1_score

    from pipeline.params import load_params
    from pipeline.stages import train

    write_params(folder, merged(base, overrides))
    with working_directory(folder):
        train.run(load_params("params.yaml"), model, fusion)
    out = folder / "models" / f"{model}-{fusion}"
    oof = pd.read_parquet(out / "oof.parquet")
    seconds = json.loads((out / "metrics.json").read_text())["runtime"]["train_seconds"]
    return float(f1_score(oof["label"], oof["predicted"], average="macro")), float(seconds)


def merged(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def ravdess_project(folder: Path, base: dict) -> None:
    """Stores of the shared corpus in ``folder`` (descriptors, log-mels, text; essentia and musicnn off)."""
    from pipeline.params import load_params
    from pipeline.stages import audio_features, essentia_features, musicnn_features, prepare, text_features

    write_params(folder, base)
    with working_directory(folder):
        params = load_params("params.yaml")
        for stage in (prepare, audio_features, essentia_features, musicnn_features, text_features):
            stage.run(params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    tune = {"tune": {"enabled": True, "n_trials": args.trials}}
    result: dict = {"date": datetime.date.today().isoformat(), "n_trials": args.trials}
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        demo.mkdir()
        for name in ("data", "features"):
            (demo / name).symlink_to(ROOT / name)
        for model, fusion in DEMO_VARIANTS:
            key = f"demo_{model}_{fusion}"
            result[f"{key}_f1"], result[f"{key}_s"] = score(demo, model, fusion, {}, {})
            result[f"{key}_tuned_f1"], result[f"{key}_tuned_s"] = score(demo, model, fusion, tune, {})
        if not (RAVDESS / "manifest.csv").exists():
            sys.exit(f"{RAVDESS}: the shared corpus is missing")
        real = Path(tmp) / "ravdess"
        real.mkdir()
        base = {
            "dataset": {
                "kind": "manifest",
                "root": str(RAVDESS),
                "manifest": str(RAVDESS / "manifest.csv"),
                "columns": {"clip_id": "id", "group": "speaker"},
            },
            "essentia": {"enabled": False},
            "musicnn": {"enabled": False},
        }
        ravdess_project(real, base)
        for model, fusion in RAVDESS_VARIANTS:
            key = f"ravdess_{model}_{fusion}"
            result[f"{key}_f1"], result[f"{key}_s"] = score(real, model, fusion, {}, base)
            result[f"{key}_tuned_f1"], result[f"{key}_tuned_s"] = score(real, model, fusion, tune, base)
            group = {"train": {"normalize": "group"}}
            result[f"{key}_group_f1"], _ = score(real, model, fusion, group, base)
    emit(result, args.json)


if __name__ == "__main__":
    main()
