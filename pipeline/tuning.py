"""Nested hyper-parameter search: an optuna study per outer training fold, scored on inner splits.

:func:`pipeline.evaluation.cross_validate` hands a :class:`NestedTuner` the training and
validation rows of one outer split, never its test rows; the tuner scores each trial on
inner splits of those rows (grouped and stratified like the outer folds) and returns the
best trial's values, with which the outer learner is then built and fitted. The search
is sequential and seeded, so the same seed and params choose the same values.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.evaluation import Split, carve_validation, classification_metrics, make_splits, predict_all_classes
from pipeline.fusion import PROJECTED

if TYPE_CHECKING:
    from pipeline.models.base import Learner
    from pipeline.params import SearchRange, TrainParams, TuneParams


def tunable_space(space: dict[str, SearchRange], model: str, fusion: str) -> dict[str, SearchRange]:
    """The ranges that change variant ``model``-``fusion``: ``pca_dim`` only where a PCA is fitted."""
    return {k: r for k, r in space.items() if k != "pca_dim" or (model in ("logreg", "lgbm") and fusion in PROJECTED)}


def configured_values(train: TrainParams, model: str, keys: list[str]) -> dict[str, Any]:
    """The ``train`` values of ``keys`` for learner ``model`` (``pca_dim`` from ``train`` itself)."""
    section = getattr(train, model)
    return {k: train.pca_dim if k == "pca_dim" else getattr(section, k) for k in keys}


def with_values(train: TrainParams, model: str, values: dict[str, Any]) -> TrainParams:
    """``train`` with tuned ``values`` in place: ``pca_dim`` at the top, the rest in ``train.<model>``."""
    values = dict(values)
    top = {"pca_dim": values.pop("pca_dim")} if "pca_dim" in values else {}
    section = dataclasses.replace(getattr(train, model), **values) if values else getattr(train, model)
    return dataclasses.replace(train, **top, **{model: section})


def grid_values(r: SearchRange, points: int, integer: bool) -> list:
    """The grid sampler's values of one range: its choices, or ``points`` values from low to high."""
    if r.choices is not None:
        values = list(r.choices)
    else:
        values = (np.geomspace if r.log else np.linspace)(r.low, r.high, points).tolist()
    values = [round(v) if integer else float(v) for v in values]
    return list(dict.fromkeys(values))


def suggest(trial, key: str, r: SearchRange, integer: bool):
    """A trial's value of one hyper-parameter."""
    if r.choices is not None:
        values = [round(v) if integer else float(v) for v in r.choices]
        return trial.suggest_categorical(key, list(dict.fromkeys(values)))
    if integer:
        return trial.suggest_int(key, int(np.ceil(r.low)), int(np.floor(r.high)), log=r.log)
    return trial.suggest_float(key, float(r.low), float(r.high), log=r.log)


def inside(value, r: SearchRange) -> bool:
    """Whether ``value`` can be drawn from ``r`` (so that it can be the first trial)."""
    return value in r.choices if r.choices is not None else r.low <= value <= r.high


def inner_splits(
    y: np.ndarray, groups: np.ndarray | None, n_train: int, inner_folds: int, val_fraction: float, seed: int
) -> list[Split]:
    """Inner splits of one outer fold's rows (its training rows, then its ``len(y) - n_train`` validation rows).

    ``inner_folds`` >= 2: grouped, stratified K-fold over all of them, each training part
    with its own early-stopping rows. 1: the validation rows are the inner test rows, and
    early-stopping rows are carved from the training rows.
    """
    if inner_folds >= 2:
        return make_splits(y, groups, n_folds=inner_folds, val_fraction=val_fraction, seed=seed)
    train = np.arange(n_train)
    fit, val = carve_validation(y[:n_train], None if groups is None else groups[:n_train], val_fraction, seed)
    return [Split(0, 0, train[fit], train[val], np.arange(n_train, len(y)))]


