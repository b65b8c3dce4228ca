"""A small torch fusion head: per-modality encoders, a fusion operator, a classifier.

Each modality is standardised, then encoded by ``Linear -> ReLU -> Dropout`` to a
common width ``hidden``; the encoded vectors are fused (concat / product / mean) and
a linear layer gives class logits. Trained with AdamW and early stopping on a
validation split carved (stratified) from the training fold.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from pipeline.fusion import fuse, modalities_for


class FusionHead(nn.Module):
    """Encoders per modality, then fusion, then a linear classifier."""

    def __init__(self, input_dims: dict[str, int], fusion: str, hidden: int, n_classes: int, dropout: float):
        super().__init__()
        self.fusion = fusion
        self.modalities = tuple(input_dims)
        self.encoders = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout)) for m, d in input_dims.items()}
        )
        fused_width = hidden * len(input_dims) if fusion == "concat" else hidden
        self.classifier = nn.Linear(fused_width, n_classes)

    def forward(self, blocks: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits; ``present[m]`` (n, 1) masks modality m where it is missing (see :func:`fuse`)."""
        encoded = [self.encoders[m](blocks[m]) for m in self.modalities]
        masks = None if not present else [present.get(m) for m in self.modalities]
        return self.classifier(fuse(encoded, self.fusion, masks))


class MLPFusionClassifier:
    """Fit/predict wrapper around :class:`FusionHead` (scikit-learn style)."""

    def __init__(
        self,
        fusion: str,
        hidden: int = 64,
        dropout: float = 0.3,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        batch_size: int = 32,
        max_epochs: int = 200,
        patience: int = 20,
        val_fraction: float = 0.15,
        seed: int = 0,
    ):
        self.fusion = fusion
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed

    def _tensors(
        self, blocks: dict[str, np.ndarray], index: np.ndarray | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Standardised inputs and (n, 1) presence masks of the modalities that have one."""
        rows = slice(None) if index is None else index
        inputs, present = {}, {}
        for m in self.modalities_:
            inputs[m] = torch.from_numpy(self.scalers_[m].transform(blocks[m][rows]).astype(np.float32))
            if f"{m}_present" in blocks:
                present[m] = torch.from_numpy(np.asarray(blocks[f"{m}_present"][rows], dtype=np.float32)[:, None])
        return inputs, present

    def fit(self, blocks: dict[str, np.ndarray], y: np.ndarray) -> MLPFusionClassifier:
        """Train on one training fold; early-stop on an inner validation split."""
        torch.manual_seed(self.seed)
        self.modalities_ = modalities_for(self.fusion)
        self.classes_ = np.unique(y)
        y_idx = np.searchsorted(self.classes_, y)
        stratify = y_idx if np.bincount(y_idx).min() >= 2 else None  # a class with one clip cannot be split
        fit_idx, val_idx = train_test_split(
            np.arange(len(y)), test_size=self.val_fraction, stratify=stratify, random_state=self.seed
        )
        self.scalers_ = {}
        for m in self.modalities_:
            rows = fit_idx
            if f"{m}_present" in blocks and blocks[f"{m}_present"][fit_idx].any():
                rows = fit_idx[np.asarray(blocks[f"{m}_present"][fit_idx], dtype=bool)]  # scale on real values
            self.scalers_[m] = StandardScaler().fit(blocks[m][rows])
        (x_fit, p_fit), (x_val, p_val) = self._tensors(blocks, fit_idx), self._tensors(blocks, val_idx)
        y_fit, y_val = torch.from_numpy(y_idx[fit_idx]), torch.from_numpy(y_idx[val_idx])
        dims = {m: blocks[m].shape[1] for m in self.modalities_}
        model = FusionHead(dims, self.fusion, self.hidden, len(self.classes_), self.dropout)
        optimiser = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(self.seed)
        best_loss, best_state, stale = float("inf"), copy.deepcopy(model.state_dict()), 0
        self.epochs_ = 0
        for _epoch in range(self.max_epochs):
            model.train()
            order = torch.randperm(len(y_fit), generator=generator)
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                optimiser.zero_grad()
                batch_present = {m: p[batch] for m, p in p_fit.items()}
                loss = loss_fn(model({m: x[batch] for m, x in x_fit.items()}, batch_present), y_fit[batch])
                loss.backward()
                optimiser.step()
            model.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(model(x_val, p_val), y_val))
            self.epochs_ += 1
            if val_loss < best_loss - 1e-4:
                best_loss, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        model.load_state_dict(best_state)
        self.model_ = model.eval()
        self.best_val_loss_ = best_loss
        return self

    def predict_proba(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """Softmax class probabilities, columns in ``classes_`` order."""
        with torch.no_grad():
            logits = self.model_(*self._tensors(blocks))
        return torch.softmax(logits, dim=1).numpy().astype(np.float64)
