"""reports/ under ``task: regression``: CCC leaderboard, bootstrap intervals, paired tests, scatter plots.

The same protocol as :mod:`pipeline.reporting`, on continuous targets: each variant gets a
95% bootstrap interval of its pooled out-of-fold mean CCC (mean over targets of the CCC of
all out-of-fold predictions together), and each fused variant a paired-bootstrap p-value
against the best unimodal variant of the same learner (:func:`pipeline.reporting.references_of`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation import REGRESSION_METRICS, bootstrap_ccc_ci, paired_bootstrap_ccc_pvalue, pooled_ccc
from pipeline.fusion import MODALITIES
from pipeline.reporting import CHANCE, check_comparable, references_of


def targets_of(runs: dict[tuple[str, str], dict]) -> list[str]:
    """The regression targets every run predicted."""
    return list(next(iter(runs.values()))["metrics"]["targets"])


def oof_values(oof: pd.DataFrame, targets: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(true values (n, k), predictions (n_repeats, n, k)), clips sorted by clip_id."""
    oof = oof.sort_values(["repeat", "clip_id"])
    n_repeats = oof["repeat"].nunique()
    first = oof[oof["repeat"] == oof["repeat"].min()]
    y = first[[f"true_{t}" for t in targets]].to_numpy(dtype=float)
    predicted = oof[[f"pred_{t}" for t in targets]].to_numpy(dtype=float).reshape(n_repeats, len(first), len(targets))
    return y, predicted


def leaderboard_metrics(targets: list[str]) -> list[str]:
    """The summary keys the leaderboard shows, primary (``ccc_mean``) first."""
    return ["ccc_mean", *(f"ccc_{t}" for t in targets), *(f"{m}_mean" for m in REGRESSION_METRICS[1:])] + [
        "quadrant_accuracy"
    ]


def collect_metrics(
    runs: dict[tuple[str, str], dict], seed: int = 0, groups: np.ndarray | None = None, n_boot: int = 1000
) -> dict[str, dict[str, dict]]:
    """``{model: {fusion: {metric: {mean, std}, ccc_mean_pooled, ccc_mean_ci95, ccc_<target>_pooled,
    ccc_<target>_ci95, ...vs_best_unimodal}}}``: pooled out-of-fold CCC (mean over targets and per target)
    with 95% bootstrap intervals, and the paired test of each fused variant (on the mean)."""
    check_comparable(runs)
    targets = targets_of(runs)
    arrays = {key: oof_values(run["oof"], targets) for key, run in runs.items()}
    pooled = {key: pooled_ccc(*arrays[key]) for key in runs}
    metrics: dict[str, dict[str, dict]] = {}
    for (model, fusion), run in sorted(runs.items()):
        y, predicted = arrays[(model, fusion)]
        entry = dict(run["metrics"]["summary"])
        entry["audio_sets"] = run["metrics"].get("audio_sets", [])
        entry["ccc_mean_pooled"] = pooled[(model, fusion)]
        entry["ccc_mean_ci95"] = bootstrap_ccc_ci(y, predicted, n_boot, seed, groups)
        for k, target in enumerate(targets):  # the same resamples, one target at a time
            one = (y[:, [k]], predicted[..., [k]])
            entry[f"ccc_{target}_pooled"] = pooled_ccc(*one)
            entry[f"ccc_{target}_ci95"] = bootstrap_ccc_ci(*one, n_boot, seed, groups)
        entry["best_unimodal"] = entry["ccc_delta_vs_best_unimodal"] = entry["p_value_vs_best_unimodal"] = None
        references = [key for key in references_of(model, run["metrics"]) if key in runs]
        if fusion not in MODALITIES and (model, fusion) != CHANCE and references:
            best = max(references, key=pooled.__getitem__)
            entry["best_unimodal"] = "-".join(best)
            entry["ccc_delta_vs_best_unimodal"] = pooled[(model, fusion)] - pooled[best]
            entry["p_value_vs_best_unimodal"] = paired_bootstrap_ccc_pvalue(
                y, predicted, arrays[best][1], n_boot, seed, groups
            )
        metrics.setdefault(model, {})[fusion] = entry
    return metrics


def leaderboard(
    metrics: dict[str, dict[str, dict]], targets: list[str], train_seconds: dict | None = None
) -> pd.DataFrame:
    """One row per model x fusion (the dummy is the chance row, not ranked), best mean CCC first."""
    rows = []
    for model, fusions in metrics.items():
        for fusion, summary in fusions.items():
            if (model, fusion) == CHANCE:
                continue
            row = {"model": model, "fusion": fusion, "audio": "+".join(summary.get("audio_sets") or []) or "–"}
            for metric in leaderboard_metrics(targets):
                row[f"{metric}_mean"], row[f"{metric}_std"] = summary[metric]["mean"], summary[metric]["std"]
            row["ccc_mean_pooled"] = summary.get("ccc_mean_pooled")
            row["ccc_ci95_low"], row["ccc_ci95_high"] = summary.get("ccc_mean_ci95") or [None, None]
            for target in targets:
                row[f"ccc_{target}_pooled"] = summary.get(f"ccc_{target}_pooled")
                low_high = summary.get(f"ccc_{target}_ci95") or [None, None]
                row[f"ccc_{target}_ci95_low"], row[f"ccc_{target}_ci95_high"] = low_high
            row["best_unimodal"] = summary.get("best_unimodal")
            row["ccc_delta_vs_best_unimodal"] = summary.get("ccc_delta_vs_best_unimodal")
            row["p_value_vs_best_unimodal"] = summary.get("p_value_vs_best_unimodal")
            removed = summary.get("ccc_mean_text_removed") or {}
            row["ccc_text_removed_mean"], row["ccc_text_removed_std"] = removed.get("mean"), removed.get("std")
            row["train_seconds"] = (train_seconds or {}).get((model, fusion))
            rows.append(row)
    table = pd.DataFrame(rows).sort_values(["ccc_mean_mean", "model", "fusion"], ascending=[False, True, True])
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def title(metric: str) -> str:
    """``ccc_arousal`` -> ``CCC arousal``, ``rmse_mean`` -> ``RMSE``, ``quadrant_accuracy`` -> ``quadrant acc.``"""
    if metric == "quadrant_accuracy":
        return "quadrant acc."
    name, _, target = metric.partition("_")
    name = {"pearson": "r", "r2": "R²"}.get(name, name.upper())
    return name if target == "mean" and name != "CCC" else f"{name} {target}"


