"""Torch learners: the fusion head (``mlp``), its multi-task variant and the seed CNN.

One module, :class:`FusionHead`: an encoder per modality, a fusion operator, a linear
classifier. A 2-D block (clips x features) is encoded by ``Linear -> LayerNorm ->
ReLU -> Dropout``; a 3-D block (clips x mel bands x frames, the log-mel store) by the
original design's CNN: two ``Conv 32@4x4 stride 2 -> ReLU -> MaxPool 2x2`` layers,
global average pooling, then the same projection. With ``aux_heads`` each modality
also gets its own classifier (the multi-task learner: the fused, audio-only and
text-only losses are summed with weights; predictions come from the fused head).

:class:`TorchFusionClassifier` trains it: inputs standardised on the training rows,
AdamW with optional step decay and gradient clipping, class weights, and the epoch
with the lowest validation loss of the fused head kept (the validation rows come
from the protocol, or are carved from the training rows when none are given).
Saved as a ``state_dict`` (loaded with ``weights_only=True``), scalers as ``.npz``
and a JSON config: no pickle.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.fusion import fuse, modalities_for
from pipeline.models.artifacts import dump_arrays, read_config, write_config
from pipeline.store import atomic_path

EVAL_BATCH = 128  # clips per forward pass at evaluation (bounds the CNN's activation memory)


class AdamW:
    """``torch.optim.AdamW`` for CPU tensors: the same operations in the same order, so the same bits.

    torch.optim's first step imports ``torch._dynamo`` (2 s, in every torch train stage, for a
    compiler mmer never uses). This is its default CPU path (single-tensor, no amsgrad): per
    parameter, decoupled decay, moment updates and the bias-corrected step; a parameter without
    a gradient is left alone and does not advance its step count. ``lr`` may be changed between
    steps (step decay). tests/test_models.py compares it with torch.optim.AdamW bit for bit.
    """

    def __init__(self, params, lr: float, weight_decay: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.state: dict[int, list] = {}  # index -> [step, first moment, second moment]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            state = self.state.setdefault(i, [0, torch.zeros_like(p), torch.zeros_like(p)])
            state[0] += 1
            step, exp_avg, exp_avg_sq = state
            if self.weight_decay != 0:
                p.mul_(1 - self.lr * self.weight_decay)
            exp_avg.lerp_(p.grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            step_size = self.lr / (1 - beta1**step)
            denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(self.eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)


def dense_encoder(width: int, hidden: int, dropout: float) -> nn.Module:
    """``Linear -> LayerNorm -> ReLU -> Dropout``: one feature vector to ``hidden``."""
    return nn.Sequential(nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout))


CNN_MIN_SIZE = 26  # smallest mel-band/frame count that survives two conv(4, stride 2) + pool(2) blocks


class ConvEncoder(nn.Module):
    """Log-mel (n_mels, frames) -> ``hidden``: 2 x (Conv 32@4x4/2, ReLU, MaxPool 2), global mean, projection.

    Each block pools before the ReLU (the same function: max-pooling and ReLU commute)
    and runs channels-last, together 3x faster on CPU than conv-ReLU-pool in NCHW.
    ``time_pool`` > 1 first averages that many consecutive frames: the convolutions then
    cost ``time_pool`` times less (the input the user stores and predicts on is unchanged).
    """

    def __init__(self, hidden: int, dropout: float, filters: int = 32, time_pool: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            *([nn.AvgPool2d((1, time_pool))] if time_pool > 1 else []),
            nn.Conv2d(1, filters, kernel_size=4, stride=2),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(filters, filters, kernel_size=4, stride=2),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        ).to(memory_format=torch.channels_last)
        self.project = dense_encoder(filters, hidden, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(x.unsqueeze(1).contiguous(memory_format=torch.channels_last)))


class FusionHead(nn.Module):
    """Encoders per modality, then fusion, then a linear classifier (plus per-modality heads with ``aux_heads``).

    ``input_shapes`` maps each modality to the shape of one clip's block: ``(width,)``
    for a feature vector, ``(n_mels, frames)`` for a spectrogram (CNN encoder).
    """

    def __init__(
        self,
        input_shapes: dict[str, tuple[int, ...]],
        fusion: str,
        hidden: int,
        n_classes: int,
        dropout: float,
        aux_heads: bool = False,
        time_pool: int = 1,
    ):
        super().__init__()
        self.fusion = fusion
        self.modalities = tuple(input_shapes)
        self.encoders = nn.ModuleDict(
            {
                m: ConvEncoder(hidden, dropout, time_pool=time_pool)
                if len(shape) == 2
                else dense_encoder(shape[0], hidden, dropout)
                for m, shape in input_shapes.items()
            }
        )
        fused_width = {"concat": hidden * len(input_shapes), "tensor": (hidden + 1) ** len(input_shapes)}
        fused_width = fused_width.get(fusion, hidden) if len(input_shapes) > 1 else hidden
        self.classifier = nn.Linear(fused_width, n_classes)
        self.aux = nn.ModuleDict({m: nn.Linear(hidden, n_classes) for m in input_shapes}) if aux_heads else None

    def heads(
        self, blocks: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Logits of the fused head (``fused``) and, with ``aux_heads``, of each modality's own head."""
        encoded = {m: self.encoders[m](blocks[m]) for m in self.modalities}
        masks = None if not present else [present.get(m) for m in self.modalities]
        logits = {"fused": self.classifier(fuse([encoded[m] for m in self.modalities], self.fusion, masks))}
        if self.aux is not None:
            logits.update({m: self.aux[m](encoded[m]) for m in self.modalities})
        return logits

    def forward(self, blocks: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Fused logits; ``present[m]`` (n, 1) masks modality m where it is missing (see :func:`fuse`)."""
        return self.heads(blocks, present)["fused"]


class Standardizer:
    """Zero mean, unit variance per feature (2-D blocks) or per mel band (3-D blocks), fitted on given rows."""

    def fit(self, x: np.ndarray) -> Standardizer:
        axes = (0,) if x.ndim == 2 else (0, 2)
        self.mean_ = x.mean(axis=axes, dtype=np.float64, keepdims=True)[0].astype(np.float32)
        std = x.std(axis=axes, dtype=np.float64, keepdims=True)[0]
        self.scale_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        return self

    @classmethod
    def identity(cls, shape: tuple[int, ...]) -> Standardizer:
        """A standardizer that leaves blocks of one clip's ``shape`` as they are (``train.normalize: none``)."""
        scaler = cls()
        stat_shape = shape if len(shape) == 1 else (shape[0], 1)
        scaler.mean_, scaler.scale_ = np.zeros(stat_shape, np.float32), np.ones(stat_shape, np.float32)
        return scaler

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean_) / self.scale_).astype(np.float32, copy=False)


