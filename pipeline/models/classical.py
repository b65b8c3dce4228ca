"""Classical learners (LightGBM, logistic regression) behind the fusion interface.

Per modality: standardise; for the elementwise fusions (``product``, ``mean``)
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
        self.scalers_ = {m: StandardScaler().fit(blocks[m]) for m in self.modalities_}
        self.projections_ = {}
        if self.fusion in ELEMENTWISE:
            n_samples = len(y)
            width = min(self.pca_dim, n_samples - 1, *(blocks[m].shape[1] for m in self.modalities_))
            for m in self.modalities_:
                scaled = self.scalers_[m].transform(blocks[m])
                self.projections_[m] = PCA(n_components=width, random_state=self.seed).fit(scaled)
        self.estimator_ = clone(self.estimator).fit(self.transform(blocks), y)
        self.classes_ = self.estimator_.classes_
        return self

    def transform(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """The fused design matrix the estimator sees."""
        parts = []
        for m in self.modalities_:
            part = self.scalers_[m].transform(blocks[m])
            if m in self.projections_:
                part = self.projections_[m].transform(part)
            parts.append(part)
        return fuse(parts, self.fusion)

    def predict_proba(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        return self.estimator_.predict_proba(self.transform(blocks))
