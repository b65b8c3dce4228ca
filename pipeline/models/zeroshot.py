"""Zero-shot classification with a CLAP encoder: no training, label prompts scored by cosine similarity.

Each label's prompts were embedded by the encoder stage (the normalised mean of the
prompts' normalised text embeddings, stored in the encoder store's metadata). A clip's
probabilities are ``softmax(logit_scale · cos(audio embedding, label embedding))``. It is
a learner like the others (fit only records the classes), so the zero-shot variant is
scored on the same folds, with the same metrics and confidence intervals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.models.artifacts import read_config, write_config


class ZeroShotClassifier:
    """``label_embeddings``: (classes, dim) rows in class-index order; ``scale``: CLAP's logit scale."""

    selects_on_validation = False

    def __init__(self, label_embeddings: np.ndarray, scale: float = 1.0):
        self.label_embeddings = np.asarray(label_embeddings, dtype=np.float64)
        self.scale = float(scale)

    def fit(self, blocks: dict[str, np.ndarray], y: np.ndarray, validation=None) -> ZeroShotClassifier:
        """Nothing to learn: every class has its prompt embedding."""
        self.classes_ = np.arange(len(self.label_embeddings))
        return self

    def predict_proba(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """Softmax over classes of the scaled cosine between each clip's audio embedding and each label's."""
        audio = np.asarray(blocks["audio"], dtype=np.float64)
        audio = audio / np.maximum(np.linalg.norm(audio, axis=1, keepdims=True), 1e-12)
        logits = self.scale * audio @ self.label_embeddings.T
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def save(self, folder: str | Path) -> None:
        """``learner.json`` with the label embeddings and the scale."""
        write_config(
            {"type": "zeroshot", "label_embeddings": self.label_embeddings.tolist(), "scale": self.scale}, folder
        )

    @classmethod
    def load(cls, folder: str | Path) -> ZeroShotClassifier:
        config = read_config(folder)
        learner = cls(np.array(config["label_embeddings"]), config["scale"])
        learner.classes_ = np.arange(len(learner.label_embeddings))
        return learner


def label_matrix(prompt_embeddings: dict[str, list[float]], classes: list[str], where: str) -> np.ndarray:
    """The (classes, dim) prompt embeddings in ``classes`` order; every class needs prompts."""
    missing = [c for c in classes if c not in prompt_embeddings]
    if missing:
        raise ValueError(
            f"{where}: no prompts for the labels {missing}; give every label of {classes} prompts "
            f"(encoders.<name>.prompts in params.yaml)"
        )
    return np.array([prompt_embeddings[c] for c in classes], dtype=np.float64)
