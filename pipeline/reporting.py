"""Collect per-variant results into reports/: metrics.json, a leaderboard, uncertainty.

Every variant was scored on the same clips and folds (see the train stage), so
variants can be compared clip by clip: each gets a 95% bootstrap interval of its
pooled out-of-fold macro-F1, and each fused variant a paired-bootstrap p-value
against the best unimodal variant of the same learner.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.evaluation import (
    METRICS,
    bootstrap_f1_ci,
    classification_metrics,
    paired_bootstrap_pvalue,
    pooled_f1,
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
# Fused variants are tested against the best unimodal variant of the same learner. The
# multi-task head has no unimodal variants of its own, so its references are the mlp's
# (same encoders, one head); the cnn has no text-only variant, and its text branch is
# the mlp's text encoder, so its references are cnn-audio and mlp-text.
CHANCE = ("dummy", "none")


def unimodal_references(model: str) -> list[tuple[str, str]]:
    """The (model, fusion) variants a fused variant of ``model`` is compared with.

    A variant with its own audio sets (``lgbm@musicnn``) is compared with its own
    audio-only variant and with the learner's text-only one (text does not change).
    """
    learner, _, sets = model.partition("@")
    if learner == "multitask":  # its unimodal references are the mlp's (with the same audio sets)
        return [(f"mlp@{sets}" if sets else "mlp", "audio"), ("mlp", "text")]
    if learner == "cnn":
        audio, text = ("cnn", "audio"), ("mlp", "text")
    else:
        audio, text = (learner, "audio"), (learner, "text")
    return [(model, "audio") if sets else audio, text]


def references_of(model: str, metrics: dict) -> list[tuple[str, str]]:
    """The unimodal references of a variant: :func:`unimodal_references`, except for variants with their own
    text stores (metrics.json ``text_sets``): the audio-only variant of their audio sets and their own text-only."""
    text_sets = metrics.get("text_sets")
    if not text_sets:
        return unimodal_references(model)
    learner, _, sets = model.partition("@")
    audio_sets = [s for s in sets.split("+") if s and s not in text_sets]
    return [(f"{learner}@{'+'.join(audio_sets)}" if audio_sets else learner, "audio"), (model, "text")]


def variant_files(models_dir: str | Path, encoders: Iterable[str] | None = None) -> list[Path]:
    """Every variant's metrics.json: ``models/<variant>/`` and the encoder variants' ``models/enc/<variant>/``.

    With ``encoders`` (the configured names), folders of encoders no longer in params.yaml are passed
    over: DVC leaves the outputs of a removed stage on disk.
    """
    encoder_files = sorted(Path(models_dir).glob("enc/*/metrics.json"))
    if encoders is not None:
        encoder_files = [p for p in encoder_files if encoder_of(p.parent.name) in set(encoders)]
    return sorted([*Path(models_dir).glob("*/metrics.json"), *encoder_files])


def encoder_of(folder: str) -> str:
    """``lgbm@mert.L6-concat`` -> ``mert``: the encoder of a models/enc/ variant folder."""
    return folder.rpartition("-")[0].partition("@")[2].split("+")[0].split(".")[0]


def load_runs(models_dir: str | Path, encoders: Iterable[str] | None = None) -> dict[tuple[str, str], dict]:
    """``{(model, fusion): {"metrics": metrics.json, "oof": DataFrame, "importance": dict|None}}`` of scored variants.

    Variants skipped for a modality the corpus lacks are left out; :func:`load_skipped` lists them.
    ``encoders``: see :func:`variant_files`.
    """
    runs = {}
    for path in variant_files(models_dir, encoders):
        metrics = json.loads(path.read_text())
        if "skipped" in metrics:
            continue
        importance = path.parent / "importance.json"
        runs[(metrics["model"], metrics["fusion"])] = {
            "metrics": metrics,
            "oof": read_store(path.parent / "oof.parquet"),
            "importance": json.loads(importance.read_text()) if importance.exists() else None,
        }
    if not runs:
        raise FileNotFoundError(
            f"{models_dir}: no scored */metrics.json found; run the train stages first (`dvc repro`)"
        )
    return runs


def load_skipped(models_dir: str | Path, encoders: Iterable[str] | None = None) -> dict[str, str]:
    """``{"<model>-<fusion>": reason}`` of skipped variants (a modality the corpus lacks, a disabled store)."""
    skipped = {}
    for path in variant_files(models_dir, encoders):
        metrics = json.loads(path.read_text())
        if "skipped" in metrics:
            skipped[f"{metrics['model']}-{metrics['fusion']}"] = metrics["skipped"]
    return skipped


def oof_arrays(oof: pd.DataFrame, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(class indices of the true labels (n,), probabilities (n_repeats, n, n_classes)), clips sorted by clip_id."""
    oof = oof.sort_values(["repeat", "clip_id"])
    n_repeats = oof["repeat"].nunique()
    first = oof[oof["repeat"] == oof["repeat"].min()]
    y = first["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    proba = oof[[f"proba_{c}" for c in classes]].to_numpy().reshape(n_repeats, len(first), len(classes))
    return y, proba


def check_comparable(runs: dict[tuple[str, str], dict], models_dir: str | Path = "models") -> np.ndarray:
    """The clip_ids every run was scored on; raises when runs differ (stale or foreign folders)."""
    reference = None
    for (model, fusion), run in sorted(runs.items()):
        oof = run["oof"].sort_values(["repeat", "clip_id"])
        classes_or_targets = (*run["metrics"]["classes"], *run["metrics"].get("targets", []))
        key = (classes_or_targets, tuple(oof["repeat"]), tuple(oof["clip_id"]))
        if reference is None:
            reference, first = key, f"{model}-{fusion}"
        elif key != reference:
            raise ValueError(
                f"{models_dir}/{model}-{fusion} was scored on other clips, repeats, classes or targets than "
                f"{models_dir}/{first}; rerun its train stage (`dvc repro`) or delete the stale folder"
            )
    return np.unique(reference[2])


def sorted_groups(runs: dict[tuple[str, str], dict], manifest: pd.DataFrame | None) -> np.ndarray | None:
    """Group of each clip in clip_id order when folds were grouped, else None."""
    run = next(iter(runs.values()))
    if manifest is None or not run["metrics"].get("grouped"):
        return None
    ids = np.unique(run["oof"]["clip_id"].to_numpy())
    return manifest.set_index("clip_id").loc[ids, "group"].to_numpy()


def collect_metrics(
    runs: dict[tuple[str, str], dict], seed: int = 0, groups: np.ndarray | None = None, n_boot: int = 1000
) -> dict[str, dict[str, dict]]:
    """``{model: {fusion: {metric: {mean, std}, f1_macro_pooled, f1_macro_ci95, ...vs_best_unimodal}}}``.

    ``f1_macro_pooled`` is the macro-F1 of all out-of-fold predictions together (every
    repeat), the quantity whose 95% bootstrap interval ``f1_macro_ci95`` gives. Each
    fused variant is compared with the reference unimodal variant of highest pooled
    macro-F1 (:func:`unimodal_references`, named in ``best_unimodal``):
    ``f1_delta_vs_best_unimodal`` is the difference of pooled macro-F1 (positive: the
    fusion is better) and ``p_value_vs_best_unimodal`` the two-sided paired-bootstrap
    p-value on the same clips; all three are ``None`` for unimodal variants and the
    dummy. With ``groups`` (clip_id order), the bootstrap resamples whole groups.
    """
    check_comparable(runs)
    arrays = {key: oof_arrays(run["oof"], run["metrics"]["classes"]) for key, run in runs.items()}
    pooled = {key: pooled_f1(*arrays[key]) for key in runs}
    metrics: dict[str, dict[str, dict]] = {}
    for (model, fusion), run in sorted(runs.items()):
        y, proba = arrays[(model, fusion)]
        entry = dict(run["metrics"]["summary"])
        entry["audio_sets"] = run["metrics"].get("audio_sets", [])
        entry["f1_macro_pooled"] = pooled[(model, fusion)]
        entry["f1_macro_ci95"] = bootstrap_f1_ci(y, proba, n_boot, seed, groups)
        entry["best_unimodal"] = entry["f1_delta_vs_best_unimodal"] = entry["p_value_vs_best_unimodal"] = None
        references = [key for key in references_of(model, run["metrics"]) if key in runs]
        if fusion not in MODALITIES and (model, fusion) != CHANCE and references:
            best = max(references, key=pooled.__getitem__)
            entry["best_unimodal"] = "-".join(best)
            entry["f1_delta_vs_best_unimodal"] = pooled[(model, fusion)] - pooled[best]
            entry["p_value_vs_best_unimodal"] = paired_bootstrap_pvalue(y, proba, arrays[best][1], n_boot, seed, groups)
        metrics.setdefault(model, {})[fusion] = entry
    return metrics


def chance_metrics(runs: dict[tuple[str, str], dict]) -> dict[str, float]:
    """Mean metrics of the dummy learner, or (without a dummy run) of predicting the class shares of all clips."""
    if CHANCE in runs:
        return {m: v["mean"] for m, v in runs[CHANCE]["metrics"]["summary"].items() if m in METRICS}
    run = next(iter(runs.values()))
    y, _ = oof_arrays(run["oof"], run["metrics"]["classes"])
    prior = np.bincount(y, minlength=len(run["metrics"]["classes"])) / len(y)
    return classification_metrics(y, np.tile(prior, (len(y), 1)))


def leaderboard(
    metrics: dict[str, dict[str, dict]], train_seconds: dict[tuple[str, str], float] | None = None
) -> pd.DataFrame:
    """One row per model x fusion (the dummy is the chance row, not ranked): metrics, CI, p-value, robustness, time.

    Best macro-F1 first; ``f1_macro_text_removed_*`` is the macro-F1 when the text of the
    test clips is removed (variants that read text).
    """
    rows = []
    for model, fusions in metrics.items():
        for fusion, summary in fusions.items():
            if (model, fusion) == CHANCE:
                continue
            row = {"model": model, "fusion": fusion, "audio": "+".join(summary.get("audio_sets") or []) or "–"}
            for metric in METRICS:
                row[f"{metric}_mean"] = summary[metric]["mean"]
                row[f"{metric}_std"] = summary[metric]["std"]
            row["f1_macro_pooled"] = summary.get("f1_macro_pooled")
            ci = summary.get("f1_macro_ci95") or [None, None]
            row["f1_macro_ci95_low"], row["f1_macro_ci95_high"] = ci
            row["best_unimodal"] = summary.get("best_unimodal")
            row["f1_delta_vs_best_unimodal"] = summary.get("f1_delta_vs_best_unimodal")
            row["p_value_vs_best_unimodal"] = summary.get("p_value_vs_best_unimodal")
            removed = summary.get("f1_macro_text_removed") or {}
            row["f1_macro_text_removed_mean"] = removed.get("mean")
            row["f1_macro_text_removed_std"] = removed.get("std")
            row["train_seconds"] = (train_seconds or {}).get((model, fusion))
            rows.append(row)
    table = pd.DataFrame(rows).sort_values(["f1_macro_mean", "model", "fusion"], ascending=[False, True, True])
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def compact_summary(table: pd.DataFrame) -> dict:
    """reports/summary.json, DVC's metrics file: the best variant (macro-F1, its 95% CI, AUC) and
    one macro-F1 per variant (the dummy left out), rounded to 4 decimals, so `dvc metrics show` /
    `dvc exp show` stay readable."""

    def r(value) -> float | None:
        return None if value is None or pd.isna(value) else round(float(value), 4)

    best = table.iloc[0]
    return {
        "best": {
            "variant": f"{best['model']}-{best['fusion']}",
            "f1_macro": r(best["f1_macro_mean"]),
            "f1_ci_low": r(best["f1_macro_ci95_low"]),
            "f1_ci_high": r(best["f1_macro_ci95_high"]),
            "auc_roc": r(best["auc_roc_macro_mean"]),
        },
        "f1_macro": {f"{row.model}-{row.fusion}": r(row.f1_macro_mean) for row in table.itertuples()},
    }


def data_summary(runs: dict[tuple[str, str], dict], skipped: dict[str, str] | None = None) -> str:
    """One sentence on the clips every variant was scored on (all variants share them) and any absent modality."""
    run = next(iter(runs.values()))["metrics"]
    if run.get("scheme") == "fixed":
        protocol = f"fixed split: {run['n_test_clips']} test clips scored once"
    elif run.get("scheme") == "predefined":
        protocol = f"{run['n_folds']} predefined folds (the manifest's fold column)"
        protocol += " grouped" if run.get("grouped") else ""
    else:
        repeats = run.get("n_repeats", 1)
        protocol = f"{run['n_folds']}-fold CV" + (f" x {repeats} repeats" if repeats > 1 else "")
        protocol += " grouped" if run.get("grouped") else ""
    if run.get("task") == "regression":
        what = f"targets {', '.join(run['targets'])}"
    else:
        what = f"{len(run['classes'])} classes"
    parts = [f"{run['n_clips']} clips, {what}, {protocol}"]
    absent = sorted({m for m in ("audio", "text") if m not in run.get("modalities", ["audio", "text"])})
    reasons = list((skipped or {}).values())
    if absent:
        n_absent = sum(r.startswith("no clip has") for r in reasons)
        parts.append(f"no {' and no '.join(absent)} in this corpus: {n_absent} variants that need it were skipped")
    elif run.get("n_without_text"):
        parts.append(f"{run['n_without_text']} clips without text (text modality treated as missing)")
    for reason, n in sorted(Counter(r for r in reasons if not r.startswith("no clip has")).items()):
        parts.append(f"{n} variants skipped: {reason}")
    if run.get("n_excluded"):
        parts.append(f"{run['n_excluded']} clips excluded (failed feature extraction; see features/*_errors.parquet)")
    return "; ".join(parts) + "."


def display_rows(table: pd.DataFrame, chance: dict[str, float] | None = None) -> pd.DataFrame:
    """The leaderboard formatted for people: ``mean ± std`` cells, CI, p-value, seconds; chance row last."""
    out = pd.DataFrame(
        {"rank": table["rank"].astype(str), "model": table["model"], "fusion": table["fusion"], "audio": table["audio"]}
    )
    for metric in METRICS:
        out[METRIC_TITLES[metric]] = [
            f"{m:.3f} ± {s:.3f}" for m, s in zip(table[f"{metric}_mean"], table[f"{metric}_std"])
        ]
        if metric == "f1_macro":
            out["F1 95% CI"] = [
                "" if lo is None or pd.isna(lo) else f"[{lo:.3f}, {hi:.3f}]"
                for lo, hi in zip(table["f1_macro_ci95_low"], table["f1_macro_ci95_high"])
            ]
    out["ΔF1 vs best unimodal"] = [
        "" if d is None or pd.isna(d) else f"{d:+.3f} ({ref})"
        for d, ref in zip(table["f1_delta_vs_best_unimodal"], table["best_unimodal"])
    ]
    out["p"] = ["" if p is None or pd.isna(p) else f"{p:.3f}" for p in table["p_value_vs_best_unimodal"]]
    out["F1 text removed"] = [
        "" if m is None or pd.isna(m) else f"{m:.3f} ± {s:.3f}"
        for m, s in zip(table["f1_macro_text_removed_mean"], table["f1_macro_text_removed_std"])
    ]
    out["train s"] = ["" if t is None or pd.isna(t) else f"{t:.1f}" for t in table["train_seconds"]]
    if chance is not None:
        row = {"rank": "–", "model": "chance", "fusion": "dummy (majority class)", "audio": "–"}
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
        "# Leaderboard\n\nOut-of-fold metrics, mean ± std over test folds (x repeats), sorted by macro-F1; "
        "95% bootstrap CI of the pooled out-of-fold macro-F1; for each fused variant, the difference of pooled "
        "macro-F1 to the best unimodal variant of the same learner (named; multitask: the mlp's, cnn: cnn-audio or "
        "mlp-text) and its two-sided paired-bootstrap p-value; macro-F1 with the text of the test clips removed "
        "(robustness to a missing modality).\nRank 1 (bold) is the best variant; the last row is chance (the dummy "
        "learner)." + (f"\n{summary}" if summary else "") + "\n\n" + "\n".join(lines) + "\n"
    )


