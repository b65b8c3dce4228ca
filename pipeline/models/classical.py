"""Classical learners (LightGBM, logistic regression) behind the fusion interface.

Per modality: add a missing-modality indicator column when the blocks carry one
(``text_present``: clips without text have a zero embedding and indicator 1);
standardise; for the elementwise fusions (``product``, ``mean``)
project each modality to ``pca_dim`` dimensions with PCA. Scalers and projections
are fitted in :meth:`fit`, i.e. on the training fold only. The fused matrix then
goes to a scikit-learn-style estimator.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from pipeline.fusion import ELEMENTWISE, fuse, modalities_for


def with_indicator(blocks: dict[str, np.ndarray], modality: str) -> np.ndarray:
    """The modality's block, plus a 0/1 "missing" column when ``<modality>_present`` is given."""
    present = blocks.get(f"{modality}_present")
    if present is None:
        return blocks[modality]
    return np.column_stack([blocks[modality], 1.0 - np.asarray(present, dtype=np.float32)])


class ClassicalFusionClassifier:
    """Fuse standardised (and, for elementwise fusions, PCA-projected) blocks, then classify.

    Parameters
    ----------
    estimator : unfitted scikit-learn-style classifier (cloned in ``fit``).
    fusion : one of :data:`pipeline.fusion.FUSIONS`.
    pca_dim : width ``h`` of each modality's projection for ``product``/``mean``.
    seed : random state of the PCA solver.
    """

    def __init__(self, estimator, fusion: str, pca_dim: int = 32, seed: int = 0):
        self.estimator = estimator
        self.fusion = fusion
        self.pca_dim = pca_dim
        self.seed = seed

    def fit(self, blocks: dict[str, np.ndarray], y: np.ndarray) -> ClassicalFusionClassifier:
        """Fit scalers, projections and the estimator on one training fold."""
        self.modalities_ = modalities_for(self.fusion)
        self.scalers_ = {m: StandardScaler().fit(with_indicator(blocks, m)) for m in self.modalities_}
        self.projections_ = {}
        if self.fusion in ELEMENTWISE:
            n_samples = len(y)
            width = min(self.pca_dim, n_samples - 1, *(with_indicator(blocks, m).shape[1] for m in self.modalities_))
            for m in self.modalities_:
                scaled = self.scalers_[m].transform(with_indicator(blocks, m))
                self.projections_[m] = PCA(n_components=width, random_state=self.seed).fit(scaled)
        self.estimator_ = clone(self.estimator).fit(self.transform(blocks), y)
        self.classes_ = self.estimator_.classes_
        return self

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
