"""Classical learners (LightGBM, logistic regression, the prior "dummy") behind the fusion interface.

Per modality: add a missing-modality indicator column when the blocks carry one
(``text_present``: clips without text have a zero embedding and indicator 1);
standardise; for the fusions of projected blocks (``product``, ``mean``, ``tensor``)
project each modality to ``pca_dim`` dimensions with PCA. Scalers and projections
are fitted in :meth:`fit`, i.e. on the training fold only. The fused matrix then
goes to a scikit-learn-style estimator. These learners select nothing, so they fit
on the training rows plus the protocol's validation rows, except LightGBM with
``early_stopping_rounds``: it fits on the training rows and keeps the number of trees
with the lowest multi-class log-loss on the validation rows, as the torch heads keep
their best epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from pipeline.fusion import PROJECTED, fuse, modalities_for
from pipeline.models.artifacts import (
    dump_fitted,
    dump_skops,
    is_fitted_type,
    load_fitted,
    load_skops,
    read_config,
    write_config,
)
from pipeline.store import atomic_path

Validation = tuple[dict[str, np.ndarray], np.ndarray] | None


def with_validation(blocks: dict[str, np.ndarray], y: np.ndarray, validation: Validation):
    """Training rows followed by the validation rows (for learners that select nothing)."""
    if validation is None:
        return blocks, y
    val_blocks, y_val = validation
    return {m: np.concatenate([x, val_blocks[m]]) for m, x in blocks.items()}, np.concatenate([y, y_val])


def with_indicator(blocks: dict[str, np.ndarray], modality: str) -> np.ndarray:
    """The modality's block, plus a 0/1 "missing" column when ``<modality>_present`` is given."""
    present = blocks.get(f"{modality}_present")
    if present is None:
        return blocks[modality]
    return np.column_stack([blocks[modality], 1.0 - np.asarray(present, dtype=np.float32)])


