"""The musicnn network in PyTorch, loaded from the wheel's TensorFlow checkpoint.

A port of ``build_musicnn`` in the original ``musicnn/models.py`` (Pons & Serra 2019;
© Music Technology Group, Universitat Pompeu Fabra, ISC licence): the same layers, in
the same order, with TensorFlow's padding, batch-norm epsilon and flatten order, so
the checkpoint's tensors load one to one (``load_state_dict(strict=True)``). The
checkpoint files are located with ``importlib.util.find_spec`` (the wheel's modules
import TensorFlow, so none is imported) and read with
:mod:`pipeline.features.tf_checkpoint`.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pipeline.features.musicnn import MODELS, N_MELS
from pipeline.features.tf_checkpoint import CheckpointError, read_checkpoint

BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default
INSTALL_HINT = "install the weights with: pip install --no-deps musicnn==0.1.0 (make does this)"


class MusicnnError(RuntimeError):
    """The musicnn weights are missing or unreadable."""


def weights_dir(model: str) -> Path:
    """Folder of ``model``'s checkpoint inside the installed ``musicnn`` wheel (not imported)."""
    if model not in MODELS:
        raise ValueError(f"musicnn.model: {model!r} is not one of {list(MODELS)}")
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise MusicnnError(f"the musicnn weights are not installed; {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / model
    if not (folder / ".index").is_file():
        raise MusicnnError(f"{folder}: no checkpoint index (.index) in the musicnn package; {INSTALL_HINT}")
    return folder


def weights_sha256(model: str) -> dict[str, str]:
    """sha256 of each checkpoint file (recorded in the store's metadata)."""
    folder = weights_dir(model)
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in (".index", ".data-00000-of-00001")
    }