def make_sampler(settings: TuneParams, space: dict[str, SearchRange], integers: set[str], seed: int):
    """The seeded optuna sampler ``tune.sampler`` names."""
    import optuna

    if settings.sampler == "grid":
        grid = {k: grid_values(r, settings.grid_points, k in integers) for k, r in space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(1, settings.n_trials // 2)))


class NestedTuner:
    """Called by :func:`~pipeline.evaluation.cross_validate` per outer split: values for the learner.

    Parameters
    ----------
    make : builds an unfitted learner from a dict of hyper-parameter values.
    space : the ranges to search (:func:`tunable_space`), keyed like ``tune.space.<learner>``.
    configured : the ``train`` values of the same keys (the first trial when they lie inside).
    settings : the ``tune`` section.
    groups : every clip's group (indexed by the outer split's rows), or None.
    n_classes, val_fraction, seed : the protocol's.
    inner_folds : inner folds per trial (1: the outer split's validation rows; see :func:`inner_splits`).
    name : printed with each fold's result.
    """

    def __init__(
        self,
        make: Callable[..., Learner],
        space: dict[str, SearchRange],
        configured: dict[str, Any],
        settings: TuneParams,
        *,
        groups: np.ndarray | None,
        n_classes: int,
        val_fraction: float,
        seed: int,
        n_splits: int,
        inner_folds: int = 3,
        name: str = "",
    ):
        self.make, self.space, self.configured, self.settings = make, space, configured, settings
        self.groups, self.n_classes, self.val_fraction, self.seed = groups, n_classes, val_fraction, seed
        self.n_splits, self.inner_folds, self.name = n_splits, inner_folds, name
        self.integers = {k for k, v in configured.items() if isinstance(v, int) and not isinstance(v, bool)}
        self.folds: list[dict] = []  # per outer split: repeat, fold, chosen values, inner score, trials, seconds

    def __call__(self, blocks: dict[str, np.ndarray], y: np.ndarray, split: Split) -> dict[str, Any]:
        """The chosen values for ``split``, searched on ``blocks``/``y``: its training then its validation rows."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        started = time.perf_counter()
        seen = np.concatenate([split.train, split.val])
        groups = None if self.groups is None else self.groups[seen]
        seed = self.seed + 1000 * split.repeat + split.fold
        splits = inner_splits(y, groups, len(split.train), self.inner_folds, self.val_fraction, seed)
        sampler = make_sampler(self.settings, self.space, self.integers, seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        first = {k: v for k, v in self.configured.items() if inside(v, self.space[k])}
        if len(first) == len(self.space) and self.settings.sampler != "grid":  # the configured values, when drawable
            study.enqueue_trial(first)
        timeout = None if self.settings.timeout_s is None else self.settings.timeout_s / self.n_splits

        def objective(trial) -> float:
            values = {k: suggest(trial, k, r, k in self.integers) for k, r in self.space.items()}
            return self.score(values, blocks, y, splits)

        study.optimize(objective, n_trials=self.settings.n_trials, timeout=timeout)
        scored = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if scored:
            chosen, score = study.best_trial.params, float(study.best_value)
        else:  # every trial scored NaN (e.g. AUC on inner folds that lack a class): keep the configured values
            chosen, score = dict(self.configured), float("nan")
        seconds = time.perf_counter() - started
        self.folds.append(
            {
                "repeat": split.repeat,
                "fold": split.fold,
                "params": chosen,
                "inner_score": score,
                "n_trials": len(study.trials),
                "seconds": round(seconds, 1),
            }
        )
        values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in chosen.items())
        print(
            f"tune {self.name} fold {len(self.folds)}/{self.n_splits}: {len(study.trials)} trials in {seconds:.0f} s, "
            f"inner {self.settings.metric} {score:.3f}: {values}",
            flush=True,
        )
        return chosen

    def score(self, values: dict[str, Any], blocks: dict[str, np.ndarray], y: np.ndarray, splits: list[Split]) -> float:
        """Mean ``tune.metric`` of learners built with ``values`` over the inner splits."""
        scores = []
        for s in splits:
            part = {name: {m: x[getattr(s, name)] for m, x in blocks.items()} for name in ("train", "val", "test")}
            learner = self.make(**values).fit(part["train"], y[s.train], validation=(part["val"], y[s.val]))
            proba = predict_all_classes(learner, part["test"], self.n_classes)
            scores.append(classification_metrics(y[s.test], proba)[self.settings.metric])
        return float(np.nanmean(scores))
