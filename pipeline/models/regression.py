"""Regression learners (``task: regression``): ridge, one LightGBM regressor per target, the training mean.

They share the classifiers' preprocessing (:class:`ClassicalFusionClassifier`: missing-text
indicator, standardisation, PCA for the projected fusions), fitted on the training fold,
and predict an (n, n_targets) array with :meth:`predict`. ``y`` is (n, n_targets) floats.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import clone

from pipeline.models.artifacts import dump_fitted, load_fitted, read_config, write_config
from pipeline.models.classical import ClassicalFusionClassifier, Validation, with_validation
from pipeline.store import atomic_path


class ClassicalFusionRegressor(ClassicalFusionClassifier):
    """Fuse as :class:`ClassicalFusionClassifier` does, then regress every target.

    ``estimator``: a multi-output scikit-learn regressor (ridge), or a single-output one
    (LightGBM) cloned per target. With ``early_stopping_rounds`` (LightGBM), each target's
    booster stops where its validation L2 stops improving.
    """

    def fit(self, blocks: dict[str, np.ndarray], y: np.ndarray, validation: Validation = None):
        """Fit the preprocessing and a regressor per target (or one multi-output regressor)."""
        y = np.asarray(y, dtype=float)
        if self.selects_on_validation:
            return self._fit_early_stopped(blocks, y, validation)
        blocks, y = with_validation(blocks, y, validation)
        self._fit_preprocessing(blocks, y)
        x = self.transform(blocks)
        if self._per_target:
            self.estimators_ = [clone(self.estimator).fit(x, y[:, k]) for k in range(y.shape[1])]
        else:
            self.estimators_ = [clone(self.estimator).fit(x, y)]
        return self

    @property
    def _per_target(self) -> bool:
        return type(self.estimator).__name__.startswith("LGBM")

    def _fit_early_stopped(self, blocks: dict[str, np.ndarray], y: np.ndarray, validation: Validation):
        import lightgbm

        from pipeline.evaluation import split_off_validation

        if validation is None:
            strata = np.zeros(len(y), dtype=int)
            blocks, y, validation = split_off_validation(blocks, y, self.val_fraction, self.seed, strata)
        val_blocks, y_val = validation
        self._fit_preprocessing(blocks, y)
        x, x_val = self.transform(blocks), self.transform(val_blocks)
        self.estimators_ = []
        for k in range(y.shape[1]):
            stop = lightgbm.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False)
            options = {"eval_set": [(x_val, y_val[:, k])], "callbacks": [stop]} if len(y_val) else {}
            self.estimators_.append(clone(self.estimator).fit(x, y[:, k], **options))
        return self

    def predict(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """(n, n_targets) predictions."""
        x = self.transform(blocks)
        if len(self.estimators_) == 1 and not hasattr(self.estimators_[0], "booster_"):
            return np.asarray(self.estimators_[0].predict(x), dtype=float).reshape(len(x), -1)
        return np.column_stack([e.predict(x) for e in self.estimators_]).astype(float)

    def save(self, folder: str | Path) -> None:
        """Scalers, projections and a ridge in ``fitted.npz``; LightGBM boosters as ``lgbm_<k>.txt``."""
        folder = Path(folder)
        parts = {f"scaler.{m}": s for m, s in self.scalers_.items()}
        parts |= {f"projection.{m}": p for m, p in self.projections_.items()}
        if hasattr(self.estimators_[0], "booster_"):
            kind = "lightgbm"
            for k, estimator in enumerate(self.estimators_):
                with atomic_path(folder / f"lgbm_{k}.txt") as tmp:
                    estimator.booster_.save_model(str(tmp))
        else:
            kind, parts["estimator"] = "fitted", self.estimators_[0]
        dump_fitted(parts, folder / "fitted.npz")
        config = {"type": "classical_regressor", "fusion": self.fusion, "estimator": kind}
        write_config({**config, "n_estimators": len(self.estimators_)}, folder)

    @classmethod
    def load(cls, folder: str | Path) -> ClassicalFusionRegressor:
        """A fitted regressor from :meth:`save`'s files."""
        from lightgbm import Booster

        from pipeline.fusion import modalities_for

        folder = Path(folder)
        config = read_config(folder)
        learner = cls(None, config["fusion"])
        learner.modalities_ = modalities_for(config["fusion"])
        parts = load_fitted(folder / "fitted.npz")
        learner.scalers_ = {m: parts[f"scaler.{m}"] for m in learner.modalities_}
        learner.projections_ = {m: parts[f"projection.{m}"] for m in learner.modalities_ if f"projection.{m}" in parts}
        if config["estimator"] == "lightgbm":
            learner.estimators_ = [
                BoosterRegressor(Booster(model_file=str(folder / f"lgbm_{k}.txt")))
                for k in range(config["n_estimators"])
            ]
        else:
            learner.estimators_ = [parts["estimator"]]
        return learner


class BoosterRegressor:
    """A LightGBM booster read from its text file, with ``predict``."""

    def __init__(self, booster):
        self.booster_ = booster

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.booster_.predict(x)


class MeanRegressor:
    """The ``dummy`` learner of regression: every clip gets the training mean of each target (CCC 0)."""

    selects_on_validation = False

    def fit(self, blocks: dict[str, np.ndarray], y: np.ndarray, validation: Validation = None) -> MeanRegressor:
        _, y = with_validation(blocks, np.asarray(y, dtype=float), validation)
        self.mean_ = y.mean(axis=0)
        return self

    def predict(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        return np.tile(self.mean_, (len(next(iter(blocks.values()))), 1))

    def save(self, folder: str | Path) -> None:
        write_config({"type": "mean", "mean": self.mean_.tolist()}, folder)

    @classmethod
    def load(cls, folder: str | Path) -> MeanRegressor:
        learner = cls()
        learner.mean_ = np.array(read_config(folder)["mean"])
        return learner
