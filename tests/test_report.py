"""The report stage on a small real run: files, content, figures, and a headless browser."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from pipeline.params import load_params
from pipeline.stages import report, train
from tests.conftest import write_params

VARIANTS = [
    ("logreg", "audio"),
    ("logreg", "text"),
    ("logreg", "concat"),
    ("logreg", "late"),
    ("lgbm", "concat"),
    ("dummy", "none"),
]


@pytest.fixture(scope="module")
def reported_project(tiny_project, tmp_path_factory):
    """The tiny project with VARIANTS trained (2 repeats) and reported, built once for this module's readers."""
    root = tmp_path_factory.mktemp("reported") / "project"
    shutil.copytree(tiny_project, root)
    write_params(root, {"eval": {"n_repeats": 2}})
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for model, fusion in VARIANTS:
            train.run(load_params(), model, fusion)
        report.run()
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def reported(reported_project):
    """The reports folder (read it, do not change it: other tests share it)."""
    return reported_project / "reports"


def test_metrics_json_shape_with_ci_and_p_values(reported):
    metrics = json.loads((reported / "metrics.json").read_text())
    assert {m: sorted(f) for m, f in metrics.items()} == {
        "dummy": ["none"],
        "lgbm": ["concat"],
        "logreg": ["audio", "concat", "late", "text"],
    }
    concat = metrics["logreg"]["concat"]
    for key in ("f1_macro", "auc_roc_macro", "accuracy", "balanced_accuracy", "precision_macro", "recall_macro"):
        assert set(concat[key]) == {"mean", "std"}
    low, high = concat["f1_macro_ci95"]
    assert 0 <= low < high <= 1
    assert 0 < concat["p_value_vs_best_unimodal"] <= 1
    best = max(["audio", "text"], key=lambda f: metrics["logreg"][f]["f1_macro_pooled"])
    assert concat["best_unimodal"] == f"logreg-{best}"
    delta = concat["f1_macro_pooled"] - metrics["logreg"][best]["f1_macro_pooled"]
    assert concat["f1_delta_vs_best_unimodal"] == pytest.approx(delta)
    assert metrics["logreg"]["audio"]["p_value_vs_best_unimodal"] is None
    assert metrics["lgbm"]["concat"]["p_value_vs_best_unimodal"] is None  # no unimodal lgbm in this run
    assert metrics["dummy"]["none"]["p_value_vs_best_unimodal"] is None
    assert 0 < metrics["logreg"]["late"]["p_value_vs_best_unimodal"] <= 1
    assert metrics["logreg"]["audio"]["f1_delta_vs_best_unimodal"] is None
    # robustness: removing the test clips' text hurts the text-reading variants, not the audio-only one
    assert "f1_macro_text_removed" not in metrics["logreg"]["audio"]
    text_only = metrics["logreg"]["text"]
    assert text_only["f1_macro_text_removed"]["mean"] < text_only["f1_macro"]["mean"]


def test_summary_json_is_the_compact_dvc_metrics_file(reported):
    summary = json.loads((reported / "summary.json").read_text())
    full = pd.read_csv(reported / "leaderboard.csv")
    ranked = full[full["row"] != "chance"]
    variants = (ranked["model"] + "-" + ranked["fusion"]).tolist()
    assert list(summary) == ["best", "f1_macro"]
    assert list(summary["f1_macro"]) == sorted(variants)  # sorted keys: the same columns in every experiment
    assert summary["f1_macro"] == {v: round(f, 4) for v, f in zip(variants, ranked["f1_macro_mean"])}
    best = ranked.iloc[0]
    assert summary["best"] == {
        "variant": variants[0],
        "f1_macro": round(best["f1_macro_mean"], 4),
        "f1_ci_low": round(best["f1_macro_ci95_low"], 4),
        "f1_ci_high": round(best["f1_macro_ci95_high"], 4),
        "auc_roc": round(best["auc_roc_macro_mean"], 4),
    }


