"""Stage ``report``: models/* -> reports/{summary.json, metrics.json, leaderboard.md/.csv, index.html, plots/}."""

from __future__ import annotations

import html
import subprocess
from pathlib import Path

import pandas as pd
import soundfile as sf

from pipeline import report_html as rh
from pipeline.inspect_store import column_group
from pipeline.params import load_params
from pipeline.reporting import (
    chance_metrics,
    collect_metrics,
    compact_summary,
    data_summary,
    display_rows,
    leaderboard,
    leaderboard_markdown,
    load_runs,
    load_skipped,
    sorted_groups,
    tuning_markdown,
    tuning_tables,
    unimodal_references,
)
from pipeline.sources import is_url, open_source
from pipeline.stages import (
    AUDIO_ERRORS,
    AUDIO_STORE,
    ESSENTIA_ERRORS,
    ESSENTIA_STORE,
    MANIFEST,
    MELSPEC_STORE,
    MODELS,
    MUSICNN_ERRORS,
    MUSICNN_STORE,
    REPORTS,
    TEXT_STORE,
)
from pipeline.store import atomic_path, library_versions, read_metadata, read_store, write_json, write_text

VERSIONED = (
    "mmer",
    "numpy",
    "pandas",
    "pyarrow",
    "librosa",
    "essentia",
    "scikit-learn",
    "lightgbm",
    "torch",
    "google-crc32c",
    "sentence-transformers",
    "transformers",
    "dvc",
)


def run(params_path: str | Path = "params.yaml") -> None:
    """Aggregate every trained variant, write the reports and print the top of the leaderboard."""
    params = load_params(params_path)
    configured = [*params.encoders, *params.text_encoders]
    runs = load_runs(MODELS, configured)
    manifest = read_store(MANIFEST, columns=["clip_id", "group"])
    groups = sorted_groups(runs, manifest)
    tasks = {run["metrics"].get("task", "classification") for run in runs.values()}
    if len(tasks) > 1:
        raise ValueError(f"{MODELS}: variants of both tasks {sorted(tasks)}; rerun the train stages (`dvc repro`)")
    if tasks == {"regression"}:
        run_regression(runs, params, groups, Path(params_path))
        return
    metrics = collect_metrics(runs, seed=params.seed, groups=groups, n_boot=params.eval.n_boot)
    seconds = {key: r["metrics"].get("runtime", {}).get("train_seconds") for key, r in runs.items()}
    table = leaderboard(metrics, seconds)
    chance = chance_metrics(runs)
    rows = display_rows(table, chance)
    skipped = load_skipped(MODELS, configured)
    summary = data_summary(runs, skipped)
    write_json(metrics, REPORTS / "metrics.json")
    write_json(compact_summary(table), REPORTS / "summary.json")
    tuned = tuning_tables(runs)
    write_text(leaderboard_markdown(rows, summary) + tuning_markdown(tuned), REPORTS / "leaderboard.md")
    with atomic_path(REPORTS / "leaderboard.csv") as tmp:
        csv_table(table, chance).to_csv(tmp, index=False, float_format="%.6f")
    best = runs[(table["model"][0], table["fusion"][0])]
    first_repeat = best["oof"][best["oof"]["repeat"] == 0]
    write_dvc_plots(first_repeat, best["metrics"]["classes"], REPORTS / "plots")
    write_text(render(runs, table, rows, summary, Path(params_path), tuned), REPORTS / "index.html")
    print_console(rows.head(8), summary)


