"""Nested hyper-parameter search: no outer test clip in tuning, seeded, and worth its cost."""

import json
from typing import ClassVar

import numpy as np
import pytest

from pipeline.evaluation import cross_validate, make_splits
from pipeline.models import make_learner
from pipeline.params import ParamsError, SearchRange, TrainParams, TuneParams, load_params
from pipeline.reporting import load_runs, tuning_markdown, tuning_tables
from pipeline.stages import train
from pipeline.tuning import NestedTuner, grid_values, inner_splits, tunable_space, with_values
from tests.conftest import write_params


class SpyLearner:
    """Nearest class mean on the columns after the first; the first column is the clip's row number, logged."""

    selects_on_validation = True
    log: ClassVar[list[np.ndarray]] = []

    def __init__(self, shrink: float = 0.0):
        self.shrink = shrink

    def fit(self, blocks, y, validation=None):
        SpyLearner.log.append(blocks["audio"][:, 0])
        if validation is not None:
            SpyLearner.log.append(validation[0]["audio"][:, 0])
        self.classes_ = np.unique(y)
        x = blocks["audio"][:, 1:]
        self.means_ = np.array([x[y == c].mean(axis=0) for c in self.classes_]) * (1 - self.shrink)
        return self

    def predict_proba(self, blocks):
        SpyLearner.log.append(blocks["audio"][:, 0])
        distance = ((blocks["audio"][:, None, 1:] - self.means_[None]) ** 2).sum(axis=2)
        weights = np.exp(-(distance - distance.min(axis=1, keepdims=True)))
        return weights / weights.sum(axis=1, keepdims=True)


