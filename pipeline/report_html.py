"""The self-contained HTML report: data summary, leaderboard, figures, run metadata.

Figures are matplotlib SVG inlined into the page; nothing is fetched from the
network, so ``reports/index.html`` opens anywhere, offline, and can be attached to a
paper as it is.
"""

from __future__ import annotations

import html
import io
import json
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score, roc_curve

from pipeline.fusion import FUSIONS

plt.rcParams.update({"svg.hashsalt": "mmer", "font.size": 9, "figure.dpi": 100, "text.parse_math": False})

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
line-height:1.4;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.25rem .5rem;
text-align:right;white-space:nowrap}th{background:#f4f4f4;cursor:pointer}
td:nth-child(-n+4),th:nth-child(-n+4){text-align:left}.wide{overflow-x:auto}
tr.best{background:#e6f4ea;font-weight:600}tfoot tr{background:#fdf3e1;font-style:italic}
.figs{display:flex;flex-wrap:wrap;gap:1rem}.figs figure{margin:0}figcaption{font-size:.8rem;color:#555}
pre{background:#f7f7f7;padding:.5rem;overflow-x:auto;font-size:.8rem}.note{color:#555;font-size:.85rem}
"""

SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
  const key = r => { const t = r.cells[col].innerText; const v = parseFloat(t); return isNaN(v) ? t : v; };
  const dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
  rows.sort((a, b) => key(a) > key(b) ? dir : key(a) < key(b) ? -dir : 0).forEach(r => body.appendChild(r));
}));
"""


def svg(fig) -> str:
    """A figure as inline SVG text (deterministic ids, no timestamp)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def f1_bars(table: pd.DataFrame) -> str:
    """Grouped bars: pooled out-of-fold macro-F1 per fusion (groups) and learner (bars), 95% CI as error bars."""
    return score_bars(table, ("f1_macro_pooled", "f1_macro_ci95_low", "f1_macro_ci95_high"), "macro-F1")


def score_bars(table: pd.DataFrame, columns: tuple[str, str, str], label: str) -> str:
    """Grouped bars of a pooled score per fusion (groups) and learner (bars); ``columns``: score, CI low, CI high."""
    models = sorted(table["model"].unique())
    fusions = [f for f in FUSIONS if f in set(table["fusion"])]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        rows = table[table["model"] == model].set_index("fusion").reindex(fusions)
        x = np.arange(len(fusions)) + i * width
        pooled = rows[columns[0]].to_numpy(dtype=float)
        ci = rows[list(columns[1:])].to_numpy(dtype=float)
        err = np.clip(np.stack([pooled - ci[:, 0], ci[:, 1] - pooled]), 0, None)
        ax.bar(x, pooled, width, yerr=err, capsize=2, label=model)
    ax.set_xticks(np.arange(len(fusions)) + width * (len(models) - 1) / 2, fusions)
    ax.set_ylabel(label)
    ax.set_ylim(min(0.0, float(np.nanmin(table[columns[0]].to_numpy(dtype=float)))), 1)
    ax.legend(ncol=len(models), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return svg(fig)


def scatter_svg(oof: pd.DataFrame, targets: list[str], title: str) -> str:
    """Predicted against true value, one panel per target (first repeat), with the identity line."""
    first = oof[oof["repeat"] == oof["repeat"].min()]
    fig, axes = plt.subplots(1, len(targets), figsize=(2.6 * len(targets), 2.7), squeeze=False)
    for ax, target in zip(axes[0], targets):
        true, predicted = first[f"true_{target}"], first[f"pred_{target}"]
        low, high = min(true.min(), predicted.min()), max(true.max(), predicted.max())
        ax.plot([low, high], [low, high], "k:", linewidth=0.8)
        ax.scatter(true, predicted, s=6, alpha=0.5)
        ax.set_xlabel(f"true {target}")
        ax.set_ylabel(f"predicted {target}")
    fig.suptitle(title, fontsize=9)
    return svg(fig)


def plane_svg(oof: pd.DataFrame, targets: list[str], title: str, center: float = 0.0) -> str:
    """True and predicted points in the plane of two targets (valence across, arousal up when both exist)."""
    x, y = ("valence", "arousal") if {"valence", "arousal"} <= set(targets) else targets[:2]
    first = oof[oof["repeat"] == oof["repeat"].min()]
    fig, ax = plt.subplots(figsize=(3.4, 3.4))
    ax.scatter(first[f"true_{x}"], first[f"true_{y}"], s=6, alpha=0.4, label="true")
    ax.scatter(first[f"pred_{x}"], first[f"pred_{y}"], s=6, alpha=0.4, label="predicted")
    ax.axhline(center, color="k", linewidth=0.6)
    ax.axvline(center, color="k", linewidth=0.6)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return svg(fig)


def confusion_svg(oof: pd.DataFrame, classes: list[str], title: str) -> str:
    """Row-normalised confusion matrix (rows: true class)."""
    matrix = confusion_matrix(oof["label"], oof["predicted"], labels=classes, normalize="true")
    fig, ax = plt.subplots(figsize=(2.2 + 0.35 * len(classes), 2.0 + 0.35 * len(classes)))
    ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return svg(fig)


def roc_svg(oof: pd.DataFrame, classes: list[str], title: str) -> str:
    """One-vs-rest ROC curve per class."""
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    for c in classes:
        if oof["label"].eq(c).all() or not oof["label"].eq(c).any():
            continue
        fpr, tpr, _ = roc_curve(oof["label"] == c, oof[f"proba_{c}"])
        ax.plot(fpr, tpr, label=c)
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return svg(fig)


def per_class_f1(oofs: dict[str, pd.DataFrame], classes: list[str]) -> pd.DataFrame:
    """Variants x classes F1 on pooled out-of-fold predictions."""
    return pd.DataFrame(
        {
            name: f1_score(o["label"], o["predicted"], labels=classes, average=None, zero_division=0)
            for name, o in oofs.items()
        },
        index=classes,
    ).T


def heatmap_svg(frame: pd.DataFrame) -> str:
    """Per-class F1 heatmap (rows: variants, columns: classes)."""
    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * frame.shape[1], 0.8 + 0.22 * frame.shape[0]))
    ax.imshow(frame.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(frame.to_numpy()):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value < 0.6 else "black")
    ax.set_xticks(range(frame.shape[1]), frame.columns)
    ax.set_yticks(range(frame.shape[0]), frame.index)
    return svg(fig)


def importance_svg(shares: pd.Series, title: str) -> str:
    """Horizontal bars of gain shares."""
    fig, ax = plt.subplots(figsize=(4.5, 0.6 + 0.22 * len(shares)))
    ax.barh(shares.index[::-1], shares.to_numpy()[::-1])
    ax.set_xlabel("share of LightGBM split gain")
    ax.set_title(title, fontsize=9)
    return svg(fig)


def table_html(
    frame: pd.DataFrame,
    classes: dict[int, str] | None = None,
    sortable: bool = False,
    footer: pd.DataFrame | None = None,
) -> str:
    """A DataFrame as an HTML table; ``classes`` marks rows (by position) with a CSS class;
    ``footer`` rows go to <tfoot> (they stay put when the table is sorted)."""

    def cells(row) -> str:
        return "".join(f"<td>{html.escape(str(v))}</td>" for v in row)

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for i, row in enumerate(frame.itertuples(index=False)):
        css = f' class="{classes[i]}"' if classes and i in classes else ""
        rows.append(f"<tr{css}>{cells(row)}</tr>")
    foot = ""
    if footer is not None and len(footer):
        foot = "<tfoot>" + "".join(f"<tr>{cells(r)}</tr>" for r in footer.itertuples(index=False)) + "</tfoot>"
    sort = ' class="sortable"' if sortable else ""
    table = f"<table{sort}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>{foot}</table>"
    return f'<div class="wide">{table}</div>'


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """The whole document: one heading, one <section> per (heading, html body)."""
    body = "".join(
        f'<section id="s{i}"><h2>{html.escape(h)}</h2>{content}</section>'
        for i, (h, content) in enumerate(sections, start=1)
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
        f"<script>{SORT_SCRIPT}</script></body></html>\n"
    )


def pre_json(obj: Any) -> str:
    """Pretty JSON in a <pre> block."""
    return f"<pre>{html.escape(json.dumps(obj, indent=2, sort_keys=True, default=str))}</pre>"