def _same_pad(kernel: int) -> tuple[int, int]:
    """TensorFlow's "same" padding for stride 1: the odd extra pad goes at the end."""
    return (kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2


class Musicnn(nn.Module):
    """musicnn: timbral + temporal front end, residual 1-D mid end, pooled dense back end.

    Input (batch, 187, 96) log-mel patches; output a dict with ``tags`` (sigmoid),
    ``penultimate`` (200), ``mean_pool`` and ``max_pool`` (753 each).
    """

    def __init__(self, n_mels: int = N_MELS, n_tags: int = 50, midend: int = 64, backend: int = 200):
        super().__init__()
        timbral_filters, temporal_filters = int(1.6 * 128), int(1.6 * 32)
        self.input_bn = nn.BatchNorm2d(1, eps=BN_EPS)
        self.timbral = nn.ModuleList(
            [nn.Conv2d(1, timbral_filters, (7, int(f * n_mels))) for f in (0.4, 0.7)]
        )  # (time, frequency) kernels 7x38 and 7x67
        self.temporal = nn.ModuleList([nn.Conv2d(1, temporal_filters, (k, 1)) for k in (128, 64, 32)])
        self.front_bn = nn.ModuleList(
            [nn.BatchNorm2d(timbral_filters, eps=BN_EPS) for _ in range(2)]
            + [nn.BatchNorm2d(temporal_filters, eps=BN_EPS) for _ in range(3)]
        )
        front = 2 * timbral_filters + 3 * temporal_filters  # 561
        self.mid = nn.ModuleList([nn.Conv1d(n_in, midend, 7) for n_in in (front, midend, midend)])
        self.mid_bn = nn.ModuleList([nn.BatchNorm1d(midend, eps=BN_EPS) for _ in range(3)])
        self.n_pooled = front + 3 * midend  # 753
        self.pool_bn = nn.BatchNorm1d(2 * self.n_pooled, eps=BN_EPS)
        self.dense = nn.Linear(2 * self.n_pooled, backend)
        self.dense_bn = nn.BatchNorm1d(backend, eps=BN_EPS)
        self.out = nn.Linear(backend, n_tags)

    def forward(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.input_bn(patches.unsqueeze(1))  # (batch, 1, time, mel)
        front = []
        for conv, bn in zip(self.timbral, self.front_bn[:2]):
            h = bn(F.relu(conv(F.pad(x, (0, 0, 3, 3)))))
            front.append(h.amax(dim=3))  # max over frequency -> (batch, filters, time)
        for conv, bn in zip(self.temporal, self.front_bn[2:]):
            h = bn(F.relu(conv(F.pad(x, (0, 0, *_same_pad(conv.kernel_size[0]))))))
            front.append(h.amax(dim=3))
        layers = [torch.cat(front, dim=1)]  # (batch, 561, time)
        h = layers[0]
        for i, (conv, bn) in enumerate(zip(self.mid, self.mid_bn)):
            out = bn(F.relu(conv(F.pad(h, (3, 3)))))
            h = out if i == 0 else out + h  # residual connections after the first layer
            layers.append(h)
        features = torch.cat(layers, dim=1)  # (batch, 753, time)
        max_pool, mean_pool = features.amax(dim=2), features.mean(dim=2)
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # TF flattens (753, 2): max, mean interleaved
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        return {
            "tags": torch.sigmoid(self.out(penultimate)),
            "penultimate": penultimate,
            "mean_pool": mean_pool,
            "max_pool": max_pool,
        }


def _tf_name(layer: str, index: int) -> str:
    """TF1's automatic layer names: ``conv2d``, ``conv2d_1``, ..."""
    return layer if index == 0 else f"{layer}_{index}"


def state_dict_from_checkpoint(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under :class:`Musicnn`'s parameter names, laid out for torch.

    Raises :class:`CheckpointError` when a tensor is missing or left over.
    """
    convs = ["timbral.0", "timbral.1", "temporal.0", "temporal.1", "temporal.2", "mid.0", "mid.1", "mid.2"]
    norms = ["input_bn", *(f"front_bn.{i}" for i in range(5)), *(f"mid_bn.{i}" for i in range(3))]
    norms += ["pool_bn", "dense_bn"]
    state: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def take(name: str) -> np.ndarray:
        if name not in weights:
            raise CheckpointError(f"tensor {name} missing from the musicnn checkpoint")
        used.add(name)
        return weights[name]

    for i, module in enumerate(convs):  # graph order = TF's numbering
        kernel = take(f"{_tf_name('conv2d', i)}/kernel")
        if module.startswith("mid"):  # a (7, channels) kernel over a (time, channels, 1) map: a Conv1d
            state[f"{module}.weight"] = kernel[:, :, 0, :].transpose(2, 1, 0)
        else:  # (height, width, in, out) -> (out, in, height, width)
            state[f"{module}.weight"] = kernel.transpose(3, 2, 0, 1)
        state[f"{module}.bias"] = take(f"{_tf_name('conv2d', i)}/bias")
    for i, module in enumerate(norms):
        tf = _tf_name("batch_normalization", i)
        state[f"{module}.weight"], state[f"{module}.bias"] = take(f"{tf}/gamma"), take(f"{tf}/beta")
        state[f"{module}.running_mean"] = take(f"{tf}/moving_mean")
        state[f"{module}.running_var"] = take(f"{tf}/moving_variance")
    for module, tf in (("dense", "dense"), ("out", "dense_1")):
        state[f"{module}.weight"], state[f"{module}.bias"] = take(f"{tf}/kernel").T, take(f"{tf}/bias")
    left_over = sorted(set(weights) - used)
    if left_over:
        raise CheckpointError(f"musicnn checkpoint holds tensors the port does not use: {left_over[:5]}")
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    tensors.update({f"{m}.num_batches_tracked": torch.tensor(0) for m in norms})
    return tensors


def from_checkpoint(weights: dict[str, np.ndarray]) -> Musicnn:
    """A :class:`Musicnn` in eval mode holding ``weights`` (TF layer names; shapes checked strictly)."""
    state = state_dict_from_checkpoint(weights)
    model = Musicnn(n_tags=state["out.bias"].shape[0])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # a shape mismatch
        raise CheckpointError(f"musicnn checkpoint does not fit the port: {exc}") from exc
    return model.eval()


@lru_cache(maxsize=2)
def load_musicnn(model: str = "MSD_musicnn") -> Musicnn:
    """The trained ``model`` from the installed wheel (cached per process)."""
    folder = weights_dir(model)
    return from_checkpoint(read_checkpoint(str(folder) + "/"))
