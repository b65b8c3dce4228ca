"""Collect per-variant metrics into reports/metrics.json and a leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.evaluation import METRICS

METRIC_TITLES = {
    "f1_macro": "macro-F1",
    "auc_roc_macro": "AUC-ROC",
    "accuracy": "accuracy",
    "balanced_accuracy": "bal. acc.",
    "precision_macro": "precision",
    "recall_macro": "recall",
}


def collect_metrics(models_dir: str | Path) -> dict[str, dict[str, dict]]:
    """``{model: {fusion: {metric: {mean, std}}}}`` from every models/*/metrics.json."""
    found: dict[str, dict[str, dict]] = {}
    for path in sorted(Path(models_dir).glob("*/metrics.json")):
        run = json.loads(path.read_text())
        found.setdefault(run["model"], {})[run["fusion"]] = run["summary"]
    if not found:
        raise FileNotFoundError(f"{models_dir}: no */metrics.json found; run the train stages first (`dvc repro`)")
    return found


def leaderboard(metrics: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """One row per model x fusion with mean and std of each metric, best macro-F1 first."""
    rows = []
    for model, fusions in metrics.items():
        for fusion, summary in fusions.items():
            row = {"model": model, "fusion": fusion}
            for metric in METRICS:
                row[f"{metric}_mean"] = summary[metric]["mean"]
                row[f"{metric}_std"] = summary[metric]["std"]
            rows.append(row)
    table = pd.DataFrame(rows).sort_values(["f1_macro_mean", "model", "fusion"], ascending=[False, True, True])
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def data_summary(models_dir: str | Path) -> str:
    """One sentence on the clips every variant was scored on (all variants share them)."""
    runs = [json.loads(p.read_text()) for p in sorted(Path(models_dir).glob("*/metrics.json"))]
    run = runs[0]
    parts = [
        f"{run['n_clips']} clips, {len(run['classes'])} classes, {run['n_folds']} folds"
        + (" grouped" if run.get("grouped") else "")
    ]
    if run.get("n_without_text"):
        parts.append(f"{run['n_without_text']} clips without text (text modality treated as missing)")
    if run.get("n_excluded"):
        parts.append(f"{run['n_excluded']} clips excluded (failed feature extraction; see features/*_errors.parquet)")
    return "; ".join(parts) + "."


def leaderboard_markdown(table: pd.DataFrame, summary: str = "") -> str:
    """The leaderboard as a Markdown table, values as ``mean ± std``."""
    header = ["rank", "model", "fusion"] + [METRIC_TITLES[m] for m in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(index=False):
        d = row._asdict()
        cells = [str(d["rank"]), d["model"], d["fusion"]]
        cells += [f"{d[f'{m}_mean']:.3f} ± {d[f'{m}_std']:.3f}" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return (
        "# Leaderboard\n\nOut-of-fold metrics, mean ± std over cross-validation folds, sorted by macro-F1."
        + (f"\n{summary}" if summary else "")
        + "\n\n"
        + "\n".join(lines)
        + "\n"
    )
