"""Learners behind one interface: ``fit(blocks, y)`` / ``predict_proba(blocks)``.

``blocks`` maps a modality name (``audio``, ``text``) to an (n_clips, n_features)
array; a learner uses the modalities its fusion variant names.
"""

from __future__ import annotations

from pipeline.params import TrainParams

LEARNERS = ("lgbm", "mlp", "logreg")


def make_learner(name: str, fusion: str, params: TrainParams, seed: int, tfidf_dim: int | None = None):
    """A fresh, unfitted learner for one (learner, fusion) variant.

    With ``tfidf_dim``, the ``text`` block holds raw texts, turned into TF-IDF + SVD
    features inside each fit (see :class:`pipeline.models.tfidf.TfidfTextLearner`).
    """
    learner = _make(name, fusion, params, seed)
    if tfidf_dim is None:
        return learner
    from pipeline.models.tfidf import TfidfTextLearner

    return TfidfTextLearner(learner, dim=tfidf_dim, seed=seed)


def _make(name: str, fusion: str, params: TrainParams, seed: int):
    from pipeline.models.classical import ClassicalFusionClassifier  # heavy imports stay out of the CLI start

    if name == "lgbm":
        from lightgbm import LGBMClassifier

        p = params.lgbm
        estimator = LGBMClassifier(
            n_estimators=p.n_estimators,
            learning_rate=p.learning_rate,
            num_leaves=p.num_leaves,
            min_child_samples=p.min_child_samples,
            subsample=p.subsample,
            subsample_freq=1,
            colsample_bytree=p.colsample_bytree,
            n_jobs=p.n_jobs,
            random_state=seed,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
        return ClassicalFusionClassifier(estimator, fusion, pca_dim=params.pca_dim, seed=seed)
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        estimator = LogisticRegression(C=params.logreg.C, max_iter=params.logreg.max_iter)
        return ClassicalFusionClassifier(estimator, fusion, pca_dim=params.pca_dim, seed=seed)
    if name == "mlp":
        from pipeline.models.torch_head import MLPFusionClassifier

        p = params.mlp
        return MLPFusionClassifier(
            fusion,
            hidden=p.hidden,
            dropout=p.dropout,
            lr=p.lr,
            weight_decay=p.weight_decay,
            batch_size=p.batch_size,
            max_epochs=p.max_epochs,
            patience=p.patience,
            val_fraction=params.val_fraction,
            seed=seed,
        )
    raise ValueError(f"unknown learner {name!r}; choose one of {LEARNERS}")