def _r(value) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 4)


def compact_summary(table: pd.DataFrame, targets: list[str]) -> dict:
    """reports/summary.json: the best variant (mean CCC, CI, per target) and one mean CCC per variant."""
    best = table.iloc[0]
    return {
        "best": {
            "variant": f"{best['model']}-{best['fusion']}",
            "ccc_mean": _r(best["ccc_mean_mean"]),
            "ccc_ci_low": _r(best["ccc_ci95_low"]),
            "ccc_ci_high": _r(best["ccc_ci95_high"]),
            **{f"ccc_{t}": _r(best[f"ccc_{t}_mean"]) for t in targets},
        },
        "ccc_mean": {f"{row.model}-{row.fusion}": _r(row.ccc_mean_mean) for row in table.itertuples()},
    }


def display_rows(table: pd.DataFrame, targets: list[str], chance: dict[str, float] | None = None) -> pd.DataFrame:
    """The leaderboard for people: ``mean ± std`` cells, CI, ΔCCC and p-value, seconds; chance row last."""
    out = pd.DataFrame(
        {"rank": table["rank"].astype(str), "model": table["model"], "fusion": table["fusion"], "audio": table["audio"]}
    )
    for metric in leaderboard_metrics(targets):
        mean, std = table[f"{metric}_mean"], table[f"{metric}_std"]
        out[title(metric)] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(mean, std)]
        if metric == "ccc_mean":
            out["CCC 95% CI"] = [
                "" if lo is None or pd.isna(lo) else f"[{lo:.3f}, {hi:.3f}]"
                for lo, hi in zip(table["ccc_ci95_low"], table["ccc_ci95_high"])
            ]
    out["ΔCCC vs best unimodal"] = [
        "" if d is None or pd.isna(d) else f"{d:+.3f} ({ref})"
        for d, ref in zip(table["ccc_delta_vs_best_unimodal"], table["best_unimodal"])
    ]
    out["p"] = ["" if p is None or pd.isna(p) else f"{p:.3f}" for p in table["p_value_vs_best_unimodal"]]
    out["CCC text removed"] = [
        "" if m is None or pd.isna(m) else f"{m:.3f} ± {s:.3f}"
        for m, s in zip(table["ccc_text_removed_mean"], table["ccc_text_removed_std"])
    ]
    out["train s"] = ["" if t is None or pd.isna(t) else f"{t:.1f}" for t in table["train_seconds"]]
    if chance is not None:
        row = {"rank": "–", "model": "chance", "fusion": "dummy (training mean)", "audio": "–"}
        row.update({title(m): f"{chance[m]:.3f}" for m in leaderboard_metrics(targets) if m in chance})
        out = pd.concat([out, pd.DataFrame([row])], ignore_index=True).fillna("")
    return out


def chance_metrics(runs: dict[tuple[str, str], dict]) -> dict[str, float] | None:
    """Mean metrics of the dummy (the training mean of each target), if it ran."""
    if CHANCE not in runs:
        return None
    return {m: v["mean"] for m, v in runs[CHANCE]["metrics"]["summary"].items()}


def leaderboard_markdown(rows: pd.DataFrame, summary: str = "") -> str:
    """The formatted regression leaderboard as a Markdown document."""
    lines = ["| " + " | ".join(rows.columns) + " |", "|" + "---|" * len(rows.columns)]
    for i, row in enumerate(rows.itertuples(index=False)):
        cells = [str(v) for v in row]
        if i == 0:
            cells[1:3] = [f"**{c}**" for c in cells[1:3]]
        lines.append("| " + " | ".join(cells) + " |")
    return (
        "# Leaderboard (regression)\n\nOut-of-fold metrics, mean ± std over test folds (x repeats), sorted by mean "
        "CCC over the targets; CCC per target, Pearson r, RMSE, MAE and R² averaged over targets; quadrant acc.: "
        "share of clips whose predicted targets have the true signs (the Russell quadrant for arousal/valence); "
        "95% bootstrap CI of the pooled out-of-fold mean CCC; for each fused variant, the difference of pooled mean "
        "CCC to the best unimodal variant of the same learner (named) and its two-sided paired-bootstrap p-value; "
        "mean CCC with the text of the test clips removed.\nRank 1 (bold) is the best variant; the last row is "
        "chance (the dummy: the training mean)." + (f"\n{summary}" if summary else "") + "\n\n"
        "" + "\n".join(lines) + "\n"
    )
