"""Collect per-variant results into reports/: metrics.json, a leaderboard, uncertainty.

Every variant was scored on the same clips and folds (see the train stage), so
variants can be compared clip by clip: each gets a 95% bootstrap interval of its
pooled out-of-fold macro-F1, and each fused variant a paired-bootstrap p-value
against the best unimodal variant of the same learner.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.evaluation import (
    METRICS,
    bootstrap_f1_ci,
    classification_metrics,
    macro_f1_from_labels,
    paired_bootstrap_pvalue,
)
from pipeline.fusion import MODALITIES
from pipeline.store import read_store

METRIC_TITLES = {
    "f1_macro": "macro-F1",
    "auc_roc_macro": "AUC-ROC",
    "accuracy": "accuracy",
    "balanced_accuracy": "bal. acc.",
    "precision_macro": "precision",
    "recall_macro": "recall",
}
N_BOOT = 1000


def load_runs(models_dir: str | Path) -> dict[tuple[str, str], dict]:
    """``{(model, fusion): {"metrics": metrics.json, "oof": DataFrame, "importance": dict|None}}``."""
    runs = {}
    for path in sorted(Path(models_dir).glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        importance = path.parent / "importance.json"
        runs[(metrics["model"], metrics["fusion"])] = {
            "metrics": metrics,
            "oof": read_store(path.parent / "oof.parquet"),
            "importance": json.loads(importance.read_text()) if importance.exists() else None,
        }
    if not runs:
        raise FileNotFoundError(f"{models_dir}: no */metrics.json found; run the train stages first (`dvc repro`)")
    return runs


def oof_arrays(oof: pd.DataFrame, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(class indices of the true labels, (n, n_classes) probabilities), rows sorted by clip_id."""
    oof = oof.sort_values("clip_id")
    y = oof["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    return y, oof[[f"proba_{c}" for c in classes]].to_numpy()


def check_comparable(runs: dict[tuple[str, str], dict], models_dir: str | Path = "models") -> np.ndarray:
    """The clip_ids every run was scored on; raises when runs differ (stale or foreign folders)."""
    reference = None
    for (model, fusion), run in sorted(runs.items()):
        ids = np.sort(run["oof"]["clip_id"].to_numpy())
        key = (tuple(run["metrics"]["classes"]), tuple(ids))
        if reference is None:
            reference, first = key, f"{model}-{fusion}"
        elif key != reference:
            raise ValueError(
                f"{models_dir}/{model}-{fusion} was scored on other clips or classes than {models_dir}/{first}; "
                "rerun its train stage (`dvc repro`) or delete the stale folder"
            )
    return np.array(reference[1])


def sorted_groups(runs: dict[tuple[str, str], dict], manifest: pd.DataFrame | None) -> np.ndarray | None:
    """Group of each clip in clip_id order when folds were grouped, else None."""
    run = next(iter(runs.values()))
    if manifest is None or not run["metrics"].get("grouped"):
        return None
    ids = np.sort(run["oof"]["clip_id"].to_numpy())
    return manifest.set_index("clip_id").loc[ids, "group"].to_numpy()


def collect_metrics(
    runs: dict[tuple[str, str], dict], seed: int = 0, groups: np.ndarray | None = None
) -> dict[str, dict[str, dict]]:
    """``{model: {fusion: {metric: {mean, std}, f1_macro_pooled, f1_macro_ci95: [lo, hi], p_value_vs_best_unimodal}}}``.

    ``f1_macro_pooled`` is the macro-F1 of all out-of-fold predictions together, the
    quantity whose 95% bootstrap interval ``f1_macro_ci95`` gives. The p-value (paired
    bootstrap on the same clips) is given for fused variants, ``None`` for unimodal
    ones. With ``groups`` (clip_id order), the bootstrap resamples whole groups.
    """
    check_comparable(runs)
    metrics: dict[str, dict[str, dict]] = {}
    for (model, fusion), run in sorted(runs.items()):
        y, proba = oof_arrays(run["oof"], run["metrics"]["classes"])
        entry = dict(run["metrics"]["summary"])
        entry["f1_macro_pooled"] = float(macro_f1_from_labels(y, proba.argmax(axis=1), proba.shape[1])[0])
        entry["f1_macro_ci95"] = bootstrap_f1_ci(y, proba, N_BOOT, seed, groups)
        entry["p_value_vs_best_unimodal"] = None
        unimodal = [(f, r) for (m, f), r in runs.items() if m == model and f in MODALITIES]
        if fusion not in MODALITIES and unimodal:
            _, best = max(unimodal, key=lambda fr: fr[1]["metrics"]["summary"]["f1_macro"]["mean"])
            _, proba_best = oof_arrays(best["oof"], best["metrics"]["classes"])
            entry["p_value_vs_best_unimodal"] = paired_bootstrap_pvalue(y, proba, proba_best, N_BOOT, seed, groups)
        metrics.setdefault(model, {})[fusion] = entry
    return metrics


def chance_metrics(runs: dict[tuple[str, str], dict]) -> dict[str, float]:
    """Metrics of always predicting the most frequent class (probabilities = class shares)."""
    run = next(iter(runs.values()))
    y, _ = oof_arrays(run["oof"], run["metrics"]["classes"])
    prior = np.bincount(y, minlength=len(run["metrics"]["classes"])) / len(y)
    return classification_metrics(y, np.tile(prior, (len(y), 1)))


def leaderboard(
    metrics: dict[str, dict[str, dict]], train_seconds: dict[tuple[str, str], float] | None = None
) -> pd.DataFrame:
    """One row per model x fusion: mean and std of each metric, CI, p-value, train time; best macro-F1 first."""
    rows = []
    for model, fusions in metrics.items():
        for fusion, summary in fusions.items():
            row = {"model": model, "fusion": fusion}
            for metric in METRICS:
                row[f"{metric}_mean"] = summary[metric]["mean"]
                row[f"{metric}_std"] = summary[metric]["std"]
            row["f1_macro_pooled"] = summary.get("f1_macro_pooled")
            ci = summary.get("f1_macro_ci95") or [None, None]
            row["f1_macro_ci95_low"], row["f1_macro_ci95_high"] = ci
            row["p_value_vs_best_unimodal"] = summary.get("p_value_vs_best_unimodal")
            row["train_seconds"] = (train_seconds or {}).get((model, fusion))
            rows.append(row)
    table = pd.DataFrame(rows).sort_values(["f1_macro_mean", "model", "fusion"], ascending=[False, True, True])
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def data_summary(runs: dict[tuple[str, str], dict]) -> str:
    """One sentence on the clips every variant was scored on (all variants share them)."""
    run = next(iter(runs.values()))["metrics"]
    parts = [
        f"{run['n_clips']} clips, {len(run['classes'])} classes, {run['n_folds']} folds"
        + (" grouped" if run.get("grouped") else "")
    ]
    if run.get("n_without_text"):
        parts.append(f"{run['n_without_text']} clips without text (text modality treated as missing)")
    if run.get("n_excluded"):
        parts.append(f"{run['n_excluded']} clips excluded (failed feature extraction; see features/*_errors.parquet)")
    return "; ".join(parts) + "."


def display_rows(table: pd.DataFrame, chance: dict[str, float] | None = None) -> pd.DataFrame:
    """The leaderboard formatted for people: ``mean ± std`` cells, CI, p-value, seconds; chance row last."""
    out = pd.DataFrame({"rank": table["rank"].astype(str), "model": table["model"], "fusion": table["fusion"]})
    for metric in METRICS:
        out[METRIC_TITLES[metric]] = [
            f"{m:.3f} ± {s:.3f}" for m, s in zip(table[f"{metric}_mean"], table[f"{metric}_std"])
        ]
        if metric == "f1_macro":
            out["F1 95% CI"] = [
                "" if lo is None or pd.isna(lo) else f"[{lo:.3f}, {hi:.3f}]"
                for lo, hi in zip(table["f1_macro_ci95_low"], table["f1_macro_ci95_high"])
            ]
    out["p vs best unimodal"] = [
        "" if p is None or pd.isna(p) else f"{p:.3f}" for p in table["p_value_vs_best_unimodal"]
    ]
    out["train s"] = ["" if t is None or pd.isna(t) else f"{t:.1f}" for t in table["train_seconds"]]
    if chance is not None:
        row = {"rank": "–", "model": "chance", "fusion": "majority class"}
        row.update({METRIC_TITLES[m]: f"{chance[m]:.3f}" for m in METRICS})
        out = pd.concat([out, pd.DataFrame([row])], ignore_index=True).fillna("")
    return out


def leaderboard_markdown(rows: pd.DataFrame, summary: str = "") -> str:
    """The formatted leaderboard as a Markdown document."""
    lines = ["| " + " | ".join(rows.columns) + " |", "|" + "---|" * len(rows.columns)]
    for i, row in enumerate(rows.itertuples(index=False)):
        cells = [str(v) for v in row]
        if i == 0:  # the best variant, in bold
            cells[1:3] = [f"**{c}**" for c in cells[1:3]]
        lines.append("| " + " | ".join(cells) + " |")
    return (
        "# Leaderboard\n\nOut-of-fold metrics, mean ± std over cross-validation folds, sorted by macro-F1; "
        "95% bootstrap CI of the pooled out-of-fold macro-F1; paired-bootstrap p-value of each fused variant "
        "against the best unimodal variant of the same learner.\nRank 1 (bold) is the best variant; the last row is "
        "chance." + (f"\n{summary}" if summary else "") + "\n\n" + "\n".join(lines) + "\n"
    )