def tuning_tables(runs: dict[tuple[str, str], dict]) -> dict[str, pd.DataFrame]:
    """Per tuned variant (``model-fusion``): the values chosen in each outer fold, its inner score and
    trial count, and the configured value; rows are hyper-parameters, columns ``fold <k>`` (``r<repeat>``
    with repeats) and ``configured``."""
    tables = {}
    for (model, fusion), run in sorted(runs.items()):
        tuning = run["metrics"].get("tuning")
        if not tuning:
            continue
        columns = {}
        repeats = len({f["repeat"] for f in tuning["folds"]}) > 1
        for f in tuning["folds"]:
            name = f"fold {f['fold']}" + (f" r{f['repeat']}" if repeats else "")
            columns[name] = {
                **{k: _short(v) for k, v in f["params"].items()},
                f"inner {tuning['metric']}": f"{f['inner_score']:.3f}",
                "trials": str(f["n_trials"]),
            }
        table = pd.DataFrame(columns)
        table["configured"] = pd.Series({k: _short(v) for k, v in tuning["configured"].items()})
        tables[f"{model}-{fusion}"] = table.fillna("")
    return tables


def _short(value) -> str:
    """A hyper-parameter value in 4 significant digits (integers as they are)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def tuning_markdown(tables: dict[str, pd.DataFrame]) -> str:
    """The :func:`tuning_tables` as Markdown sections (empty when nothing was tuned)."""
    if not tables:
        return ""
    parts = [
        "\n## Tuned hyper-parameters\n\nNested search (`tune:` in params.yaml): the values each outer fold's "
        "study chose on that fold's training and validation rows (never its test rows), the study's inner score "
        "and number of trials; `configured` is the train.* value (the first trial when inside the ranges)."
    ]
    for name, table in tables.items():
        header = ["", *table.columns]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join([str(key), *map(str, row)]) + " |" for key, row in zip(table.index, table.values)]
        parts.append(f"\n### {name}\n\n" + "\n".join(lines))
    return "\n".join(parts) + "\n"
