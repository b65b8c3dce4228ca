"""Train-stage cost on the demo stores: the former settings against today's defaults.

Needs the demo's stores (``make repro`` first). Trains a few variants twice with
``mmer train``, each in a fresh process and a scratch project that links the
workspace's data/ and features/:

(a) the baseline: the settings before early stopping and time pooling
    (``train.lgbm.early_stopping_rounds: 0``, ``train.cnn`` with ``time_pool: 1``,
    ``max_epochs: 40``, ``patience: 6``);
(b) params.yaml as it is.

Prints each variant's train seconds (the stage's own ``runtime.train_seconds``) and
macro-F1 under both, the ratio, and whether the baseline's macro-F1 lies inside
today's 95 % CI (reports/metrics.json, from the last ``dvc repro``); adds the sum of
train seconds over models/*/metrics.json (that same run). ``--json PATH`` writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import emit  # noqa: E402  (bench/ is on sys.path when run as a script)

BASELINE = {"lgbm": {"early_stopping_rounds": 0}, "cnn": {"time_pool": 1, "max_epochs": 40, "patience": 6}}
VARIANTS = (("cnn", "audio"), ("lgbm", "late"))


def train(project: Path, model: str, fusion: str) -> dict:
    """Run one train stage in ``project``; returns its metrics.json."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "pipeline.cli", "train", "--model", model, "--fusion", fusion]
    subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True)
    return json.loads((project / "models" / f"{model}-{fusion}" / "metrics.json").read_text())


def scratch_project(folder: Path, train_overrides: dict) -> Path:
    """A project linking the workspace's data and stores, with params.yaml's ``train`` sections overridden."""
    folder.mkdir()
    for name in ("data", "features"):
        (folder / name).symlink_to(ROOT / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in train_overrides.items():
        params["train"][section].update(values)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (ROOT / "features" / "melspec.parquet").exists():
        sys.exit("bench/train_cost.py needs the demo stores: run `make repro` first")
    reported = json.loads((ROOT / "reports" / "metrics.json").read_text())
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = scratch_project(Path(tmp) / "baseline", BASELINE)
        current = scratch_project(Path(tmp) / "current", {})
        for model, fusion in VARIANTS:
            name = f"{model}_{fusion}"
            before, after = train(baseline, model, fusion), train(current, model, fusion)
            result[f"{name}_baseline_s"] = before["runtime"]["train_seconds"]
            result[f"{name}_s"] = after["runtime"]["train_seconds"]
            result[f"{name}_speedup"] = result[f"{name}_baseline_s"] / result[f"{name}_s"]
            result[f"{name}_baseline_f1"] = before["summary"]["f1_macro"]["mean"]
            result[f"{name}_f1"] = after["summary"]["f1_macro"]["mean"]
            low, high = reported[model][fusion]["f1_macro_ci95"]
            result[f"{name}_baseline_in_ci"] = "yes" if low <= result[f"{name}_baseline_f1"] <= high else "no"
    runs = [json.loads(p.read_text()) for p in sorted((ROOT / "models").glob("*/metrics.json"))]
    result["repro_variants"] = sum("runtime" in r for r in runs)
    result["repro_train_s_total"] = round(sum(r.get("runtime", {}).get("train_seconds", 0.0) for r in runs), 1)
    emit(result, args.json)


if __name__ == "__main__":
    main()