def test_leaderboard_files(reported):
    board = (reported / "leaderboard.md").read_text()
    rows = [line for line in board.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 5  # the dummy is the chance row, not ranked
    f1s = [float(r.split("|")[5].split("±")[0]) for r in rows]
    assert f1s == sorted(f1s, reverse=True)
    assert (
        "| – | chance | dummy (majority class) | – |" in board
        and "40 clips, 4 classes, 4-fold CV x 2 repeats." in board
    )
    assert rows[0].split("|")[2].strip().startswith("**")  # best row in bold
    full = pd.read_csv(reported / "leaderboard.csv")
    assert full["row"].tolist() == ["best", "variant", "variant", "variant", "variant", "chance"]
    chance = full.iloc[-1]  # the dummy: one class for every clip of a fold, uninformative scores
    assert 0.05 < chance["f1_macro_mean"] <= 0.1 and chance["auc_roc_macro_mean"] == pytest.approx(0.5)
    csv = full[full["row"] != "chance"]
    assert csv["rank"].tolist() == [1, 2, 3, 4, 5] and (csv["train_seconds"] > 0).all()
    reads_text = csv.set_index(csv["model"] + "-" + csv["fusion"])["f1_macro_text_removed_mean"].notna()
    assert reads_text.to_dict() == {
        "logreg-audio": False,
        "logreg-text": True,
        "logreg-concat": True,
        "logreg-late": True,
        "lgbm-concat": True,
    }
    audio = csv.set_index(csv["model"] + "-" + csv["fusion"])["audio"]
    assert audio["logreg-text"] == "–" and audio["logreg-concat"] == "descriptors"
    assert (csv["f1_macro_ci95_low"] <= csv["f1_macro_pooled"]).all()
    assert (csv["f1_macro_pooled"] <= csv["f1_macro_ci95_high"]).all()
    plots = pd.read_csv(reported / "plots" / "confusion.csv")
    assert list(plots.columns) == ["actual", "predicted"] and len(plots) == 40
    roc = pd.read_csv(reported / "plots" / "roc.csv")
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].iloc[-1] == 1.0


def test_html_report_is_complete_and_self_contained(reported):
    page = (reported / "index.html").read_text()
    for heading in (
        "1. Data",
        "2. Leaderboard",
        "3. Macro-F1 by fusion and learner",
        "4. Confusion matrices",
        "5. ROC curves",
        "6. Per-class F1",
        "7. What the fused LightGBM uses",
        "8. Run metadata",
    ):
        assert f"<h2>{heading}" in page
    assert page.count("<svg") >= 7  # bars, 3 confusions, ROC, heatmap, 2 importance charts
    assert page.count('<tr class="best">') == 1
    assert re.search(r"<tfoot><tr><td>–</td><td>chance</td>", page)  # chance row stays last when sorting
    # nothing is fetched: no external scripts, styles, images or fonts
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "<link" not in page
    assert re.search(r"files cropped to audio.max_duration_s \(audio_errors metadata\)</td>\s*<td[^>]*>0<", page)
    assert "Audio share of the gain" in page and "params.yaml" in page and "git HEAD when the report was built" in page


@pytest.mark.browser
def test_report_renders_in_a_headless_browser(reported, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = (reported / "index.html").as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert "<h1>mmer report</h1>" in dom and dom.count("<tr") > 5
    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--window-size=1200,2000", f"--screenshot={shot}", url], capture_output=True, timeout=120)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # not a blank page: text, tables and figures drawn
    assert (pixels < 128).mean() > 0.01


def test_runs_on_different_clips_are_refused(reported_project, tmp_path, monkeypatch):
    project = tmp_path / "project"
    shutil.copytree(reported_project, project)
    monkeypatch.chdir(project)
    oof_path = project / "models" / "logreg-audio" / "oof.parquet"
    oof = pd.read_parquet(oof_path)
    oof.iloc[:-1].to_parquet(oof_path)  # a stale variant scored on one clip fewer
    with pytest.raises(ValueError, match="logreg-audio was scored on other clips, repeats, classes or targets"):
        report.run()


def test_grouped_runs_bootstrap_whole_groups():
    from pipeline.evaluation import bootstrap_f1_ci

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(8), 30)
    y = rng.integers(0, 3, 240)
    # predictions are right for whole singers or wrong for whole singers: strongly clustered errors
    right = np.isin(groups, [0, 1, 2, 3, 4])
    proba = np.eye(3)[np.where(right, y, (y + 1) % 3)]
    clip_low, clip_high = bootstrap_f1_ci(y, proba, seed=0)
    group_low, group_high = bootstrap_f1_ci(y, proba, seed=0, groups=groups)
    assert group_high - group_low > 2 * (clip_high - clip_low)


def test_variants_with_their_own_audio_sets_are_compared_with_their_own_audio_only():
    from pipeline.reporting import unimodal_references

    assert unimodal_references("lgbm@musicnn") == [("lgbm@musicnn", "audio"), ("lgbm", "text")]
    assert unimodal_references("lgbm") == [("lgbm", "audio"), ("lgbm", "text")]
    assert unimodal_references("cnn") == [("cnn", "audio"), ("mlp", "text")]