class ClassicalFusionClassifier:
    """Fuse standardised (and, for product/mean/tensor, PCA-projected) blocks, then classify.

    Parameters
    ----------
    estimator : unfitted scikit-learn-style classifier (cloned in ``fit``).
    fusion : one of :data:`pipeline.fusion.FUSIONS` but ``late``.
    pca_dim : width ``h`` of each modality's projection for ``product``/``mean``/``tensor``.
    seed : random state of the PCA solver.
    early_stopping_rounds : LightGBM only; > 0: fit on the training rows and stop adding trees
        once the validation log-loss has not improved for this many rounds (see the module doc).
    val_fraction : share of the training rows carved off for early stopping when ``fit`` gets
        no validation rows.
    standardize : False leaves the features unscaled (``train.normalize: none``).
    """

    def __init__(
        self,
        estimator,
        fusion: str,
        pca_dim: int = 32,
        seed: int = 0,
        *,
        early_stopping_rounds: int = 0,
        val_fraction: float = 0.15,
        standardize: bool = True,
    ):
        self.estimator = estimator
        self.fusion = fusion
        self.pca_dim = pca_dim
        self.seed = seed
        self.early_stopping_rounds = early_stopping_rounds
        self.val_fraction = val_fraction
        self.standardize = standardize

    @property
    def selects_on_validation(self) -> bool:
        """True with early stopping (validation rows pick the number of trees); else they are training rows."""
        return self.early_stopping_rounds > 0

    def fit(self, blocks: dict[str, np.ndarray], y: np.ndarray, validation: Validation = None):
        """Fit scalers, projections and the estimator on one training fold (plus its validation rows,
        unless they select the number of trees: then they are carved from ``blocks`` when not given)."""
        if self.selects_on_validation:
            return self._fit_early_stopped(blocks, y, validation)
        blocks, y = with_validation(blocks, y, validation)
        self._fit_preprocessing(blocks, y)
        self.estimator_ = clone(self.estimator).fit(self.transform(blocks), y)
        self.classes_ = np.asarray(self.estimator_.classes_)
        return self

    def _fit_early_stopped(self, blocks: dict[str, np.ndarray], y: np.ndarray, validation: Validation):
        """LightGBM on the training rows, stopped where the validation rows' log-loss stops improving."""
        import lightgbm

        from pipeline.evaluation import split_off_validation

        if validation is None:
            blocks, y, validation = split_off_validation(blocks, y, self.val_fraction, self.seed)
        val_blocks, y_val = validation
        known = np.isin(y_val, np.unique(y))  # a validation clip of a class unseen in training cannot be scored
        self._fit_preprocessing(blocks, y)
        fit_options = {}
        if known.any():
            x_val = self.transform({m: x[known] for m, x in val_blocks.items()})
            stop = lightgbm.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False)
            fit_options = {"eval_set": [(x_val, y_val[known])], "callbacks": [stop]}
        self.estimator_ = clone(self.estimator).fit(self.transform(blocks), y, **fit_options)
        self.classes_ = np.asarray(self.estimator_.classes_)
        return self

    def _fit_preprocessing(self, blocks: dict[str, np.ndarray], y: np.ndarray) -> None:
        """Scalers, and for product/mean/tensor PCA projections, on these rows."""
        self.modalities_ = modalities_for(self.fusion)
        on = self.standardize
        self.scalers_ = {
            m: StandardScaler(with_mean=on, with_std=on).fit(with_indicator(blocks, m)) for m in self.modalities_
        }
        self.projections_ = {}
        if self.fusion in PROJECTED:
            n_samples = len(y)
            width = min(self.pca_dim, n_samples - 1, *(with_indicator(blocks, m).shape[1] for m in self.modalities_))
            for m in self.modalities_:
                scaled = self.scalers_[m].transform(with_indicator(blocks, m))
                self.projections_[m] = PCA(n_components=width, random_state=self.seed).fit(scaled)

    def transform(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """The fused design matrix the estimator sees."""
        parts = []
        for m in self.modalities_:
            part = self.scalers_[m].transform(with_indicator(blocks, m))
            if m in self.projections_:
                part = self.projections_[m].transform(part)
            parts.append(part)
        return fuse(parts, self.fusion)

    def predict_proba(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        return self.estimator_.predict_proba(self.transform(blocks))

    def save(self, folder: str | Path) -> None:
        """Scalers, projections and a logistic regression in ``fitted.npz``; LightGBM in its native text format.

        Any other scikit-learn estimator goes to ``estimator.skops``.
        """
        folder = Path(folder)
        parts = {f"scaler.{m}": scaler for m, scaler in self.scalers_.items()}
        parts |= {f"projection.{m}": projection for m, projection in self.projections_.items()}
        if hasattr(self.estimator_, "booster_"):
            kind = "lightgbm"
            with atomic_path(folder / "lgbm.txt") as tmp:
                self.estimator_.booster_.save_model(str(tmp))
        elif is_fitted_type(self.estimator_):
            kind, parts["estimator"] = "fitted", self.estimator_
        else:
            kind = "skops"
            dump_skops(self.estimator_, folder / "estimator.skops")
        dump_fitted(parts, folder / "fitted.npz")
        write_config(
            {"type": "classical", "fusion": self.fusion, "classes": self.classes_.tolist(), "estimator": kind}, folder
        )

    @classmethod
    def load(cls, folder: str | Path) -> ClassicalFusionClassifier:
        """A fitted classifier from :meth:`save`'s files."""
        folder = Path(folder)
        config = read_config(folder)
        learner = cls(None, config["fusion"])
        learner.modalities_ = modalities_for(config["fusion"])
        learner.classes_ = np.array(config["classes"])
        parts = load_fitted(folder / "fitted.npz")
        learner.scalers_ = {m: parts[f"scaler.{m}"] for m in learner.modalities_}
        learner.projections_ = {m: parts[f"projection.{m}"] for m in learner.modalities_ if f"projection.{m}" in parts}
        if config["estimator"] == "lightgbm":
            learner.estimator_ = BoosterClassifier(str(folder / "lgbm.txt"), learner.classes_)
        elif config["estimator"] == "fitted":
            learner.estimator_ = parts["estimator"]
        else:
            learner.estimator_ = load_skops(folder / "estimator.skops")
        return learner


class BoosterClassifier:
    """A LightGBM booster read from its text file, with ``predict_proba``."""

    def __init__(self, model_file: str, classes: np.ndarray):
        from lightgbm import Booster

        self.booster_ = Booster(model_file=model_file)
        self.classes_ = classes

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        proba = self.booster_.predict(x)
        return np.column_stack([1 - proba, proba]) if proba.ndim == 1 else proba


class PriorClassifier:
    """The ``dummy`` learner: every clip gets the training class shares; argmax = majority class (chance level)."""

    selects_on_validation = False  # validation rows are counted with the training rows

    def fit(self, blocks: dict[str, np.ndarray], y: np.ndarray, validation: Validation = None) -> PriorClassifier:
        """Count the classes of the training (and validation) rows."""
        _, y = with_validation(blocks, y, validation)
        self.classes_, counts = np.unique(y, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """The class shares, one row per clip."""
        n = len(next(iter(blocks.values())))
        return np.tile(self.prior_, (n, 1))

    def save(self, folder: str | Path) -> None:
        """``learner.json`` with the classes and their shares."""
        write_config({"type": "prior", "classes": self.classes_.tolist(), "prior": self.prior_.tolist()}, folder)

    @classmethod
    def load(cls, folder: str | Path) -> PriorClassifier:
        config = read_config(folder)
        learner = cls()
        learner.classes_, learner.prior_ = np.array(config["classes"]), np.array(config["prior"])
        return learner
