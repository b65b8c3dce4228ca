"""Splits, metrics and cross-validation: no learner computes its own metrics.

Folds are stratified by label and, when the manifest has a ``group`` (artist,
speaker), grouped so that no group sits in both a training and a test fold.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

if TYPE_CHECKING:
    from pipeline.models.base import Learner

SPLIT_KEYS = ("repeat", "fold", "n_train", "n_val", "n_test")  # per-fold bookkeeping, not metrics
METRICS = ("f1_macro", "auc_roc_macro", "accuracy", "balanced_accuracy", "precision_macro", "recall_macro")


@dataclass(frozen=True)
class Split:
    """Row indices of one evaluation fold: fit on ``train``, select on ``val``, score ``test``."""

    repeat: int
    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def make_folds(
    y: np.ndarray, groups: np.ndarray | None, n_folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_index, test_index) pairs: stratified K-fold, grouped when ``groups`` is given."""
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < n_folds:
            raise ValueError(f"only {n_groups} groups for {n_folds} folds; lower eval.n_folds or drop the group column")
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y, groups))
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def carve_validation(
    y: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) positions within one training fold: stratified, and grouped when ``groups`` is given.

    Grouped: one fold of a ``round(1 / fraction)``-fold StratifiedGroupKFold, so no
    artist or speaker sits on both sides of the early-stopping split either.
    """
    positions = np.arange(len(y))
    if groups is not None:
        n_splits = min(max(2, round(1 / fraction)), len(np.unique(groups)))
        if n_splits < 2:
            raise ValueError("a training fold holds a single group; it cannot be split for validation")
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # "least populated class < n_splits": fine for one validation fold
            warnings.filterwarnings("ignore", "The least populated class", UserWarning)
            fit, val = next(splitter.split(positions, y, groups))
        return fit, val
    stratify = y if np.bincount(np.unique(y, return_inverse=True)[1]).min() >= 2 else None
    n_val = int(np.ceil(fraction * len(y)))
    if stratify is not None and n_val < len(np.unique(y)):
        stratify = None  # too few validation clips to hold every class: a plain random split
    if n_val < 1 or n_val >= len(y):
        raise ValueError(
            f"cannot carve a validation split of {fraction:.0%} from {len(y)} training clips; "
            "change eval.val_fraction or use more clips"
        )
    fit, val = train_test_split(positions, test_size=n_val, stratify=stratify, random_state=seed)
    return np.sort(fit), np.sort(val)


def split_off_validation(
    blocks: dict[str, np.ndarray], y: np.ndarray, fraction: float, seed: int, strata: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, tuple[dict[str, np.ndarray], np.ndarray]]:
    """(training blocks, training labels, (validation blocks, labels)) carved stratified from ``blocks``.

    For a learner called without the protocol's validation rows. ``strata``: what to
    stratify on when it is not ``y`` (regression targets).
    """
    fit, val = carve_validation(y if strata is None else strata, None, fraction, seed)
    return {m: x[fit] for m, x in blocks.items()}, y[fit], ({m: x[val] for m, x in blocks.items()}, y[val])


FIXED_SPLITS = ("train", "validate", "test")


def sorted_labels(values) -> list:
    """Fold labels in natural order: numerically when they are all numbers ("2" before "10")."""
    values = [str(v) for v in values]
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def make_splits(
    y: np.ndarray,
    groups: np.ndarray | None,
    *,
    scheme: str = "cv",
    n_folds: int = 5,
    n_repeats: int = 1,
    val_fraction: float = 0.15,
    seed: int = 0,
    split: np.ndarray | None = None,
    fold: np.ndarray | None = None,
) -> list[Split]:
    """Every (repeat, fold) of the protocol, each with its own inner validation rows.

    ``cv``: ``n_repeats`` x stratified (grouped) ``n_folds``-fold, repeat r shuffled
    with seed ``seed + r``; validation carved from each training fold.
    ``fixed``: one split from ``split`` (values train/validate/test); without
    ``validate`` rows, validation is carved from ``train``. ``predefined``: each
    distinct value of ``fold`` is the test fold once (validation carved as in cv).
    """
    if scheme == "predefined":
        if fold is None:
            raise ValueError("eval.scheme 'predefined' needs a 'fold' column in the manifest")
        fold = np.asarray([str(f) for f in fold], dtype=object)
        splits = []
        for k, value in enumerate(sorted_labels(set(fold))):
            train, test = np.flatnonzero(fold != value), np.flatnonzero(fold == value)
            inner_groups = None if groups is None else groups[train]
            fit, inner = carve_validation(y[train], inner_groups, val_fraction, seed + k)
            splits.append(Split(0, k, train[fit], train[inner], test))
        return splits
    if scheme == "fixed":
        if split is None:
            raise ValueError("eval.scheme 'fixed' needs a 'split' column in the manifest (train/validate/test)")
        split = np.asarray(split, dtype=object)
        unknown = sorted({str(s) for s in split} - set(FIXED_SPLITS))
        if unknown:
            raise ValueError(f"manifest split column: unknown value(s) {unknown}; use {FIXED_SPLITS}")
        train, val, test = (np.flatnonzero(split == name) for name in FIXED_SPLITS)
        if not len(train) or not len(test):
            raise ValueError("eval.scheme 'fixed' needs clips with split 'train' and clips with split 'test'")
        if not len(val):
            fit, inner = carve_validation(y[train], None if groups is None else groups[train], val_fraction, seed)
            train, val = train[fit], train[inner]
        return [Split(0, 0, train, val, test)]
    if scheme != "cv":
        raise ValueError(f"unknown eval.scheme {scheme!r}; choose 'cv', 'fixed' or 'predefined'")
    splits = []
    for repeat in range(n_repeats):
        for fold, (train, test) in enumerate(make_folds(y, groups, n_folds, seed + repeat)):
            inner_groups = None if groups is None else groups[train]
            fit, inner = carve_validation(y[train], inner_groups, val_fraction, seed + 1000 * repeat + fold)
            splits.append(Split(repeat, fold, train[fit], train[inner], test))
    return splits


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Macro metrics of class-index labels ``y_true`` against an (n, n_classes) probability matrix.

    AUC-ROC is one-vs-rest per class, macro-averaged over the classes present in
    ``y_true`` (a grouped fold may lack a class).
    """
    n_classes = proba.shape[1]
    y_pred = proba.argmax(axis=1)
    labels = np.arange(n_classes)
    per_class_auc = [roc_auc_score(y_true == c, proba[:, c]) for c in labels if 0 < np.sum(y_true == c) < len(y_true)]
    auc = float(np.mean(per_class_auc)) if per_class_auc else float("nan")
    # Macro averages run over the classes present in y_true or y_pred (a grouped fold may lack
    # a class; predicting an absent class still costs precision).
    return {
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "auc_roc_macro": auc,
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "precision_macro": float(precision_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall_macro": float(recall_score(y_true, y_pred, average="macro", zero_division=0)),
    }


# ---- regression (task: regression) ----------------------------------------------------------------------------

REGRESSION_METRICS = ("ccc", "pearson", "rmse", "mae", "r2")  # per target, and ``<metric>_mean`` over targets


def ccc(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Lin's concordance correlation coefficient per column (``axis=-2`` is the clips axis).

    ``2 cov / (var_true + var_pred + (mean_true - mean_pred)^2)`` with population moments;
    0 where both sides are constant and equal nowhere (e.g. a constant prediction).
    Works on (n,), (n, k) and (B, n, k) arrays (bootstrap resamples at once).
    """
    mean_t, mean_p = y_true.mean(axis=-2, keepdims=True), y_pred.mean(axis=-2, keepdims=True)
    cov = ((y_true - mean_t) * (y_pred - mean_p)).mean(axis=-2)
    denominator = y_true.var(axis=-2) + y_pred.var(axis=-2) + (mean_t - mean_p).squeeze(-2) ** 2
    return np.divide(2 * cov, denominator, out=np.zeros_like(cov), where=denominator > 0)


def pearson(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson r per column; 0 where either side is constant (a constant prediction has no correlation)."""
    dt, dp = y_true - y_true.mean(axis=0), y_pred - y_pred.mean(axis=0)
    denominator = np.sqrt((dt**2).sum(axis=0) * (dp**2).sum(axis=0))
    return np.divide((dt * dp).sum(axis=0), denominator, out=np.zeros(dt.shape[1:]), where=denominator > 0)


def quadrant_codes(y: np.ndarray) -> np.ndarray:
    """Each row's orthant of the target space: bit k set where target k >= 0 (the Russell quadrant for a/v)."""
    return ((np.asarray(y) >= 0) * (1 << np.arange(y.shape[1]))).sum(axis=1)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, targets: list[str]) -> dict[str, float]:
    """``ccc_mean`` first, then the other means, ``quadrant_accuracy`` and each metric per target (``ccc_arousal``).

    ``quadrant_accuracy``: share of clips whose predicted targets have the signs of the
    true ones (for arousal/valence centred at 0: the Russell quadrant), so regression
    sits on the scale of the 4-class task.
    """
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    error = y_pred - y_true
    residual = (error**2).sum(axis=0)
    total = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    per_target = {
        "ccc": ccc(y_true, y_pred),
        "pearson": pearson(y_true, y_pred),
        "rmse": np.sqrt((error**2).mean(axis=0)),
        "mae": np.abs(error).mean(axis=0),
        "r2": np.divide(total - residual, total, out=np.zeros_like(total), where=total > 0),
    }
    scores = {f"{m}_mean": float(per_target[m].mean()) for m in REGRESSION_METRICS}
    scores["quadrant_accuracy"] = float(np.mean(quadrant_codes(y_true) == quadrant_codes(y_pred)))
    for m in REGRESSION_METRICS:
        scores.update({f"{m}_{t}": float(v) for t, v in zip(targets, per_target[m])})
    return scores


def summarize(per_fold: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """``{metric: {mean, std}}`` over folds x repeats (sample std, ddof=1)."""
    summary = {}
    for metric in [m for m in per_fold[0] if m not in SPLIT_KEYS]:
        values = np.array([fold[metric] for fold in per_fold], dtype=float)
        summary[metric] = {
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        }
    return summary


def per_class_report(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict:
    """``per_class`` precision/recall/F1/support and the ``confusion`` matrix (rows: true, columns: predicted)."""
    labels = np.arange(len(classes))
    y_pred = proba.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
        for c, p, r, f, n in zip(classes, precision, recall, f1, support)
    }
    return {"per_class": per_class, "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist()}


def without_text(blocks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The blocks with every clip's text removed, as a clip without text arrives."""
    if "text" not in blocks:
        return blocks
    text = blocks["text"]
    empty = np.full(len(text), "", dtype=object) if text.dtype == object else np.zeros_like(text)
    removed = {**blocks, "text": empty}
    if "text_present" in blocks:
        removed["text_present"] = np.zeros(len(text), dtype=bool)
    return removed


Tuner = Callable[[dict[str, np.ndarray], np.ndarray, Split], dict]


@dataclass(frozen=True)
class Classification:
    """How cross_validate predicts and scores class labels: (n, n_classes) probabilities, macro metrics."""

    n_classes: int

    def predict(self, learner: Learner, blocks: dict[str, np.ndarray]) -> np.ndarray:
        return predict_all_classes(learner, blocks, self.n_classes)

    def scores(self, y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        return classification_metrics(y, predicted)

    def text_removed(self, y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        f1 = f1_score(y, predicted.argmax(axis=1), average="macro", zero_division=0)
        return {"f1_macro_text_removed": float(f1)}


@dataclass(frozen=True)
class Regression:
    """How cross_validate predicts and scores continuous targets: (n, n_targets) values, CCC and friends.

    ``center``: subtracted before the quadrant signs are taken (``dataset.target_center``).
    """

    targets: tuple[str, ...]
    center: float = 0.0

    def predict(self, learner: Learner, blocks: dict[str, np.ndarray]) -> np.ndarray:
        return learner.predict(blocks)

    def scores(self, y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        return regression_metrics(y - self.center, predicted - self.center, list(self.targets))

    def text_removed(self, y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        return {"ccc_mean_text_removed": float(ccc(y, predicted).mean())}


def cross_validate(
    make_learner: Callable[..., Learner],
    blocks: dict[str, np.ndarray],
    y: np.ndarray,
    splits: list[Split],
    task: int | Classification | Regression,
    fitted: list | None = None,
    tuner: Tuner | None = None,
    prepare: Callable[[dict[str, np.ndarray], Split], dict[str, np.ndarray]] | None = None,
) -> tuple[list[np.ndarray], list[dict[str, float]]]:
    """Fit a fresh learner per split on its ``train`` rows, with its ``val`` rows for selection.

    ``task``: :class:`Classification` (or its number of classes) or :class:`Regression`.
    Returns the test-row predictions of each split ((len(test), n_classes) probabilities,
    or (len(test), n_targets) values) and each split's metrics (plus ``repeat``, ``fold``
    and, when the learner reads text, the score with the text of the test clips removed:
    ``f1_macro_text_removed`` or ``ccc_mean_text_removed``).
    Each split's fitted learner is appended to ``fitted`` if given. With a ``tuner``
    (:class:`pipeline.tuning.NestedTuner`), each split's learner is
    ``make_learner(**tuner(blocks, y, split))``, the tuner given that split's training
    rows followed by its validation rows, and never its test rows. ``prepare(blocks,
    split)`` gives the blocks a split is cut from (per-group normalisation).
    """
    task = Classification(task) if isinstance(task, int) else task
    predictions, per_fold = [], []
    all_blocks = blocks
    for split in splits:
        blocks = all_blocks if prepare is None else prepare(all_blocks, split)
        chosen = {}
        if tuner is not None:
            seen = np.concatenate([split.train, split.val])
            chosen = tuner({m: x[seen] for m, x in blocks.items()}, y[seen], split)
        learner = make_learner(**chosen)
        part = {name: {m: x[getattr(split, name)] for m, x in blocks.items()} for name in ("train", "val", "test")}
        learner.fit(part["train"], y[split.train], validation=(part["val"], y[split.val]))
        y_test = y[split.test]
        predicted = task.predict(learner, part["test"])
        predictions.append(predicted)
        sizes = {"n_train": len(split.train), "n_val": len(split.val), "n_test": len(split.test)}
        scores = {"repeat": split.repeat, "fold": split.fold, **sizes, **task.scores(y_test, predicted)}
        if "text" in blocks:
            scores |= task.text_removed(y_test, task.predict(learner, without_text(part["test"])))
        per_fold.append(scores)
        if fitted is not None:
            fitted.append(learner)
    return predictions, per_fold


def predict_all_classes(learner: Learner, blocks: dict[str, np.ndarray], n_classes: int) -> np.ndarray:
    """(n, n_classes) probabilities; zero for classes the learner never saw in training."""
    proba = np.zeros((len(next(iter(blocks.values()))) if blocks else 0, n_classes))
    proba[:, learner.classes_] = learner.predict_proba(blocks)
    return proba


def macro_f1_from_labels(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Macro-F1 of many resamples at once: sequences of label arrays -> (n_resamples,).

    Resamples may differ in length (group bootstrap). Classes absent from both truth and
    prediction of a resample are left out of its mean, as scikit-learn does.
    """
    if isinstance(y_true, np.ndarray) and y_true.ndim == 1:
        y_true, y_pred = [y_true], [y_pred]
    scores = np.empty(len(y_true))
    for r, (t, p) in enumerate(zip(y_true, y_pred)):
        counts = np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
        tp = np.diag(counts).astype(float)
        denominator = counts.sum(axis=1) + counts.sum(axis=0)
        present = denominator > 0
        scores[r] = np.mean(2 * tp[present] / denominator[present])
    return scores


def bootstrap_indices(n: int, groups: np.ndarray | None, n_boot: int, seed: int) -> list[np.ndarray]:
    """Row indices of ``n_boot`` bootstrap resamples: of rows, or of whole groups when ``groups`` is given.

    Clips of one singer or artist are correlated; resampling groups keeps that, so the
    intervals are not too narrow when folds were grouped.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        return list(rng.integers(0, n, size=(n_boot, n)))
    labels, codes = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(codes == g) for g in range(len(labels))]
    picks = rng.integers(0, len(labels), size=(n_boot, len(labels)))
    return [np.concatenate([members[g] for g in pick]) for pick in picks]


def _resampled_labels(
    y_true: np.ndarray, labels: np.ndarray, index: list[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Truth and predictions of each resample; ``labels`` is (n,) or (n_repeats, n): repeats pool per clip."""
    labels = labels.reshape(-1, len(y_true))
    truth = [np.tile(y_true[i], len(labels)) for i in index]
    return truth, [labels[:, i].ravel() for i in index]


def pooled_f1(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Macro-F1 of all out-of-fold predictions together; ``proba`` is (n, C) or (n_repeats, n, C)."""
    truth, pred = _resampled_labels(y_true, proba.argmax(axis=-1), [np.arange(len(y_true))])
    return float(macro_f1_from_labels(truth, pred, proba.shape[-1])[0])


def bootstrap_f1_ci(
    y_true: np.ndarray, proba: np.ndarray, n_boot: int = 1000, seed: int = 0, groups: np.ndarray | None = None
) -> list[float]:
    """95% percentile-bootstrap interval of the pooled out-of-fold macro-F1.

    ``proba`` is (n, C), or (n_repeats, n, C) for repeated CV: a resample draws clips
    (or whole groups) and takes every repeat's prediction of each drawn clip.
    """
    index = bootstrap_indices(len(y_true), groups, n_boot, seed)
    truth, pred = _resampled_labels(y_true, proba.argmax(axis=-1), index)
    low, high = np.percentile(macro_f1_from_labels(truth, pred, proba.shape[-1]), [2.5, 97.5])
    return [float(low), float(high)]


def paired_bootstrap_pvalue(
    y_true: np.ndarray,
    proba_a: np.ndarray,
    proba_b: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> float:
    """Two-sided p-value that variants a and b have equal macro-F1, resampling the same clips for both.

    Rows of a and b must be the same clips in the same order (shapes as in
    :func:`bootstrap_f1_ci`). Identical predictions give 1.0; with B resamples the
    smallest possible value is 2/(B+1).
    """
    index = bootstrap_indices(len(y_true), groups, n_boot, seed)
    n_classes = proba_a.shape[-1]
    truth, pred_a = _resampled_labels(y_true, proba_a.argmax(axis=-1), index)
    _, pred_b = _resampled_labels(y_true, proba_b.argmax(axis=-1), index)
    diff = macro_f1_from_labels(truth, pred_a, n_classes) - macro_f1_from_labels(truth, pred_b, n_classes)
    return two_sided_pvalue(diff, n_boot)


def two_sided_pvalue(diff: np.ndarray, n_boot: int) -> float:
    """The paired-bootstrap p-value of resampled differences ``diff``: 1.0 when all are zero, else
    ``2 (smaller tail + 1) / (B + 1)``, at most 1."""
    if np.all(diff == 0):
        return 1.0
    tail = min(np.sum(diff <= 0), np.sum(diff >= 0))
    return float(min(1.0, 2 * (tail + 1) / (n_boot + 1)))


def _resampled_values(
    y_true: np.ndarray, values: np.ndarray, index: list[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Truth and predictions of each resample; ``values`` is (n, k) or (n_repeats, n, k): repeats pool per clip."""
    values = values.reshape(-1, *y_true.shape)
    truth = [np.tile(y_true[i], (len(values), 1)) for i in index]
    return truth, [values[:, i].reshape(-1, y_true.shape[1]) for i in index]


def _mean_ccc(truth: list[np.ndarray], predicted: list[np.ndarray]) -> np.ndarray:
    return np.array([ccc(t, p).mean() for t, p in zip(truth, predicted)])


def pooled_ccc(y_true: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over targets of the CCC of all out-of-fold predictions together; ``predicted`` (n, k) or (R, n, k)."""
    truth, pred = _resampled_values(y_true, predicted, [np.arange(len(y_true))])
    return float(_mean_ccc(truth, pred)[0])


def bootstrap_ccc_ci(
    y_true: np.ndarray, predicted: np.ndarray, n_boot: int = 1000, seed: int = 0, groups: np.ndarray | None = None
) -> list[float]:
    """95% percentile-bootstrap interval of :func:`pooled_ccc` (clips, or whole groups, resampled)."""
    truth, pred = _resampled_values(y_true, predicted, bootstrap_indices(len(y_true), groups, n_boot, seed))
    low, high = np.percentile(_mean_ccc(truth, pred), [2.5, 97.5])
    return [float(low), float(high)]


def paired_bootstrap_ccc_pvalue(
    y_true: np.ndarray,
    predicted_a: np.ndarray,
    predicted_b: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> float:
    """Two-sided p-value that variants a and b have equal pooled mean CCC (same resamples for both)."""
    index = bootstrap_indices(len(y_true), groups, n_boot, seed)
    truth, pred_a = _resampled_values(y_true, predicted_a, index)
    _, pred_b = _resampled_values(y_true, predicted_b, index)
    return two_sided_pvalue(_mean_ccc(truth, pred_a) - _mean_ccc(truth, pred_b), n_boot)