def problem(n=160, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = np.column_stack([np.arange(n), y + rng.normal(0, 0.7, n), rng.normal(size=n)])
    return {"audio": x}, y, np.repeat(np.arange(n // 4), 4)  # groups of 4 clips


def tuner_for(make, space, configured, groups, n_splits, inner_folds=3, **settings):
    return NestedTuner(
        make,
        space,
        configured,
        TuneParams(**{"n_trials": 6, **settings}),
        groups=groups,
        n_classes=3,
        val_fraction=0.2,
        seed=7,
        n_splits=n_splits,
        inner_folds=inner_folds,
        name="spy",
    )


@pytest.mark.parametrize("inner_folds", [1, 3])
def test_tuning_never_sees_an_outer_test_clip(inner_folds):
    blocks, y, groups = problem()
    splits = make_splits(y, groups, n_folds=4, val_fraction=0.2, seed=1)
    space = {"shrink": SearchRange(low=0.0, high=0.9)}
    tuner = tuner_for(SpyLearner, space, {"shrink": 0.0}, groups, len(splits), inner_folds=inner_folds)

    def spied(fold_blocks, fold_y, split):
        SpyLearner.log.clear()
        chosen = tuner(fold_blocks, fold_y, split)
        seen = np.unique(np.concatenate(SpyLearner.log)).astype(int)
        assert len(SpyLearner.log) >= 6 * 2  # six trials, each fitted and scored at least once
        assert not np.isin(seen, split.test).any()
        np.testing.assert_array_equal(seen, np.union1d(split.train, split.val))  # and every other row is used
        return chosen

    cross_validate(SpyLearner, blocks, y, splits, 3, tuner=spied)
    assert [f["fold"] for f in tuner.folds] == [0, 1, 2, 3]
    assert all(0.0 <= f["params"]["shrink"] <= 0.9 and f["n_trials"] == 6 for f in tuner.folds)


def test_inner_splits_are_grouped_and_the_holdout_is_the_validation_rows():
    _, y, groups = problem()
    for s in inner_splits(y, groups, 120, 3, 0.2, seed=0):
        assert not set(groups[s.test]) & set(groups[np.concatenate([s.train, s.val])])
    (holdout,) = inner_splits(y, groups, 120, 1, 0.2, seed=0)
    np.testing.assert_array_equal(holdout.test, np.arange(120, 160))
    assert np.union1d(holdout.train, holdout.val).tolist() == list(range(120))


def logreg_tuner(configured_c, n_splits, **settings):
    space = {"C": SearchRange(low=1e-3, high=1e2, log=True)}
    base = TrainParams()

    def make(**values):
        return make_learner("logreg", "audio", params=with_values(base, "logreg", values), seed=0)

    return tuner_for(make, space, {"C": configured_c}, None, n_splits, **settings), make


def test_tuned_logreg_beats_a_bad_configured_value_and_is_deterministic():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 240)
    blocks = {"audio": np.column_stack([y + rng.normal(0, 1.0, 240), rng.normal(size=(240, 20))])}
    splits = make_splits(y, None, n_folds=4, val_fraction=0.2, seed=0)
    bad = TrainParams(logreg=TrainParams().logreg.__class__(C=1e-4))
    untuned, _ = cross_validate(lambda: make_learner("logreg", "audio", params=bad, seed=0), blocks, y, splits, 3)
    runs = []
    for _ in range(2):
        tuner, make = logreg_tuner(1e-4, len(splits), sampler="tpe")
        tuned, _ = cross_validate(make, blocks, y, splits, 3, tuner=tuner)
        runs.append((tuned, [f["params"] for f in tuner.folds]))
    test_y = np.concatenate([y[s.test] for s in splits])

    def f1(probabilities):
        from sklearn.metrics import f1_score

        return f1_score(test_y, np.concatenate(probabilities).argmax(axis=1), average="macro")

    assert f1(runs[0][0]) > f1(untuned) + 0.2  # C=1e-4 predicts (almost) one class
    assert runs[0][1] == runs[1][1]  # the same values chosen in every fold
    np.testing.assert_array_equal(np.concatenate(runs[0][0]), np.concatenate(runs[1][0]))


def test_the_configured_values_are_the_first_trial_and_kept_when_no_trial_scores(monkeypatch):
    blocks, y, _ = problem()
    splits = make_splits(y, None, n_folds=2, val_fraction=0.2, seed=0)
    tuner, make = logreg_tuner(0.37, len(splits), n_trials=1)
    cross_validate(make, blocks, y, splits, 3, tuner=tuner)
    assert [f["params"] for f in tuner.folds] == [{"C": 0.37}, {"C": 0.37}]
    tuner, make = logreg_tuner(0.37, len(splits), n_trials=3)
    monkeypatch.setattr(NestedTuner, "score", lambda *args: float("nan"))  # e.g. an AUC on folds lacking a class
    cross_validate(make, blocks, y, splits, 3, tuner=tuner)
    assert all(f["params"] == {"C": 0.37} and np.isnan(f["inner_score"]) for f in tuner.folds)


def test_grid_sampler_tries_each_grid_point_once():
    assert grid_values(SearchRange(low=1e-3, high=10.0, log=True), 5, False) == pytest.approx([1e-3, 1e-2, 0.1, 1, 10])
    assert grid_values(SearchRange(low=4, high=6), 5, True) == [4, 5, 6]  # integers, no repeats
    assert grid_values(SearchRange(choices=[8, 16]), 3, True) == [8, 16]
    blocks, y, _ = problem()
    splits = make_splits(y, None, n_folds=2, val_fraction=0.2, seed=0)
    tuner, make = logreg_tuner(0.1, len(splits), sampler="grid", grid_points=4, n_trials=50)
    cross_validate(make, blocks, y, splits, 3, tuner=tuner)
    assert [f["n_trials"] for f in tuner.folds] == [4, 4]


def test_pca_dim_is_tuned_only_where_a_pca_is_fitted():
    space = TuneParams().space.lgbm
    assert "pca_dim" in tunable_space(space, "lgbm", "tensor")
    assert "pca_dim" not in tunable_space(space, "lgbm", "concat")
    changed = with_values(TrainParams(), "lgbm", {"pca_dim": 8, "num_leaves": 7})
    assert (changed.pca_dim, changed.lgbm.num_leaves, changed.lgbm.learning_rate) == (8, 7, 0.05)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"logreg": {"c": {"low": 1, "high": 2}}}, "tune.space.logreg.c: train.logreg has no key 'c'; tunable: C,"),
        ({"mlp": {"pca_dim": {"choices": [8]}}}, "train.mlp has no key 'pca_dim'"),
        ({"lgbm": {"num_leaves": {"low": 9, "high": 9}}}, "num_leaves needs low < high, got 9.0 and 9.0"),
        ({"cnn": {"lr": {"low": 0.0, "high": 0.1, "log": True}}}, "tune.space.cnn.lr: log needs a range with low > 0"),
        ({"cnn": {"lr": {"low": 0.1, "choices": [0.1]}}}, "tune.space.cnn.lr needs either low and high, or choices"),
    ],
)
def test_search_spaces_are_checked(tmp_path, space, message):
    with pytest.raises(ParamsError, match=message):
        load_params(write_params(tmp_path, {"tune": {"space": space}}))
    with pytest.raises(ParamsError, match="tune.sampler must be 'tpe', 'random' or 'grid', got 'bayes'"):
        load_params(write_params(tmp_path, {"tune": {"sampler": "bayes"}}))


def test_tuned_train_stage_records_each_folds_choice_and_the_report_tables_them(project):
    write_params(project, {"tune": {"enabled": True, "n_trials": 3, "inner_folds": 2}})
    params = load_params("params.yaml")
    train.run(params, "logreg", "tensor")
    tuning = json.loads((project / "models/logreg-tensor/metrics.json").read_text())["tuning"]
    assert (tuning["sampler"], tuning["configured"]) == ("tpe", {"C": 0.1, "pca_dim": 32})
    assert (tuning["inner_folds"], tuning["inner_folds_torch"]) == (2, 1)
    assert len(tuning["folds"]) == 4 and all(f["n_trials"] == 3 for f in tuning["folds"])
    assert all(1e-3 <= f["params"]["C"] <= 1e2 and f["params"]["pca_dim"] in (8, 16, 32) for f in tuning["folds"])
    assert all(0 <= f["inner_score"] <= 1 for f in tuning["folds"])
    tables = tuning_tables(load_runs("models"))
    assert list(tables) == ["logreg-tensor"]
    assert list(tables["logreg-tensor"].columns) == ["fold 0", "fold 1", "fold 2", "fold 3", "configured"]
    markdown = tuning_markdown(tables)
    assert "### logreg-tensor" in markdown and "| pca_dim |" in markdown and "| inner f1_macro |" in markdown
