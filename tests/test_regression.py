"""task: regression: CCC and friends, every learner family as a regressor, the train stage and the report."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.datasets.manifest import ManifestError, target_values
from pipeline.evaluation import (
    ccc,
    paired_bootstrap_ccc_pvalue,
    pooled_ccc,
    quadrant_codes,
    regression_metrics,
)
from pipeline.models import load_learner, make_learner
from pipeline.params import ParamsError, TrainParams, load_params
from tests.conftest import write_params


def test_ccc_pearson_rmse_mae_r2_match_hand_computed_values():
    true = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, -1.0], [4.0, 0.5]])
    predicted = np.array([[1.5, 0.0], [2.0, 0.5], [2.5, -0.5], [5.0, 0.5]])
    scores = regression_metrics(true, predicted, ["a", "b"])
    # target a by hand: means 2.5 / 2.75, population variances 1.25 / 1.8125, covariance 1.375
    assert scores["ccc_a"] == pytest.approx(2 * 1.375 / (1.25 + 1.8125 + 0.25**2)) == pytest.approx(0.88)
    assert scores["pearson_a"] == pytest.approx(1.375 / np.sqrt(1.25 * 1.8125))
    assert scores["rmse_a"] == pytest.approx(np.sqrt((0.25 + 0 + 0.25 + 1) / 4))
    assert scores["mae_a"] == pytest.approx((0.5 + 0 + 0.5 + 1) / 4)
    assert scores["r2_a"] == pytest.approx(1 - 1.5 / 5.0)
    assert scores["ccc_mean"] == pytest.approx((scores["ccc_a"] + scores["ccc_b"]) / 2)
    # quadrants: signs of both targets agree for rows 0 (+,+ vs +,+), 2 (+,- / +,-) and 3; row 1 is (+,+) both
    assert scores["quadrant_accuracy"] == 1.0
    assert ccc(true, true) == pytest.approx([1.0, 1.0])
    assert ccc(true, -true)[1] < 0  # anti-concordant
    assert ccc(true, np.tile(true.mean(axis=0), (4, 1))) == pytest.approx([0.0, 0.0])  # the dummy's prediction
    assert list(quadrant_codes(np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]))) == [0, 1, 2, 3]


def test_the_target_center_decides_the_quadrants():
    from pipeline.evaluation import Regression

    true = np.array([[0.9, 0.8], [0.2, 0.7], [0.1, 0.1], [0.8, 0.3]])  # a [0, 1] scale: quadrants about 0.5
    predicted = np.array([[0.7, 0.6], [0.4, 0.9], [0.3, 0.2], [0.6, 0.45]])
    assert Regression(("a", "v"), 0.5).scores(true, predicted)["quadrant_accuracy"] == 1.0
    assert Regression(("a", "v"), 0.0).scores(true, predicted)["quadrant_accuracy"] == 1.0  # all positive about 0
    shifted = Regression(("a", "v"), 0.35).scores(true, predicted)  # row 1 (0.2 vs 0.4) and row 3 (0.3 vs 0.45)
    assert shifted["quadrant_accuracy"] == 0.5
    assert shifted["ccc_a"] == pytest.approx(Regression(("a", "v"), 0.5).scores(true, predicted)["ccc_a"])  # no effect


def test_paired_bootstrap_separates_a_better_variant_and_not_an_equal_one():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(120, 2))
    good, poor = y + 0.3 * rng.normal(size=y.shape), y + 1.5 * rng.normal(size=y.shape)
    assert pooled_ccc(y, good) > pooled_ccc(y, poor)
    assert paired_bootstrap_ccc_pvalue(y, good, poor, n_boot=300) < 0.01
    assert paired_bootstrap_ccc_pvalue(y, good, good, n_boot=300) == 1.0
    repeated = np.stack([good, good])  # two repeats of the same predictions pool to the same score
    assert pooled_ccc(y, repeated) == pytest.approx(pooled_ccc(y, good))


def complementary_blocks(n: int = 240, seed: int = 0):
    """Two targets: audio carries the first, text the second (plus noise columns)."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(-1, 1, size=(n, 2))
    audio = np.column_stack([y[:, 0] + 0.3 * rng.normal(size=n), rng.normal(size=(n, 6))]).astype(np.float32)
    text = np.column_stack([y[:, 1] + 0.3 * rng.normal(size=n), rng.normal(size=(n, 6))]).astype(np.float32)
    return {"audio": audio, "text": text, "text_present": np.ones(n, bool)}, y