def run_regression(runs: dict, params, groups, params_path: Path) -> None:
    """The reports of ``task: regression``: CCC leaderboard, metrics, summary, scatter plots, HTML page."""
    from pipeline import reporting_regression as rr

    targets = rr.targets_of(runs)
    metrics = rr.collect_metrics(runs, seed=params.seed, groups=groups, n_boot=params.eval.n_boot)
    seconds = {key: r["metrics"].get("runtime", {}).get("train_seconds") for key, r in runs.items()}
    table = rr.leaderboard(metrics, targets, seconds)
    rows = rr.display_rows(table, targets, rr.chance_metrics(runs))
    summary = data_summary(runs, load_skipped(MODELS, [*params.encoders, *params.text_encoders]))
    write_json(metrics, REPORTS / "metrics.json")
    write_json(rr.compact_summary(table, targets), REPORTS / "summary.json")
    write_text(rr.leaderboard_markdown(rows, summary), REPORTS / "leaderboard.md")
    with atomic_path(REPORTS / "leaderboard.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    best_key = (table["model"][0], table["fusion"][0])
    best = runs[best_key]["oof"]
    write_regression_plots(best[best["repeat"] == 0], targets, params.dataset.target_center, REPORTS / "plots")
    scatters = [rh.scatter_svg(best, targets, f"best: {'-'.join(best_key)}")]
    for key in unimodal_references(best_key[0]):
        if key in runs and key != best_key:
            scatters.append(rh.scatter_svg(runs[key]["oof"], targets, "-".join(key)))
    figures = "".join(f"<figure>{f}</figure>" for f in scatters)
    plane = rh.plane_svg(best, targets, "-".join(best_key), params.dataset.target_center) if len(targets) > 1 else ""
    sections = [
        ("1. Data", f"<p>{html.escape(summary)}</p>" + dataset_section(runs)),
        (
            "2. Leaderboard",
            '<p class="note">Click a heading to sort. Best row in green, chance (the training mean) in orange.</p>'
            + rh.table_html(rows.iloc[:-1], {0: "best"}, sortable=True, footer=rows.iloc[-1:]),
        ),
        (
            "3. Mean CCC by fusion and learner",
            f"<figure>{rh.score_bars(table, ('ccc_mean_pooled', 'ccc_ci95_low', 'ccc_ci95_high'), 'mean CCC')}"
            "<figcaption>Bars: mean CCC over the targets of the pooled out-of-fold predictions; error bars: its "
            "95% bootstrap CI.</figcaption></figure>",
        ),
        (
            "4. CCC per target",
            '<div class="figs">' + "".join(f"<figure>{target_bars(table, t)}</figure>" for t in targets) + "</div>",
        ),
        (
            "5. Predicted against true (first repeat)",
            '<p class="note">The best variant and the unimodal variants it is compared with.</p>'
            f'<div class="figs">{figures}</div>',
        ),
        ("6. The target plane of the best variant", f"<figure>{plane}</figure>" if plane else "<p>One target.</p>"),
        ("7. Run metadata", metadata_section(params_path)),
    ]
    write_text(rh.page("mmer report (regression)", sections), REPORTS / "index.html")
    print_console(rows.head(8), summary, regression=True)


def target_bars(table: pd.DataFrame, target: str) -> str:
    """Pooled out-of-fold CCC of one target per fusion and learner, with its 95% bootstrap CI."""
    columns = (f"ccc_{target}_pooled", f"ccc_{target}_ci95_low", f"ccc_{target}_ci95_high")
    return rh.score_bars(table, columns, f"CCC {target}")


def write_regression_plots(oof: pd.DataFrame, targets: list[str], center: float, folder: Path) -> None:
    """DVC plots of a regression run: true/predicted pairs (scatter.csv) and the quadrants as a confusion."""
    pairs = pd.concat(
        [pd.DataFrame({"target": t, "true": oof[f"true_{t}"], "predicted": oof[f"pred_{t}"]}) for t in targets]
    )
    with atomic_path(folder / "scatter.csv") as tmp:
        pairs.to_csv(tmp, index=False, float_format="%.5f")

    def quadrant(columns: list[str]) -> list[str]:
        return ["".join("+" if v >= center else "-" for v in row) for row in oof[columns].to_numpy()]

    actual, predicted = quadrant([f"true_{t}" for t in targets]), quadrant([f"pred_{t}" for t in targets])
    with atomic_path(folder / "confusion.csv") as tmp:
        pd.DataFrame({"actual": actual, "predicted": predicted}).to_csv(tmp, index=False)
    (folder / "roc.csv").unlink(missing_ok=True)


def csv_table(table: pd.DataFrame, chance: dict[str, float]) -> pd.DataFrame:
    """The leaderboard with a ``row`` column (best / variant / chance) and the chance row last."""
    out = table.copy()
    out.insert(0, "row", ["best"] + ["variant"] * (len(out) - 1))
    chance_row = {"row": "chance", "model": "chance", "fusion": "majority class"}
    chance_row.update({f"{metric}_mean": value for metric, value in chance.items()})
    out = pd.concat([out, pd.DataFrame([chance_row])], ignore_index=True)
    out["rank"] = out["rank"].astype("Int64")  # stays an integer column next to the chance row's blank
    return out


def write_dvc_plots(oof: pd.DataFrame, classes: list[str], folder: Path) -> None:
    """Inputs of dvc.yaml's plots: actual/predicted pairs and micro-averaged ROC points of the best variant.

    ``oof`` holds one prediction per clip (the first repeat).
    """
    from sklearn.metrics import roc_curve

    (folder / "scatter.csv").unlink(missing_ok=True)  # a regression run's
    with atomic_path(folder / "confusion.csv") as tmp:
        oof[["label", "predicted"]].rename(columns={"label": "actual"}).to_csv(tmp, index=False)
    truth = pd.concat([oof["label"] == c for c in classes]).to_numpy()
    scores = pd.concat([oof[f"proba_{c}"] for c in classes]).to_numpy()
    fpr, tpr, _ = roc_curve(truth, scores)
    with atomic_path(folder / "roc.csv") as tmp:
        pd.DataFrame({"fpr": fpr, "tpr": tpr}).to_csv(tmp, index=False, float_format="%.5f")


def dataset_section(runs: dict) -> str:
    """Clips per class and fold, durations, text lengths, clips without text, errors."""
    manifest = read_store(MANIFEST, columns=["clip_id", "audio_path", "label", "split"])
    any_run = next(iter(runs.values()))
    per_class = manifest["label"].value_counts().sort_index().rename("clips").to_frame()
    oof = any_run["oof"]
    per_fold = oof[oof["repeat"] == 0].groupby(["fold", "label"]).size().unstack(fill_value=0)
    durations = []
    for path in manifest["audio_path"].fillna(""):
        try:
            if is_url(path):
                with open_source(path) as fh:
                    durations.append(sf.info(fh).duration)
            else:
                durations.append(sf.info(path).duration)
        except Exception:  # an unreadable file is already in the errors table
            durations.append(float("nan"))
    durations = pd.Series(durations)
    text = read_store(TEXT_STORE, columns=["has_text", "n_tokens"])
    errors = {p.name: len(read_store(p)) for p in (AUDIO_ERRORS, ESSENTIA_ERRORS, MUSICNN_ERRORS) if p.exists()}
    cropped = read_metadata(AUDIO_ERRORS).get("cropped_clips", {}) if AUDIO_ERRORS.exists() else {}
    facts = pd.DataFrame(
        [
            ("clips in the manifest", len(manifest)),
            ("clips scored (every variant)", any_run["metrics"]["n_clips"]),
            (
                "audio duration, s (min / median / max)",
                f"{durations.min():.2f} / {durations.median():.2f} / {durations.max():.2f}"
                if durations.notna().any()
                else "no audio in this corpus",
            ),
            (
                "text length, word-pieces (median / max)",
                f"{text['n_tokens'].median():.0f} / {text['n_tokens'].max():.0f}",
            ),
            ("clips without text (manifest)", int((~text["has_text"]).sum())),
            *[(f"rows in {name}", n) for name, n in errors.items()],
            ("files cropped to audio.max_duration_s (audio_errors metadata)", len(cropped)),
        ],
        columns=["", "value"],
    )
    splits = ""
    if manifest["split"].notna().any():
        per_split = manifest.groupby(["split", "label"]).size().unstack(fill_value=0)
        splits = "<h3>Clips per manifest split and class</h3>" + rh.table_html(per_split.reset_index())
    return (
        rh.table_html(facts)
        + "<h3>Clips per class</h3>"
        + rh.table_html(per_class.reset_index())
        + splits
        + "<h3>Clips per test fold and class (first repeat)</h3>"
        + rh.table_html(per_fold.reset_index())
    )


def importance_section(runs: dict) -> str:
    """LightGBM split gain of the concat variant by feature family and by modality."""
    run = runs.get(("lgbm", "concat"))
    if run is None:
        return '<p class="note">No LightGBM concat variant in this run.</p>'
    if not run["importance"]:
        return '<p class="note">Importance unavailable: the TF-IDF text width is chosen per fold.</p>'
    gains = pd.Series(run["importance"])
    share = gains / gains.sum()

    def family(name: str) -> str:
        if name.startswith("text:"):
            return "text missing" if name == "text:missing" else "text embedding"
        return name.split(":")[1] + ":" + column_group(name.split(":")[-1])

    by_family = share.groupby(family).sum().sort_values(ascending=False).head(15)
    by_modality = share.groupby(lambda n: n.split(":")[0]).sum().sort_values(ascending=False)
    return (
        '<div class="figs">'
        f"<figure>{rh.importance_svg(by_modality, 'by modality (lgbm, concat)')}</figure>"
        f"<figure>{rh.importance_svg(by_family, 'top feature families (lgbm, concat)')}</figure></div>"
        f'<p class="note">Audio share of the gain: {by_modality.get("audio", 0):.1%}; '
        f"text: {by_modality.get('text', 0):.1%}.</p>"
    )


def metadata_section(params_path: Path) -> str:
    """params.yaml, library versions, git revision and each store's metadata."""
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
        revision += " (uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        revision = "unknown (not a git checkout)"
    stores = {}
    for path in (MANIFEST, AUDIO_STORE, MELSPEC_STORE, ESSENTIA_STORE, MUSICNN_STORE, TEXT_STORE):
        if path.exists():
            meta = read_metadata(path)
            for key in ("feature_names", "tags"):
                if key in meta:
                    meta[key] = f"{len(meta[key])} names"
            stores[str(path)] = meta
    params_text = params_path.read_text() if params_path.exists() else "(params.yaml not found)"
    return (
        f"<p>git HEAD when the report was built: <code>{html.escape(revision)}</code> "
        "(a run is usually committed after it was made)</p>"
        f"<h3>params.yaml</h3><pre>{html.escape(params_text)}</pre>"
        f"<h3>Library versions</h3>{rh.pre_json(library_versions(VERSIONED))}"
        f"<h3>Store metadata</h3>{rh.pre_json(stores)}"
    )


def render(
    runs: dict, table: pd.DataFrame, rows: pd.DataFrame, summary: str, params_path: Path, tuned: dict | None = None
) -> str:
    """The whole self-contained page (with a section of tuned hyper-parameters when ``tuned`` has tables)."""
    best_key = (table["model"][0], table["fusion"][0])
    best = runs[best_key]
    classes = best["metrics"]["classes"]
    confusions = [rh.confusion_svg(best["oof"], classes, f"best: {best_key[0]}-{best_key[1]}")]
    for key in unimodal_references(best_key[0]):  # what the best variant is compared with
        counterpart = runs.get(key)
        if counterpart is not None and key != best_key:
            confusions.append(rh.confusion_svg(counterpart["oof"], classes, "-".join(key)))
    oofs = {f"{m}-{f}": runs[(m, f)]["oof"] for m, f in zip(table["model"], table["fusion"])}
    marks = {0: "best"}
    sections = [
        ("1. Data", f"<p>{html.escape(summary)}</p>" + dataset_section(runs)),
        (
            "2. Leaderboard",
            '<p class="note">Click a heading to sort. Best row in green, chance (majority class) '
            "in orange.</p>" + rh.table_html(rows.iloc[:-1], marks, sortable=True, footer=rows.iloc[-1:]),
        ),
        (
            "3. Macro-F1 by fusion and learner",
            f"<figure>{rh.f1_bars(table)}<figcaption>Bars: macro-F1 of the pooled out-of-fold "
            "predictions; error bars: its 95% bootstrap CI.</figcaption></figure>",
        ),
        (
            "4. Confusion matrices (row-normalised)",
            '<div class="figs">' + "".join(f"<figure>{c}</figure>" for c in confusions) + "</div>",
        ),
        (
            "5. ROC curves of the best variant",
            f"<figure>{rh.roc_svg(best['oof'], classes, '-'.join(best_key))}</figure>",
        ),
        ("6. Per-class F1", f"<figure>{rh.heatmap_svg(rh.per_class_f1(oofs, classes))}</figure>"),
        ("7. What the fused LightGBM uses", importance_section(runs)),
    ]
    if tuned:
        tables = "".join(
            f"<h3>{html.escape(name)}</h3>" + rh.table_html(t.reset_index(names="")) for name, t in tuned.items()
        )
        note = '<p class="note">Chosen per outer fold on its training and validation rows, never its test rows.</p>'
        sections.append((f"{len(sections) + 1}. Tuned hyper-parameters", note + tables))
    sections.append((f"{len(sections) + 1}. Run metadata", metadata_section(params_path)))
    return rh.page("mmer report", sections)


def print_console(rows: pd.DataFrame, summary: str, regression: bool = False) -> None:
    """The top of the leaderboard as a rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mmer leaderboard (top rows)", caption=summary)
    columns = [
        "rank",
        "model",
        "fusion",
        "audio",
        "macro-F1",
        "F1 95% CI",
        "AUC-ROC",
        "ΔF1 vs best unimodal",
        "p",
        "F1 text removed",
    ]
    if regression:
        scores = [c for c in rows.columns if c.startswith("CCC") and c != "CCC text removed"]
        columns = ["rank", "model", "fusion", "audio", *scores, "quadrant acc.", "ΔCCC vs best unimodal", "p"]
    for column in columns:
        table.add_column(column)
    for row in rows.to_dict("records"):
        table.add_row(*(str(row.get(c, "")) for c in columns))
    Console(width=160).print(table)
