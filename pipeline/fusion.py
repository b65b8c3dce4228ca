"""Fusion operators, written once for numpy arrays and torch tensors.

A fusion variant names which modalities a learner sees and how their (encoded)
blocks are combined:

- ``audio`` / ``text``: one modality alone;
- ``concat``: blocks side by side, width = sum of widths;
- ``product``: elementwise product (blocks of equal width ``h``);
- ``mean``: elementwise mean (blocks of equal width ``h``);
- ``tensor``: the outer product of the 1-augmented blocks, ``[a, 1] ⊗ [t, 1]``
  (Tensor Fusion Network), width ``(h_a + 1)(h_t + 1)``: the bimodal products and,
  through the appended 1s, each modality's own terms, so a nearly constant modality
  cannot wipe out the other (as it can in ``product``);
- ``late``: no fused block: an audio-only and a text-only model's probabilities are
  averaged (see :mod:`pipeline.models.late`).
"""

from __future__ import annotations

from functools import reduce
from operator import mul
from typing import Any

FUSIONS = ("audio", "text", "concat", "product", "mean", "tensor", "late")
MODALITIES = ("audio", "text")
ELEMENTWISE = ("product", "mean")
PROJECTED = (*ELEMENTWISE, "tensor")  # fusions of projected blocks (PCA width, for the classical learners)


def modalities_for(fusion: str) -> tuple[str, ...]:
    """The modalities a fusion variant uses, in a fixed order."""
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {FUSIONS}")
    return (fusion,) if fusion in MODALITIES else MODALITIES


def fuse(blocks: list[Any], fusion: str, present: list[Any] | None = None) -> Any:
    """Combine per-modality blocks, each shaped (n, width), into one (n, width') block.

    Works on numpy arrays and torch tensors alike. ``present`` optionally gives, per
    block, an (n, 1) 0/1 column saying whether the modality exists for each row; a
    missing modality contributes zeros to ``concat`` (and to a unimodal variant), is
    left out of the ``mean``, counts as 1 in the ``product`` and leaves only the other
    modality's own terms in the ``tensor``.
    """
    if present is not None:
        blocks = [b if p is None else b * p for b, p in zip(blocks, present)]
    if len(blocks) == 1:
        return blocks[0]
    if fusion == "concat":
        return _concat(blocks)
    if fusion == "tensor":
        fused = None
        for block in blocks:
            augmented = _concat([block, block[:, :1] * 0 + 1])  # [b, 1], in the block's own array type
            fused = augmented if fused is None else (fused[:, :, None] * augmented[:, None, :]).reshape(len(block), -1)
        return fused
    widths = {b.shape[1] for b in blocks}
    if len(widths) != 1:
        raise ValueError(f"fusion {fusion!r} needs blocks of equal width, got widths {sorted(widths)}")
    masks = [1.0 if present is None or p is None else p for p in (present or [None] * len(blocks))]
    if fusion == "product":
        return reduce(mul, [b + (1 - m) for b, m in zip(blocks, masks)])  # missing -> 1
    if fusion == "mean":
        count = sum(masks[1:], masks[0])
        return sum(blocks[1:], blocks[0]) / (count if present is None else _at_least_one(count))
    raise ValueError(f"fusion {fusion!r} cannot combine {len(blocks)} blocks; choose one of {FUSIONS}")


def _at_least_one(count: Any) -> Any:
    return count.clip(min=1) if hasattr(count, "clip") else max(count, 1)


def _concat(blocks: list[Any]) -> Any:
    """Blocks side by side (numpy arrays or torch tensors)."""
    if type(blocks[0]).__module__.startswith("torch"):
        import torch

        return torch.cat(blocks, dim=1)
    import numpy as np

    return np.concatenate(blocks, axis=1)
