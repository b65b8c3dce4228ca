"""musicnn (Pons & Serra 2019) in PyTorch, with the trained weights of the PyPI wheel.

The wheel ``musicnn==0.1.0`` (ISC licence, © Music Technology Group, Universitat
Pompeu Fabra 2019) ships TensorFlow-1 checkpoints of taggers trained on
MagnaTagATune (``MTT_musicnn``) and Million Song Dataset previews (``MSD_musicnn``).
Installed with ``pip install --no-deps musicnn==0.1.0``; the PyTorch network and its
weights live in :mod:`pipeline.features.musicnn_net`, which imports this module's
settings. This module holds the settings, the preprocessing and the per-clip
function, imports no other musicnn module, and imports torch only when it runs.

Preprocessing follows the original extractor: 16 kHz mono, 96-band mel power
spectrogram (n_fft 512, hop 256, librosa's slaney mel; ``reflect`` edge padding as
the librosa of its time), ``log10(10000 · S + 1)``, cut into non-overlapping 3-s
patches of 187 frames. Two defects of the original are fixed: its float16 log-mel
overflows to inf (and NaN inside the network) when a mel bin exceeds about 6.55,
so mmer computes in float32; clips shorter than 3 s crash it, so mmer repeats their
spectrogram frames until they fill one patch.

>>> from pipeline.features.musicnn_net import load_musicnn
>>> model = load_musicnn("MSD_musicnn")
>>> record = extract_musicnn(y_16k, model)   # pooled (1506,), penultimate (200,), tags (50,)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from pipeline.features import ClipError

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # 3 s: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
MusicnnModel = Literal["MSD_musicnn", "MTT_musicnn"]
MODELS = get_args(MusicnnModel)

MSD_TAG_LIST = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient",
    "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening",
    "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House",
    "happy",
)  # fmt: skip
MTT_TAG_LIST = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop",
    "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
    "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip


def tag_names(model: str) -> tuple[str, ...]:
    """The 50 tags of ``model``, in output order."""
    return MSD_TAG_LIST if model.startswith("MSD") else MTT_TAG_LIST


def log_mel(y: np.ndarray) -> np.ndarray:
    """(frames, 96) float32 ``log10(10000 · mel power + 1)`` of a 16-kHz waveform."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, pad_mode="reflect"
    ).astype(np.float32)
    return np.log10(10000 * mel + 1).T


def patches(log_mel_frames: np.ndarray) -> np.ndarray:
    """Non-overlapping (n, 187, 96) patches; a spectrogram shorter than one patch is repeat-padded."""
    n_frames = len(log_mel_frames)
    if n_frames == 0:
        raise ClipError("no spectrogram frames for musicnn")
    if n_frames < PATCH_FRAMES:
        log_mel_frames = np.tile(log_mel_frames, (-(-PATCH_FRAMES // n_frames), 1))[:PATCH_FRAMES]
    n = len(log_mel_frames) // PATCH_FRAMES
    return log_mel_frames[: n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, N_MELS)


@dataclass(frozen=True)
class MusicnnConfig:
    """musicnn extraction settings (``musicnn`` in params.yaml): which model, patches per forward pass."""

    model: MusicnnModel = "MSD_musicnn"
    batch_patches: int = 32

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"musicnn.model: {self.model!r} is not one of {list(MODELS)}")
        if self.batch_patches < 1:
            raise ValueError(f"musicnn.batch_patches must be >= 1, got {self.batch_patches}")


def musicnn_feature_names(model: str = "MSD_musicnn") -> dict[str, list[str]]:
    """Column names of each layer group in the store: pooled, penultimate, tags."""
    n_pooled = 753
    pooled = [f"pool_mean_{i:03d}" for i in range(n_pooled)] + [f"pool_max_{i:03d}" for i in range(n_pooled)]
    return {
        "pooled": pooled,
        "penultimate": [f"penultimate_{i:03d}" for i in range(200)],
        "tags": [f"tag_{t}" for t in tag_names(model)],
    }


def extract_musicnn(
    y: np.ndarray, model: Callable[[torch.Tensor], dict[str, torch.Tensor]], batch_patches: int = 32
) -> dict[str, np.ndarray]:
    """Patch-averaged musicnn outputs of a 16-kHz waveform (a pure per-clip function).

    ``model``: the network (:func:`pipeline.features.musicnn_net.load_musicnn`). Returns
    ``pooled``: mean-pooled then max-pooled mid-end features (1506); ``penultimate``
    (200); ``tags``: the 50 tag probabilities; ``n_patches``.
    """
    import torch

    if not np.isfinite(y).all():
        raise ClipError("waveform contains NaN or inf samples")
    x = torch.from_numpy(patches(log_mel(np.asarray(y, dtype=np.float32))))
    sums: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for start in range(0, len(x), batch_patches):
            out = model(x[start : start + batch_patches])
            for key, value in out.items():
                sums[key] = sums.get(key, 0) + value.sum(dim=0)
    n = len(x)
    return {
        "pooled": (torch.cat([sums["mean_pool"], sums["max_pool"]]) / n).numpy().astype(np.float32),
        "penultimate": (sums["penultimate"] / n).numpy().astype(np.float32),
        "tags": (sums["tags"] / n).numpy().astype(np.float32),
        "n_patches": np.int64(n),
    }
