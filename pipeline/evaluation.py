"""Splits, metrics and cross-validation: no learner computes its own metrics.

Folds are stratified by label and, when the manifest has a ``group`` (artist,
speaker), grouped so that no group sits in both a training and a test fold.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

METRICS = ("f1_macro", "auc_roc_macro", "accuracy", "balanced_accuracy", "precision_macro", "recall_macro")


def make_folds(
    y: np.ndarray, groups: np.ndarray | None, n_folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_index, test_index) pairs: stratified K-fold, grouped when ``groups`` is given."""
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < n_folds:
            raise ValueError(
                f"only {n_groups} groups for {n_folds} folds; lower train.n_folds or drop the group column"
            )
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y, groups))
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


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


def summarize(per_fold: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """``{metric: {mean, std}}`` over folds (sample std, ddof=1)."""
    summary = {}
    for metric in per_fold[0]:
        values = np.array([fold[metric] for fold in per_fold], dtype=float)
        summary[metric] = {
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        }
    return summary


def cross_validate(
    make_learner: Callable[[], object],
    blocks: dict[str, np.ndarray],
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    n_classes: int,
    fitted: list | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, float]]]:
    """Fit a fresh learner per fold on its training rows only.

    Returns out-of-fold probabilities (n, n_classes), the fold of each row, and the
    metrics of each fold. Each fold's fitted learner is appended to ``fitted`` if given.
    """
    oof = np.full((len(y), n_classes), np.nan)
    fold_of = np.full(len(y), -1, dtype=np.int32)
    per_fold = []
    for k, (train_idx, test_idx) in enumerate(folds):
        learner = make_learner()
        learner.fit({m: x[train_idx] for m, x in blocks.items()}, y[train_idx])
        proba = np.zeros((len(test_idx), n_classes))
        proba[:, learner.classes_] = learner.predict_proba({m: x[test_idx] for m, x in blocks.items()})
        oof[test_idx] = proba
        fold_of[test_idx] = k
        per_fold.append(classification_metrics(y[test_idx], proba))
        if fitted is not None:
            fitted.append(learner)
    return oof, fold_of, per_fold


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


def bootstrap_f1_ci(
    y_true: np.ndarray, proba: np.ndarray, n_boot: int = 1000, seed: int = 0, groups: np.ndarray | None = None
) -> list[float]:
    """95% percentile-bootstrap interval of macro-F1 over the pooled out-of-fold predictions."""
    index = bootstrap_indices(len(y_true), groups, n_boot, seed)
    y_pred = proba.argmax(axis=1)
    scores = macro_f1_from_labels([y_true[i] for i in index], [y_pred[i] for i in index], proba.shape[1])
    low, high = np.percentile(scores, [2.5, 97.5])
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

    Rows of a and b must be the same clips in the same order. Identical predictions give
    1.0; with B resamples the smallest possible value is 2/(B+1).
    """
    index = bootstrap_indices(len(y_true), groups, n_boot, seed)
    n_classes = proba_a.shape[1]
    pred_a, pred_b = proba_a.argmax(axis=1), proba_b.argmax(axis=1)
    truth = [y_true[i] for i in index]
    diff = macro_f1_from_labels(truth, [pred_a[i] for i in index], n_classes) - macro_f1_from_labels(
        truth, [pred_b[i] for i in index], n_classes
    )
    if np.all(diff == 0):
        return 1.0
    tail = min(np.sum(diff <= 0), np.sum(diff >= 0))
    return float(min(1.0, 2 * (tail + 1) / (n_boot + 1)))
