"""The learner interface (:class:`Learner`), apart from the registry so that any module can name it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np


class Learner(Protocol):
    """What the evaluation protocol and the stages need of a learner."""

    classes_: np.ndarray  # label indices of the columns of ``predict_proba``, set by ``fit``

    @property
    def selects_on_validation(self) -> bool:
        """Whether ``validation`` rows only select (early stopping, a fusion weight) rather than train."""

    def fit(
        self,
        blocks: dict[str, np.ndarray],
        y: np.ndarray,
        validation: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
    ) -> Learner: ...

    def predict_proba(self, blocks: dict[str, np.ndarray]) -> np.ndarray: ...

    def save(self, folder: str | Path) -> None: ...
