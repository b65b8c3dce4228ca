"""The learner registry: names -> classes, for building (:func:`make_learner`) and loading (:func:`load_learner`).

A learner (:class:`Learner`) is ``fit(blocks, y, validation=None)`` /
``predict_proba(blocks)`` / ``save(folder)``. ``blocks`` maps a modality name
(``audio``, ``text``) to an array with one row per clip (``audio`` is 3-D, clips x mel
bands x frames, for the ``cnn``), plus ``text_present``; a learner uses the modalities
its fusion variant names. ``validation`` is ``(blocks, y)`` of the protocol's inner
validation rows: the torch learners early-stop on it, ``late`` fusion tunes its weight
on it, and learners that select nothing fit on it too. The learner modules import
nothing from here: only the I/O helpers of :mod:`pipeline.models.artifacts`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.models.base import Learner

if TYPE_CHECKING:
    from pipeline.executor import DaskSettings
    from pipeline.params import TrainParams

LEARNERS = ("dummy", "logreg", "lgbm", "mlp", "multitask", "cnn")
TORCH_LEARNERS = ("mlp", "multitask", "cnn")
ZERO_SHOT = "zeroshot"  # CLAP prompts, no training: built from an encoder store (stages/train.py), not make_learner

# learner.json "type" -> the class whose ``load`` reads that folder back
SAVED_TYPES = {
    "classical": "pipeline.models.classical:ClassicalFusionClassifier",
    "prior": "pipeline.models.classical:PriorClassifier",
    "late": "pipeline.models.late:LateFusionClassifier",
    "tfidf": "pipeline.models.tfidf:TfidfTextLearner",
    "torch": "pipeline.models.torch_head:TorchFusionClassifier",
    "classical_regressor": "pipeline.models.regression:ClassicalFusionRegressor",
    "mean": "pipeline.models.regression:MeanRegressor",
    "late_regressor": "pipeline.models.late:LateFusionRegressor",
    "zeroshot": "pipeline.models.zeroshot:ZeroShotClassifier",
}
# saved with child learners, which their ``load(folder, load_child)`` reads
WRAPPER_TYPES = ("late", "tfidf", "late_regressor")


def make_learner(
    name: str,
    fusion: str,
    *,
    params: TrainParams,
    seed: int,
    tfidf_dim: int | None = None,
    val_fraction: float = 0.15,
    dask: DaskSettings | None = None,
    task: str = "classification",
) -> Learner:
    """A fresh, unfitted learner for one (learner, fusion) variant.

    ``task: regression`` gives the family's regressor (``predict`` instead of
    ``predict_proba``): ``logreg`` is ridge regression (``train.logreg.alpha``), ``lgbm`` one
    LightGBM regressor per target, the torch heads a linear multi-output head trained on
    ``train.regression_loss``, ``dummy`` the training mean.

    ``late`` fusion averages an audio-only and a text-only learner of the same family.
    With ``tfidf_dim``, the ``text`` block holds raw texts, turned into TF-IDF + SVD
    features inside each fit (see :class:`pipeline.models.tfidf.TfidfTextLearner`).
    With ``dask`` and ``train.lgbm.distributed``, LightGBM trains on that cluster.
    """
    if fusion == "late" and name != "dummy":
        from pipeline.models.late import LateFusionClassifier, LateFusionRegressor

        options = dict(params=params, seed=seed, val_fraction=val_fraction, dask=dask, task=task)
        audio = make_learner(name, "audio", **options)
        text = make_learner(name, "text", tfidf_dim=tfidf_dim, **options)
        late = LateFusionRegressor if task == "regression" else LateFusionClassifier
        return late(audio, text, val_fraction=val_fraction, seed=seed)
    if task == "regression":
        learner = _make_regressor(name, fusion, params, seed, val_fraction)
    else:
        learner = _make(name, fusion, params, seed, val_fraction, dask)
    if tfidf_dim is None or name == "dummy" or fusion == "audio":
        return learner
    from pipeline.models.tfidf import TfidfTextLearner

    return TfidfTextLearner(learner, dim=tfidf_dim, seed=seed)


def _make(
    name: str, fusion: str, params: TrainParams, seed: int, val_fraction: float, dask: DaskSettings | None
) -> Learner:
    from pipeline.models.classical import ClassicalFusionClassifier, PriorClassifier  # heavy imports stay lazy

    if name == "dummy":
        return PriorClassifier()
    standardize = params.normalize != "none"
    if name == "lgbm":
        p = params.lgbm
        settings = lgbm_settings(params, seed)
        if p.distributed and dask is not None:
            from pipeline.models.dask_lgbm import DaskLGBMClassifier

            estimator = DaskLGBMClassifier(dask.address, dask.workers, p.n_partitions, params.class_weight, settings)
        else:
            from lightgbm import LGBMClassifier

            estimator = LGBMClassifier(**settings, class_weight=params.class_weight)
            return ClassicalFusionClassifier(
                estimator,
                fusion,
                pca_dim=params.pca_dim,
                seed=seed,
                early_stopping_rounds=p.early_stopping_rounds,
                val_fraction=val_fraction,
                standardize=standardize,
            )
        return ClassicalFusionClassifier(estimator, fusion, pca_dim=params.pca_dim, seed=seed, standardize=standardize)
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        estimator = LogisticRegression(
            C=params.logreg.C, max_iter=params.logreg.max_iter, class_weight=params.class_weight
        )
        return ClassicalFusionClassifier(estimator, fusion, pca_dim=params.pca_dim, seed=seed, standardize=standardize)
    if name in TORCH_LEARNERS:
        from pipeline.models.torch_head import TorchFusionClassifier

        p = getattr(params, name)
        return TorchFusionClassifier(
            fusion,
            hidden=p.hidden,
            dropout=p.dropout,
            lr=p.lr,
            weight_decay=p.weight_decay,
            batch_size=p.batch_size,
            max_epochs=p.max_epochs,
            patience=p.patience,
            grad_clip=p.grad_clip,
            lr_step=p.lr_step,
            loss_weights=tuple(p.loss_weights) if name == "multitask" else None,
            class_weight=params.class_weight,
            val_fraction=val_fraction,
            n_threads=params.n_threads,
            seed=seed,
            time_pool=p.time_pool if name == "cnn" else 1,
            standardize=standardize,
        )
    raise ValueError(f"unknown learner {name!r}; choose one of {LEARNERS}")


def lgbm_settings(params: TrainParams, seed: int) -> dict:
    """LightGBM's constructor arguments from ``train.lgbm`` (classifier and regressor alike), fixed threads and seed."""
    p = params.lgbm
    return dict(
        n_estimators=p.n_estimators,
        learning_rate=p.learning_rate,
        num_leaves=p.num_leaves,
        min_child_samples=p.min_child_samples,
        subsample=p.subsample,
        subsample_freq=1,
        colsample_bytree=p.colsample_bytree,
        n_jobs=params.n_threads,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )


def _make_regressor(name: str, fusion: str, params: TrainParams, seed: int, val_fraction: float) -> Learner:
    """The regressor of learner family ``name`` (see :func:`make_learner`)."""
    from pipeline.models.regression import ClassicalFusionRegressor, MeanRegressor

    if name == "dummy":
        return MeanRegressor()
    standardize = params.normalize != "none"
    projection = dict(pca_dim=params.pca_dim, seed=seed, standardize=standardize)
    if name == "logreg":
        from sklearn.linear_model import Ridge

        return ClassicalFusionRegressor(Ridge(alpha=params.logreg.alpha), fusion, **projection)
    if name == "lgbm":
        from lightgbm import LGBMRegressor

        return ClassicalFusionRegressor(
            LGBMRegressor(**lgbm_settings(params, seed)),
            fusion,
            early_stopping_rounds=params.lgbm.early_stopping_rounds,
            val_fraction=val_fraction,
            **projection,
        )
    if name in TORCH_LEARNERS:
        learner = _make(name, fusion, params, seed, val_fraction, None)
        learner.regression_loss = params.regression_loss
        return learner
    raise ValueError(f"unknown learner {name!r}; choose one of {LEARNERS}")


def load_learner(folder: str | Path) -> Learner:
    """A fitted learner from the folder its ``save`` wrote (``predict_proba`` ready)."""
    from pipeline.models.artifacts import read_config

    kind = read_config(folder).get("type")
    if kind not in SAVED_TYPES:
        raise ValueError(f"{folder}/learner.json: unknown learner type {kind!r}; known: {sorted(SAVED_TYPES)}")
    module, name = SAVED_TYPES[kind].split(":")
    cls = getattr(importlib.import_module(module), name)  # heavy imports (torch, lightgbm) stay lazy
    return cls.load(folder, load_child=load_learner) if kind in WRAPPER_TYPES else cls.load(folder)
