"""Lexical text baseline: TF-IDF of word 1-2-grams reduced by truncated SVD, fitted per fold.

Wraps any learner: :meth:`fit` fits the vectorizer and the SVD on the training fold's
texts only, replaces the ``text`` block (an array of cleaned strings, ``""`` when a
clip has none) by the reduced matrix and fits the learner on that.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

from pipeline.models.artifacts import dump_skops, load_skops, read_config, write_config


class TfidfTextLearner:
    """``learner`` with its ``text`` block turned into TF-IDF + SVD features inside ``fit``."""

    def __init__(self, learner, dim: int = 128, seed: int = 0):
        self.learner = learner
        self.dim = dim
        self.seed = seed

    def fit(
        self,
        blocks: dict[str, np.ndarray],
        y: np.ndarray,
        validation: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
    ) -> TfidfTextLearner:
        """Fit the text representation, then the learner (validation rows transformed).

        The representation is fitted on the rows the learner trains on: the training rows,
        plus the validation rows when the learner selects nothing and so fits on them too.
        """
        self.text_ = None
        if "text" in blocks:
            texts = blocks["text"]
            if validation is not None and not self.selects_on_validation:
                texts = np.concatenate([texts, validation[0]["text"]])
            # min_df=2 where the fold has enough text; fewer than two terms leave the modality empty
            min_df = 2 if sum(bool(t) for t in texts) >= 10 else 1
            tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, sublinear_tf=True)
            try:
                n_terms = len(tfidf.fit(texts).vocabulary_)
            except ValueError:  # empty vocabulary: no clip of this fold has usable text
                n_terms = 0
            if n_terms >= 2:
                width = min(self.dim, n_terms - 1, len(texts) - 1)
                self.text_ = Pipeline([("tfidf", tfidf), ("svd", TruncatedSVD(width, random_state=self.seed))])
                self.text_.fit(texts)
        if validation is not None:
            validation = (self._featurize(validation[0]), validation[1])
        self.learner_ = self.learner.fit(self._featurize(blocks), y, validation=validation)
        self.classes_ = getattr(self.learner_, "classes_", None)  # None: a regressor
        return self

    @property
    def selects_on_validation(self) -> bool:
        """As the wrapped learner."""
        return bool(getattr(self.learner, "selects_on_validation", False))

    def _featurize(self, blocks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "text" not in blocks:
            return blocks
        if self.text_ is None:  # one constant column: learners see "no lexical information"
            return {**blocks, "text": np.zeros((len(blocks["text"]), 1), dtype=np.float32)}
        return {**blocks, "text": self.text_.transform(blocks["text"]).astype(np.float32)}

    def predict_proba(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        return self.learner_.predict_proba(self._featurize(blocks))

    def predict(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """The wrapped regressor's (n, n_targets) predictions."""
        return self.learner_.predict(self._featurize(blocks))

    def save(self, folder: str | Path) -> None:
        """``learner.json``, the fitted TF-IDF + SVD (skops) and the wrapped learner in ``learner/``."""
        folder = Path(folder)
        write_config({"type": "tfidf", "dim": self.dim}, folder)
        dump_skops(self.text_, folder / "text.skops")
        self.learner_.save(folder / "learner")

    @classmethod
    def load(cls, folder: str | Path, load_child: Callable[[Path], Any]) -> TfidfTextLearner:
        """A fitted learner from :meth:`save`'s files; ``load_child`` reads the wrapped learner in ``learner/``."""
        folder = Path(folder)
        learner = cls(None, dim=read_config(folder)["dim"])
        learner.text_ = load_skops(folder / "text.skops")
        learner.learner_ = load_child(folder / "learner")
        learner.classes_ = getattr(learner.learner_, "classes_", None)
        return learner
