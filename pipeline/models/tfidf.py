"""Lexical text baseline: TF-IDF of word 1-2-grams reduced by truncated SVD, fitted per fold.

Wraps any learner: :meth:`fit` fits the vectorizer and the SVD on the training fold's
texts only, replaces the ``text`` block (an array of cleaned strings, ``""`` when a
clip has none) by the reduced matrix and fits the learner on that.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline


class TfidfTextLearner:
    """``learner`` with its ``text`` block turned into TF-IDF + SVD features inside ``fit``."""

    def __init__(self, learner, dim: int = 128, seed: int = 0):
        self.learner = learner
        self.dim = dim
        self.seed = seed

    def fit(self, blocks: dict[str, np.ndarray], y: np.ndarray) -> TfidfTextLearner:
        """Fit the text representation and the learner on one training fold."""
        self.text_ = None
        if "text" in blocks:
            # min_df=2 where the fold has enough text; fewer than two terms leave the modality empty
            min_df = 2 if sum(bool(t) for t in blocks["text"]) >= 10 else 1
            tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, sublinear_tf=True)
            try:
                n_terms = len(tfidf.fit(blocks["text"]).vocabulary_)
            except ValueError:  # empty vocabulary: no clip of this fold has usable text
                n_terms = 0
            if n_terms >= 2:
                width = min(self.dim, n_terms - 1, len(y) - 1)
                self.text_ = Pipeline([("tfidf", tfidf), ("svd", TruncatedSVD(width, random_state=self.seed))])
                self.text_.fit(blocks["text"])
        self.learner_ = self.learner.fit(self._featurize(blocks), y)
        self.classes_ = self.learner_.classes_
        return self

    def _featurize(self, blocks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "text" not in blocks:
            return blocks
        if self.text_ is None:  # one constant column: learners see "no lexical information"
            return {**blocks, "text": np.zeros((len(blocks["text"]), 1), dtype=np.float32)}
        return {**blocks, "text": self.text_.transform(blocks["text"]).astype(np.float32)}

    def predict_proba(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        return self.learner_.predict_proba(self._featurize(blocks))