def ccc_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - the mean over targets (columns) of Lin's concordance correlation of a batch."""
    mean_p, mean_t = predicted.mean(dim=0), target.mean(dim=0)
    cov = ((predicted - mean_p) * (target - mean_t)).mean(dim=0)
    denominator = predicted.var(dim=0, unbiased=False) + target.var(dim=0, unbiased=False) + (mean_p - mean_t) ** 2
    return 1 - (2 * cov / (denominator + 1e-8)).mean()


REGRESSION_LOSSES = {"mse": nn.MSELoss, "ccc": lambda: ccc_loss}


def balanced_weights(y_idx: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's ``class_weight='balanced'``: n / (n_classes * count) per class."""
    counts = np.bincount(y_idx, minlength=n_classes).astype(np.float64)
    return np.where(counts > 0, len(y_idx) / (n_classes * np.maximum(counts, 1)), 0.0)


class TorchFusionClassifier:
    """Fit/predict wrapper around :class:`FusionHead` (scikit-learn style).

    Parameters
    ----------
    fusion : one of :data:`pipeline.fusion.FUSIONS` but ``late``.
    hidden, dropout : encoder width and dropout.
    lr, weight_decay, batch_size, max_epochs, patience : AdamW and early stopping.
    grad_clip : max gradient norm (0 = off). lr_step : halve the rate every ``lr_step`` epochs (0 = off).
    loss_weights : (fused, audio, text) loss weights; given, the head gets per-modality heads (multi-task).
    time_pool : the CNN averages this many consecutive log-mel frames before its convolutions.
    class_weight : ``None`` or ``"balanced"``.
    val_fraction : validation share carved from the training rows when ``fit`` gets no validation rows.
    n_threads, seed : torch threads and seed (fixed, for reproducible results).
    standardize : False feeds the features unscaled (``train.normalize: none``).
    regression_loss : ``mse`` or ``ccc`` makes it a regressor (``task: regression``): ``y`` is
        (n, n_targets) floats, standardised on the training rows; :meth:`predict` gives values.
    """

    selects_on_validation = True  # validation rows pick the epoch; they are not trained on

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
        grad_clip: float = 1.0,
        lr_step: int = 0,
        loss_weights: tuple[float, float, float] | None = None,
        class_weight: str | None = None,
        val_fraction: float = 0.15,
        n_threads: int = 2,
        seed: int = 0,
        time_pool: int = 1,
        standardize: bool = True,
        regression_loss: str | None = None,
    ):
        self.fusion = fusion
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.grad_clip = grad_clip
        self.lr_step = lr_step
        self.loss_weights = loss_weights
        self.class_weight = class_weight
        self.val_fraction = val_fraction
        self.n_threads = n_threads
        self.seed = seed
        self.time_pool = time_pool
        self.standardize = standardize
        self.regression_loss = regression_loss

    def _tensors(self, blocks: dict[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Standardised inputs and (n, 1) presence masks of the modalities that have one."""
        inputs, present = {}, {}
        for m in self.modalities_:
            inputs[m] = torch.from_numpy(self.scalers_[m].transform(blocks[m]))
            if f"{m}_present" in blocks:
                present[m] = torch.from_numpy(np.asarray(blocks[f"{m}_present"], dtype=np.float32)[:, None])
        return inputs, present

    def _loss(self, model: FusionHead, x, present, y, loss_fn) -> torch.Tensor:
        """Fused-head loss, plus the weighted audio/text head losses of the multi-task learner."""
        logits = model.heads(x, present)
        if self.loss_weights is None:
            return loss_fn(logits["fused"], y)
        w_fused, *w_modality = self.loss_weights
        loss = w_fused * loss_fn(logits["fused"], y)
        for m, w in zip(("audio", "text"), w_modality):
            if m not in logits or w == 0:
                continue
            rows = present[m][:, 0].bool() if m in present else slice(None)
            if logits[m][rows].shape[0]:  # a batch may hold no clip with this modality
                loss = loss + w * loss_fn(logits[m][rows], y[rows])
        return loss

    def fit(
        self,
        blocks: dict[str, np.ndarray],
        y: np.ndarray,
        validation: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
    ) -> TorchFusionClassifier:
        """Train on ``blocks``; keep the epoch with the lowest fused-head loss on ``validation``."""
        from pipeline.evaluation import split_off_validation

        torch.manual_seed(self.seed)
        torch.set_num_threads(self.n_threads)
        self.modalities_ = modalities_for(self.fusion)
        regression = self.regression_loss is not None
        self.classes_ = None if regression else np.unique(y)
        if validation is not None and not regression:  # a clip of a class unseen in training cannot be scored
            known = np.isin(validation[1], self.classes_)
            validation = ({m: x[known] for m, x in validation[0].items()}, validation[1][known])
        if validation is None or not len(validation[1]):
            strata = np.zeros(len(y), dtype=int) if regression else None
            blocks, y, validation = split_off_validation(blocks, y, self.val_fraction, self.seed, strata)
        val_blocks, y_val = validation
        self.scalers_ = {}
        for m in self.modalities_:
            present = np.asarray(blocks.get(f"{m}_present", np.ones(len(y))), dtype=bool)
            rows = blocks[m][present] if present.any() else blocks[m]
            self.scalers_[m] = Standardizer().fit(rows) if self.standardize else Standardizer.identity(rows.shape[1:])
        x_fit, p_fit = self._tensors(blocks)
        x_val, p_val = self._tensors(val_blocks)
        if regression:
            y = np.asarray(y, dtype=np.float64)
            std = y.std(axis=0)
            self.target_mean_, self.target_scale_ = y.mean(axis=0), np.where(std > 1e-8, std, 1.0)
            self.n_outputs_ = y.shape[1]
        else:
            self.n_outputs_ = len(self.classes_)
        y_fit, y_val_t = self._target_tensors(y), self._target_tensors(y_val)
        self.input_shapes_ = {m: tuple(blocks[m].shape[1:]) for m in self.modalities_}
        for shape in self.input_shapes_.values():
            if len(shape) == 2 and min(shape[0], shape[1] // self.time_pool) < CNN_MIN_SIZE:
                pooled = f" ({shape[1] // self.time_pool} frames after time_pool {self.time_pool})"
                raise ValueError(
                    f"the cnn needs log-mels of at least {CNN_MIN_SIZE} bands x {CNN_MIN_SIZE} frames, got {shape}"
                    f"{pooled if self.time_pool > 1 else ''}; raise audio.melspec_n_mels / audio.melspec_frames"
                    f"{' or lower train.cnn.time_pool' if self.time_pool > 1 else ''}"
                )
        model = FusionHead(
            self.input_shapes_,
            self.fusion,
            self.hidden,
            self.n_outputs_,
            self.dropout,
            self.loss_weights is not None,
            self.time_pool,
        )
        if regression:
            loss_fn = REGRESSION_LOSSES[self.regression_loss]()
        else:
            weight = None
            if self.class_weight == "balanced":
                weight = torch.from_numpy(balanced_weights(y_fit.numpy(), len(self.classes_)).astype(np.float32))
            loss_fn = nn.CrossEntropyLoss(weight=weight)
        optimiser = AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(self.seed)
        best_loss, best_state, stale = float("inf"), copy.deepcopy(model.state_dict()), 0
        self.epochs_ = 0
        for _epoch in range(self.max_epochs):
            model.train()
            order = torch.randperm(len(y_fit), generator=generator)
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                optimiser.zero_grad()
                xb = {m: x[batch] for m, x in x_fit.items()}
                pb = {m: p[batch] for m, p in p_fit.items()}
                self._loss(model, xb, pb, y_fit[batch], loss_fn).backward()
                if self.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
                optimiser.step()
            self.epochs_ += 1
            if self.lr_step and self.epochs_ % self.lr_step == 0:
                optimiser.lr *= 0.5  # step decay, as torch.optim.lr_scheduler.StepLR(gamma=0.5)
            val_loss = float(loss_fn(self._logits(model, x_val, p_val), y_val_t))
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

    def _target_tensors(self, y: np.ndarray) -> torch.Tensor:
        """Class indices, or (regression) the targets standardised with the training rows' statistics."""
        if self.regression_loss is None:
            return torch.from_numpy(np.searchsorted(self.classes_, y))
        scaled = (np.asarray(y, dtype=np.float64) - self.target_mean_) / self.target_scale_
        return torch.from_numpy(scaled.astype(np.float32))

    @staticmethod
    def _logits(model: FusionHead, inputs: dict, present: dict) -> torch.Tensor:
        """Fused logits in eval mode, ``EVAL_BATCH`` clips at a time."""
        model.eval()
        n = len(next(iter(inputs.values())))
        with torch.no_grad():
            return (
                torch.cat(
                    [
                        model(
                            {m: x[s : s + EVAL_BATCH] for m, x in inputs.items()},
                            {m: p[s : s + EVAL_BATCH] for m, p in present.items()},
                        )
                        for s in range(0, n, EVAL_BATCH)
                    ]
                )
                if n
                else torch.zeros((0, len(model.classifier.bias)))
            )

    def predict_proba(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """Softmax class probabilities, columns in ``classes_`` order."""
        logits = self._logits(self.model_, *self._tensors(blocks))
        return torch.softmax(logits, dim=1).numpy().astype(np.float64)

    def predict(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """(regression) (n, n_targets) predictions on the targets' own scale."""
        outputs = self._logits(self.model_, *self._tensors(blocks)).numpy().astype(np.float64)
        return outputs * self.target_scale_ + self.target_mean_

    def save(self, folder: str | Path) -> None:
        """``learner.json`` (config), ``head.pt`` (state_dict) and ``scalers.npz``."""
        folder = Path(folder)
        config = {
            "type": "torch",
            "fusion": self.fusion,
            "hidden": self.hidden,
            "dropout": self.dropout,
            "loss_weights": None if self.loss_weights is None else list(self.loss_weights),
            "classes": None if self.classes_ is None else self.classes_.tolist(),
            "regression_loss": self.regression_loss,
            "n_outputs": self.n_outputs_,
            "input_shapes": {m: list(s) for m, s in self.input_shapes_.items()},
            "time_pool": self.time_pool,
        }
        with atomic_path(folder / "head.pt") as tmp, open(tmp, "wb") as fh:
            torch.save(self.model_.state_dict(), fh)  # a file object: the archive is not named after the temp file
        scales = {f"{m}.{k}": getattr(s, f"{k}_") for m, s in self.scalers_.items() for k in ("mean", "scale")}
        if self.regression_loss is not None:
            scales |= {"target.mean": self.target_mean_, "target.scale": self.target_scale_}
        dump_arrays(scales, folder / "scalers.npz")
        write_config(config, folder)

    @classmethod
    def load(cls, folder: str | Path) -> TorchFusionClassifier:
        """A fitted classifier from :meth:`save`'s files (tensors and arrays only, no pickle)."""
        folder = Path(folder)
        config = read_config(folder)
        loss_weights = config["loss_weights"] and tuple(config["loss_weights"])
        learner = cls(
            config["fusion"],
            hidden=config["hidden"],
            dropout=config["dropout"],
            loss_weights=loss_weights,
            time_pool=config.get("time_pool", 1),  # saved before time_pool existed: none
            regression_loss=config.get("regression_loss"),
        )
        learner.modalities_ = modalities_for(config["fusion"])
        learner.classes_ = None if config["classes"] is None else np.array(config["classes"])
        learner.n_outputs_ = config.get("n_outputs", len(config["classes"] or []))
        learner.input_shapes_ = {m: tuple(s) for m, s in config["input_shapes"].items()}
        with np.load(folder / "scalers.npz", allow_pickle=False) as arrays:
            learner.scalers_ = {}
            for m in learner.modalities_:
                scaler = Standardizer()
                scaler.mean_, scaler.scale_ = arrays[f"{m}.mean"], arrays[f"{m}.scale"]
                learner.scalers_[m] = scaler
            if learner.regression_loss is not None:
                learner.target_mean_, learner.target_scale_ = arrays["target.mean"], arrays["target.scale"]
        model = FusionHead(
            learner.input_shapes_,
            config["fusion"],
            config["hidden"],
            learner.n_outputs_,
            config["dropout"],
            loss_weights is not None,
            learner.time_pool,
        )
        model.load_state_dict(torch.load(folder / "head.pt", weights_only=True))
        learner.model_ = model.eval()
        return learner