FAST_HEADS = {"max_epochs": 60, "patience": 10}
FUSED = {"logreg": ["concat", "tensor", "late"], "lgbm": ["concat", "tensor", "late"], "mlp": ["concat", "late"]}


@pytest.mark.parametrize("model", ["logreg", "lgbm", "mlp", "multitask"])
def test_each_learner_regresses_two_targets_and_fusion_beats_each_modality(model, tmp_path):
    import dataclasses

    blocks, y = complementary_blocks()
    params = TrainParams()
    params = dataclasses.replace(params, mlp=dataclasses.replace(params.mlp, **FAST_HEADS))
    params = dataclasses.replace(params, multitask=dataclasses.replace(params.multitask, **FAST_HEADS))
    train, val, test = np.arange(0, 160), np.arange(160, 190), np.arange(190, 240)

    def part(rows):
        return {k: v[rows] for k, v in blocks.items()}

    def score(fusion: str) -> float:
        learner = make_learner(model, fusion, params=params, seed=0, task="regression")
        learner.fit(part(train), y[train], validation=(part(val), y[val]))
        predicted = learner.predict(part(test))
        assert predicted.shape == (len(test), 2) and np.isfinite(predicted).all()
        learner.save(tmp_path / f"{model}-{fusion}")
        np.testing.assert_allclose(load_learner(tmp_path / f"{model}-{fusion}").predict(part(test)), predicted)
        return float(ccc(y[test], predicted).mean())

    unimodal_of = "mlp" if model == "multitask" else model
    unimodal = max(
        score_of(unimodal_of, f, params, blocks, y, (train, val, test)) for f in ("audio", "text")
    )  # each carries one target: about half the mean CCC
    assert unimodal < 0.55
    for fusion in FUSED.get(model, ["concat", "tensor"]):
        assert score(fusion) > unimodal + 0.15, fusion
    for fusion in ("product", "mean"):  # fit and predict; linear learners gain little from elementwise fusion
        assert np.isfinite(score(fusion))


def score_of(model, fusion, params, blocks, y, rows) -> float:
    train, val, test = rows
    learner = make_learner(model, fusion, params=params, seed=0, task="regression")
    learner.fit(
        {k: v[train] for k, v in blocks.items()}, y[train], validation=({k: v[val] for k, v in blocks.items()}, y[val])
    )
    return float(ccc(y[test], learner.predict({k: v[test] for k, v in blocks.items()})).mean())


def test_ccc_loss_trains_the_head_and_the_dummy_predicts_the_training_mean():
    blocks, y = complementary_blocks(seed=1)
    params = TrainParams()
    head = make_learner("mlp", "concat", params=params, seed=0, task="regression")
    head.max_epochs, head.patience = 40, 40
    head.fit({k: v[:200] for k, v in blocks.items()}, y[:200])  # validation carved from the training rows
    assert head.regression_loss == "ccc" and head.best_val_loss_ < 0.3  # 1 - CCC: ~1 untrained
    dummy = make_learner("dummy", "none", params=params, seed=0, task="regression").fit(blocks, y)
    np.testing.assert_allclose(dummy.predict(blocks), np.tile(y.mean(axis=0), (len(y), 1)))
    assert ccc(y, dummy.predict(blocks)) == pytest.approx([0.0, 0.0])


def test_targets_must_be_finite_numbers_for_every_clip():
    table = pd.DataFrame({"clip_id": ["a", "b", "c"], "arousal": ["0.1", "x", ""], "valence": [0.2, 0.1, 0.0]})
    with pytest.raises(
        ManifestError, match=r"target 'arousal' is missing or not a finite number for 2 clip\(s\), e\.g\. \['b', 'c'\]"
    ):
        target_values(table, ["arousal", "valence"])
    with pytest.raises(ManifestError, match=r"dataset.targets \['mood'\] not found"):
        target_values(table, ["mood"])
    np.testing.assert_array_equal(target_values(table.iloc[:1], ["arousal", "valence"]), [[0.1, 0.2]])


