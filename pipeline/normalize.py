"""Per-group feature normalisation (speaker / artist z-scores), computed from features alone, never labels.

The usual speaker-normalisation recipe: every clip's features are standardised with the
mean and standard deviation of its own group's clips, training and test groups alike
(a test group's statistics come from its unlabeled test clips' features). A group
with fewer than ``min_clips`` clips is standardised with the statistics of the
``reference`` rows instead (the training side of the fold).
"""

from __future__ import annotations

import numpy as np


def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per feature (2-D) or per mel band (3-D: clips x bands x frames); std 0 -> 1."""
    axes = (0,) if x.ndim == 2 else (0, 2)
    mean = x.mean(axis=axes, dtype=np.float64, keepdims=True)[0]
    std = x.std(axis=axes, dtype=np.float64, keepdims=True)[0]
    return mean, np.where(std > 1e-8, std, 1.0)


def group_standardize(
    x: np.ndarray,
    groups: np.ndarray,
    reference: np.ndarray,
    min_clips: int,
    present: np.ndarray | None = None,
) -> np.ndarray:
    """``x`` with each group's rows z-scored by that group's statistics (float32, same shape).

    ``reference``: boolean rows of the training side. A group's statistics come from its
    rows on the same side as the row (training side or not), so the training rows of a
    group that also has test clips (a fixed or predefined split) never see those test
    clips. A group with fewer than ``min_clips`` rows on a side takes the statistics of
    all ``reference`` rows. Rows where ``present`` is False (a clip without this
    modality) are left as they are and count in no statistic.
    """
    usable = np.ones(len(x), dtype=bool) if present is None else np.asarray(present, dtype=bool)
    reference = np.asarray(reference, dtype=bool)
    out = x.astype(np.float32, copy=True)
    fallback_rows = reference & usable
    fallback = moments(x[fallback_rows] if fallback_rows.any() else x[usable])
    for group in np.unique(groups):
        for side in (reference, ~reference):
            rows = (groups == group) & side & usable
            if not rows.any():
                continue
            mean, std = moments(x[rows]) if rows.sum() >= min_clips else fallback
            out[rows] = ((x[rows] - mean) / std).astype(np.float32)
    return out
