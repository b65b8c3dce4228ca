"""Late fusion: a weighted average of an audio-only and a text-only learner's probabilities.

The weight is tuned on validation rows only. In :meth:`fit` the two unimodal
learners are trained as their stand-alone variants are, except that the validation
rows stay unseen until the weight is chosen: torch learners fit on the training rows
and early-stop on the validation rows (as stand-alone); learners that select nothing
fit on the training rows, their validation probabilities pick the weight ``w`` (grid
0, 0.05, ..., 1: highest macro-F1, ties broken by lower log-loss, then by closeness
to 0.5), and then they are refitted on training + validation rows (as stand-alone).
Test clips get ``w * p_audio + (1 - w) * p_text``; a clip without text gets
``p_audio``. ``fit`` never sees a test clip, so neither does the weight.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.models.artifacts import read_config, write_config

GRID = np.linspace(0.0, 1.0, 21)


def modality_blocks(blocks: dict[str, np.ndarray], modality: str) -> dict[str, np.ndarray]:
    """One modality's block and its presence column, if any."""
    return {k: v for k, v in blocks.items() if k in (modality, f"{modality}_present")}


class LateFusionClassifier:
    """``w * audio_learner + (1 - w) * text_learner`` with ``w`` tuned on the validation rows."""

    def __init__(self, audio_learner, text_learner, val_fraction: float = 0.15, seed: int = 0):
        self.audio_learner = audio_learner
        self.text_learner = text_learner
        self.val_fraction = val_fraction
        self.seed = seed

    def fit(
        self,
        blocks: dict[str, np.ndarray],
        y: np.ndarray,
        validation: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
    ) -> LateFusionClassifier:
        """Fit both learners and tune the weight on ``validation`` (carved from ``blocks`` when None)."""
        from pipeline.evaluation import macro_f1_from_labels, split_off_validation

        if validation is None:
            blocks, y, validation = split_off_validation(blocks, y, self.val_fraction, self.seed)
        val_blocks, y_val = validation
        self.classes_ = np.unique(y)
        learners = {"audio": self.audio_learner, "text": self.text_learner}
        fitted = {}
        for m, learner in learners.items():
            if selects_on_validation(learner):
                fitted[m] = learner.fit(
                    modality_blocks(blocks, m), y, validation=(modality_blocks(val_blocks, m), y_val)
                )
            else:
                fitted[m] = learner.fit(modality_blocks(blocks, m), y)
        self.audio_, self.text_ = fitted["audio"], fitted["text"]
        known = np.isin(y_val, self.classes_)  # a validation clip of a class unseen in training cannot be scored
        target = np.searchsorted(self.classes_, y_val[known])
        known_blocks = {m: x[known] for m, x in val_blocks.items()}
        p_audio, p_text, has_text = self._unimodal(known_blocks)
        mixes = [np.where(has_text, w * p_audio + (1 - w) * p_text, p_audio) for w in GRID]
        f1 = macro_f1_from_labels([target] * len(GRID), [m.argmax(axis=1) for m in mixes], len(self.classes_))
        scores = [(-round(f, 9), log_loss(target, m), abs(w - 0.5)) for f, m, w in zip(f1, mixes, GRID)]
        self.weight_ = float(GRID[min(range(len(GRID)), key=scores.__getitem__)]) if len(target) else 0.5
        for m, learner in learners.items():  # the weight is chosen: now train on everything, as stand-alone
            if not selects_on_validation(learner):
                refit = learner.fit(modality_blocks(blocks, m), y, validation=(modality_blocks(val_blocks, m), y_val))
                setattr(self, f"{m}_", refit)
        return self

    @property
    def selects_on_validation(self) -> bool:
        """Whether both learners only select on validation rows; else those rows are refitted on (see :meth:`fit`)."""
        return selects_on_validation(self.audio_learner) and selects_on_validation(self.text_learner)

    def _unimodal(self, blocks: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Audio and text probabilities in ``classes_`` order, and an (n, 1) has-text mask."""
        from pipeline.evaluation import predict_all_classes

        width = int(self.classes_.max()) + 1  # learners' classes_ are label indices, not positions
        p_audio = predict_all_classes(self.audio_, modality_blocks(blocks, "audio"), width)[:, self.classes_]
        p_text = predict_all_classes(self.text_, modality_blocks(blocks, "text"), width)[:, self.classes_]
        has_text = np.asarray(blocks.get("text_present", np.ones(len(p_audio))), dtype=bool)[:, None]
        return p_audio, p_text, has_text

    def predict_proba(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """``weight_ * p_audio + (1 - weight_) * p_text`` (``p_audio`` without text), columns in ``classes_`` order."""
        p_audio, p_text, has_text = self._unimodal(blocks)
        return np.where(has_text, self.weight_ * p_audio + (1 - self.weight_) * p_text, p_audio)

    def save(self, folder: str | Path) -> None:
        """``learner.json`` (weight, classes) and the two learners in ``audio/`` and ``text/``."""
        folder = Path(folder)
        write_config({"type": "late", "weight": self.weight_, "classes": self.classes_.tolist()}, folder)
        self.audio_.save(folder / "audio")
        self.text_.save(folder / "text")

    @classmethod
    def load(cls, folder: str | Path, load_child: Callable[[Path], Any]) -> LateFusionClassifier:
        """A fitted learner from :meth:`save`'s files; ``load_child`` reads ``audio/`` and ``text/``."""
        folder = Path(folder)
        config = read_config(folder)
        learner = cls(None, None)
        learner.weight_, learner.classes_ = config["weight"], np.array(config["classes"])
        learner.audio_, learner.text_ = load_child(folder / "audio"), load_child(folder / "text")
        return learner


class LateFusionRegressor(LateFusionClassifier):
    """``w * audio + (1 - w) * text`` predictions of two regressors, one weight per target chosen on the
    validation rows by that target's CCC (ties: the weight closer to 0.5); trained as
    :class:`LateFusionClassifier`. Per target, because the modalities often carry different
    targets (audio arousal, lyrics valence): one shared weight would give up one of them."""

    def fit(
        self,
        blocks: dict[str, np.ndarray],
        y: np.ndarray,
        validation: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
    ) -> LateFusionRegressor:
        """Fit both regressors and choose the weight on ``validation`` (carved from ``blocks`` when None)."""
        from pipeline.evaluation import ccc, split_off_validation

        y = np.asarray(y, dtype=float)
        if validation is None:
            strata = np.zeros(len(y), dtype=int)
            blocks, y, validation = split_off_validation(blocks, y, self.val_fraction, self.seed, strata)
        val_blocks, y_val = validation
        learners = {"audio": self.audio_learner, "text": self.text_learner}
        for m, learner in learners.items():
            val = (modality_blocks(val_blocks, m), y_val) if selects_on_validation(learner) else None
            setattr(self, f"{m}_", learner.fit(modality_blocks(blocks, m), y, validation=val))
        p_audio, p_text, has_text = self._unimodal(val_blocks)
        per_weight = np.array([ccc(y_val, np.where(has_text, w * p_audio + (1 - w) * p_text, p_audio)) for w in GRID])
        self.weight_ = np.full(y.shape[1], 0.5)
        if len(y_val):
            for k in range(y.shape[1]):
                scores = [(-round(float(c), 9), abs(w - 0.5)) for c, w in zip(per_weight[:, k], GRID)]
                self.weight_[k] = GRID[min(range(len(GRID)), key=scores.__getitem__)]
        for m, learner in learners.items():  # the weight is chosen: now train on everything, as stand-alone
            if not selects_on_validation(learner):
                refit = learner.fit(modality_blocks(blocks, m), y, validation=(modality_blocks(val_blocks, m), y_val))
                setattr(self, f"{m}_", refit)
        return self

    def _unimodal(self, blocks: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Audio and text predictions (n, n_targets) and an (n, 1) has-text mask."""
        p_audio = self.audio_.predict(modality_blocks(blocks, "audio"))
        p_text = self.text_.predict(modality_blocks(blocks, "text"))
        has_text = np.asarray(blocks.get("text_present", np.ones(len(p_audio))), dtype=bool)[:, None]
        return p_audio, p_text, has_text

    def predict(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """``weight_ * audio + (1 - weight_) * text`` per target (audio alone for a clip without text)."""
        p_audio, p_text, has_text = self._unimodal(blocks)
        return np.where(has_text, self.weight_ * p_audio + (1 - self.weight_) * p_text, p_audio)

    def save(self, folder: str | Path) -> None:
        """``learner.json`` (weight) and the two regressors in ``audio/`` and ``text/``."""
        folder = Path(folder)
        write_config({"type": "late_regressor", "weight": self.weight_.tolist()}, folder)
        self.audio_.save(folder / "audio")
        self.text_.save(folder / "text")

    @classmethod
    def load(cls, folder: str | Path, load_child: Callable[[Path], Any]) -> LateFusionRegressor:
        """A fitted regressor from :meth:`save`'s files."""
        folder = Path(folder)
        learner = cls(None, None)
        learner.weight_ = np.array(read_config(folder)["weight"])
        learner.audio_, learner.text_ = load_child(folder / "audio"), load_child(folder / "text")
        return learner


def selects_on_validation(learner) -> bool:
    """Whether a learner uses validation rows for selection (early stopping) rather than as training rows."""
    return bool(getattr(learner, "selects_on_validation", False))


def log_loss(target: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-probability of the true class (probabilities clipped at 1e-12)."""
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(target)), target], 1e-12, None))))