def test_regression_params_are_checked(tmp_path):
    write_params(tmp_path, {"task": "regression", "dataset": {"targets": []}})
    with pytest.raises(ParamsError, match="task 'regression' needs dataset.targets"):
        load_params(tmp_path / "params.yaml")
    write_params(tmp_path, {"task": "regression", "tune": {"enabled": True}})
    with pytest.raises(ParamsError, match="tune.enabled searches classification metrics"):
        load_params(tmp_path / "params.yaml")
    write_params(tmp_path, {"task": "regresion"})
    with pytest.raises(ParamsError, match="task must be 'classification' or 'regression'"):
        load_params(tmp_path / "params.yaml")


def test_the_train_and_report_stages_run_regression_on_the_demo_targets(project):
    from pipeline.stages import bundle, report, train

    write_params(project, {"task": "regression"})
    params = load_params()
    for model, fusion in [("logreg", "audio"), ("logreg", "text"), ("logreg", "concat"), ("dummy", "none")]:
        train.run(params, model, fusion)
    run = json.loads((project / "models" / "logreg-concat" / "metrics.json").read_text())
    assert run["task"] == "regression" and run["targets"] == ["arousal", "valence"] and run["classes"] == []
    assert {"ccc_mean", "ccc_arousal", "rmse_valence", "quadrant_accuracy", "ccc_mean_text_removed"} <= set(
        run["summary"]
    )
    oof = pd.read_parquet(project / "models" / "logreg-concat" / "oof.parquet")
    manifest = pd.read_parquet(project / "data" / "manifest.parquet").set_index("clip_id")
    np.testing.assert_allclose(oof["true_arousal"], manifest.loc[oof["clip_id"], "arousal"].astype(float))
    assert len(oof) == 40 and {"pred_arousal", "pred_valence"} <= set(oof.columns)
    report.run()
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    fused = metrics["logreg"]["concat"]
    assert fused["best_unimodal"] in ("logreg-audio", "logreg-text") and 0 < fused["p_value_vs_best_unimodal"] <= 1
    assert fused["ccc_mean_ci95"][0] <= fused["ccc_mean_pooled"] <= fused["ccc_mean_ci95"][1]
    assert metrics["dummy"]["none"]["ccc_mean"]["mean"] == pytest.approx(0.0, abs=1e-9)
    summary = json.loads((project / "reports" / "summary.json").read_text())
    assert set(summary["best"]) == {"variant", "ccc_mean", "ccc_ci_low", "ccc_ci_high", "ccc_arousal", "ccc_valence"}
    assert set(summary["ccc_mean"]) == {"logreg-audio", "logreg-text", "logreg-concat"}
    board = (project / "reports" / "leaderboard.md").read_text()
    assert board.startswith("# Leaderboard (regression)") and "| CCC mean | CCC 95% CI | CCC arousal |" in board
    assert "targets arousal, valence" in board and "dummy (training mean)" in board
    assert (project / "reports" / "index.html").read_text().count("<svg") >= 4  # bars, 2+ scatters, the plane
    pairs = pd.read_csv(project / "reports" / "plots" / "scatter.csv")
    assert list(pairs.columns) == ["target", "true", "predicted"] and len(pairs) == 80

    from pipeline.predict import predict

    bundle.run(params)  # the best variant, refitted on all 40 clips
    best = summary["best"]["variant"]
    card = (project / "models" / "bundles" / best / "MODEL_CARD.md").read_text()
    assert "Predicts arousal, valence (continuous values)" in card and "mean CCC" in card
    table, scores = predict(project / "models" / "bundles" / best, [project / "data" / "demo" / "manifest.csv"])
    assert {"pred_arousal", "pred_valence"} <= set(table.columns) and "predicted" not in table
    assert table["error"].isna().all() and np.isfinite(table[["pred_arousal", "pred_valence"]].to_numpy()).all()
    assert scores["n_clips"] == 40 and scores["ccc_mean"] > 0.5  # its own training clips: a sanity floor
    assert scores["ccc_mean_ci95"][0] <= scores["ccc_mean_pooled"] <= scores["ccc_mean_ci95"][1]
    without_targets = project / "data" / "demo" / "no_targets.csv"
    pd.read_csv(project / "data" / "demo" / "manifest.csv").drop(columns=["arousal"]).to_csv(without_targets)
    unlabelled, none = predict(project / "models" / "bundles" / best, [without_targets])
    assert none is None  # a target missing: predictions, nothing to score
    pd.testing.assert_frame_equal(unlabelled[["pred_arousal", "pred_valence"]], table[["pred_arousal", "pred_valence"]])
