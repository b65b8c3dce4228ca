"""Pretrained transformers audio encoders (wav2vec2, HuBERT, WavLM, MERT, Whisper, CLAP, AST) as feature stores.

A clip is cut into windows of ``window_s`` every ``hop_s`` seconds at the model's
sampling rate (the last window is aligned to the clip's end, so every window has the
same length and the windows batch; a clip shorter than one window is one window).
Each window goes through the model's feature extractor and one forward pass with
``output_hidden_states=True``; every requested hidden layer is then pooled over all
frames of all windows (``mean``, ``std``), giving the columns ``L<k>_<stat>_<i>``
(``k``: hidden-state index, 0 = the embedding output). Whisper windows are padded to
30 s by its feature extractor; only the encoder frames that cover the window's real
samples are pooled. CLAP's audio layers are Swin feature maps, pooled over their
positions; CLAP also stores its projected, L2-normalised audio embedding (the joint
audio-text space) as ``emb_<i>``: the mean over windows, renormalised, which the
zero-shot learner (:mod:`pipeline.models.zeroshot`) scores against label prompts.

Models load from a local folder or the Hugging Face cache, never from the network
(``local_files_only``); :func:`resolve_model` names what was looked for and how to
download it. :func:`embed_clip` is the pure per-clip function the stage maps.

>>> encoder = load_encoder(EncoderConfig(model="/models/wavlm-base-plus"))
>>> record = embed_clip(y, encoder)          # {"L00_mean": (768,), ..., "n_windows": 3}
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pipeline.features import ClipError

if TYPE_CHECKING:
    import torch

EncoderKind = Literal["auto", "wav2vec2", "hubert", "wavlm", "whisper", "clap", "mert", "ast"]
KINDS = ("wav2vec2", "hubert", "wavlm", "whisper", "clap", "mert", "ast")
MODEL_TYPES = {  # config.json "model_type" -> kind
    "wav2vec2": "wav2vec2",
    "wav2vec2-conformer": "wav2vec2",
    "hubert": "hubert",
    "wavlm": "wavlm",
    "whisper": "whisper",
    "clap": "clap",
    "mert_model": "mert",
    "audio-spectrogram-transformer": "ast",
}
STATS = ("mean", "std")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
WHISPER_HOP = 160  # samples per Whisper log-mel frame; its encoder halves the frames


class EncoderError(RuntimeError):
    """A model that cannot be found or used: the message names it, where it was looked for, and the fix."""


@dataclass(frozen=True)
class EncoderConfig:
    """One ``encoders.<name>`` entry of params.yaml (see docs/encoders.md).

    model: a Hugging Face hub name (read from the local cache) or a local folder. kind:
    the architecture (``auto``: from the model's config.json). layers: hidden-state
    indices to store (``all``, ``last`` or a list; 0 = the embedding output). pooling:
    statistics over frames and windows. window_s / hop_s: analysis windows; sr: the
    model's sampling rate (null: its feature extractor's). batch_size: windows per
    forward pass. dtype: float32 | bfloat16. trust_remote_code: needed by MERT, off by
    default. prompts: CLAP only, ``{label: [texts]}`` for the zero-shot variant.
    train_layers: what the ``train_encoders`` variants read: ``avg`` (the mean of the
    stored layers), ``all`` (every stored layer side by side) or ``L<k>`` (one layer).
    """

    model: str = ""
    kind: EncoderKind = "auto"
    layers: str | list[int] = "all"
    pooling: list[str] = field(default_factory=lambda: ["mean", "std"])
    window_s: float = 10.0
    hop_s: float = 10.0
    sr: int | None = None
    batch_size: int = 4
    dtype: Literal["float32", "bfloat16"] = "float32"
    trust_remote_code: bool = False
    prompts: dict[str, list[str]] = field(default_factory=dict)
    train_layers: str = "avg"
    max_error_fraction: float = 0.05

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("encoders: every entry needs model: a hub name or a local folder")
        if isinstance(self.layers, str) and self.layers not in ("all", "last"):
            raise ValueError(f"encoders: layers must be all, last or a list of layer indices, got {self.layers!r}")
        if isinstance(self.layers, list) and (not self.layers or min(self.layers) < 0):
            raise ValueError(f"encoders: layers must be non-negative indices, got {self.layers}")
        bad = [s for s in self.pooling if s not in STATS]
        if bad or not self.pooling or len(set(self.pooling)) != len(self.pooling):
            raise ValueError(f"encoders: pooling must be distinct names from {list(STATS)}, got {self.pooling}")
        if not 0 < self.hop_s <= self.window_s:
            raise ValueError(f"encoders: need 0 < hop_s <= window_s, got hop_s {self.hop_s}, window_s {self.window_s}")
        if self.batch_size < 1:
            raise ValueError(f"encoders: batch_size must be >= 1, got {self.batch_size}")
        if self.train_layers not in ("avg", "all") and layer_index(self.train_layers) is None:
            raise ValueError(f"encoders: train_layers must be avg, all or L<k> (e.g. L6), got {self.train_layers!r}")
        if not 0 <= self.max_error_fraction <= 1:
            raise ValueError("encoders: max_error_fraction must be in [0, 1]")


def layer_index(spec: str) -> int | None:
    """The hidden-state index of a layer spec: ``L6`` -> 6; ``avg``, ``all`` or anything else -> None."""
    return int(spec[1:]) if spec[:1] == "L" and spec[1:].isdigit() else None


# -- finding the weights, offline ------------------------------------------------------------


def resolve_model(model: str) -> tuple[Path, str | None]:
    """``(local folder, revision)`` of ``model``: a folder as it is, or a hub name's snapshot in the local
    Hugging Face cache (revision = its commit hash). Never downloads."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").exists():
            raise EncoderError(f"encoder model folder {folder} has no config.json: is it a transformers model?")
        return folder.resolve(), None
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    try:
        snapshot = Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError) or not a repo name at all
        raise EncoderError(
            f"encoder model {model!r} not found: it is neither a local folder nor in the Hugging Face cache "
            f"({HF_HUB_CACHE}). mmer never downloads; on a machine with access run "
            f"`hf download {model} --local-dir models_hf/{model.split('/')[-1]}` (huggingface_hub's CLI; "
            f"`huggingface-cli download` before 1.0), copy the folder here and set model to it"
        ) from None
    return snapshot, snapshot.name


def weights_sha256(folder: str | Path) -> str:
    """sha256 over the model's weight files (name and bytes, sorted by name): the cache key of its features."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise EncoderError(f"encoder model folder {folder} holds no weight file ({', '.join(WEIGHT_SUFFIXES)})")
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode())
        with open(path, "rb") as f:
            for chunk in iter(functools.partial(f.read, 1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def model_kind(folder: str | Path, kind: str = "auto") -> str:
    """The architecture of the model in ``folder``: ``kind`` itself, or read from its config.json."""
    if kind != "auto":
        return kind
    import json

    model_type = json.loads((Path(folder) / "config.json").read_text()).get("model_type", "")
    if model_type not in MODEL_TYPES:
        raise EncoderError(
            f"{folder}/config.json: model_type {model_type!r} is not one mmer knows ({sorted(MODEL_TYPES)}); "
            f"set kind: to one of {list(KINDS)}"
        )
    return MODEL_TYPES[model_type]


# -- the loaded model --------------------------------------------------------------------------


@dataclass
class Encoder:
    """A loaded encoder: the network (Whisper: its encoder), its feature extractor and settings."""

    kind: str
    model: Any
    extractor: Any
    sr: int
    dtype: Any
    window: int  # samples per window
    hop: int  # samples between window starts
    layers: tuple[int, ...]  # hidden-state indices to pool
    pooling: tuple[str, ...]
    batch_size: int
    clap: Any = None  # the whole ClapModel (kind clap): projection and text tower


_LOADED: dict[str, Encoder] = {}


def load_encoder(config: EncoderConfig) -> Encoder:
    """Load ``config.model`` (from its local folder or cache; see :func:`resolve_model`), once per process."""
    folder, _ = resolve_model(config.model)
    key = repr((config, _weights_stamp(folder)))  # new weights in the same folder load anew
    if key not in _LOADED:
        _LOADED.clear()  # one model in memory per worker
        _LOADED[key] = _load_encoder(config)
    return _LOADED[key]


def _weights_stamp(folder: Path) -> tuple:
    """Name, size and modification time of each weight file: cheap, and changes with the weights."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def _load_encoder(config: EncoderConfig) -> Encoder:
    import torch
    import transformers

    folder, _ = resolve_model(config.model)
    kind = model_kind(folder, config.kind)
    options = dict(local_files_only=True, trust_remote_code=config.trust_remote_code)
    transformers.utils.logging.disable_progress_bar()  # one bar per worker and model load is noise in stage logs
    try:
        extractor = transformers.AutoFeatureExtractor.from_pretrained(folder, **options)
        if kind == "clap":
            network = transformers.ClapModel.from_pretrained(folder, **options)
        elif kind == "whisper":
            network = transformers.WhisperModel.from_pretrained(folder, **options).get_encoder()
        else:
            network = transformers.AutoModel.from_pretrained(folder, **options)
    except (OSError, ValueError) as exc:
        raise EncoderError(f"encoder model {config.model!r} ({folder}): cannot load it as {kind}: {exc}") from exc
    dtype = torch.bfloat16 if config.dtype == "bfloat16" else torch.float32
    network = network.to(dtype).eval()
    sr = int(config.sr or getattr(extractor, "sampling_rate", 16000))
    n_hidden = _hidden_count(network.config if kind != "clap" else network.config.audio_config, kind)
    layers = _layers(config.layers, n_hidden)
    window, hop = round(config.window_s * sr), round(config.hop_s * sr)
    limit = {"whisper": 30.0, "clap": getattr(extractor, "max_length_s", None)}.get(kind)
    if limit is not None and config.window_s > limit:
        raise EncoderError(
            f"encoder {config.model!r}: {kind} takes windows of at most {limit} s (longer input is cropped, "
            f"CLAP's at random); set window_s <= {limit}"
        )
    return Encoder(
        kind=kind,
        model=network.audio_model if kind == "clap" else network,
        extractor=extractor,
        sr=sr,
        dtype=dtype,
        window=window,
        hop=hop,
        layers=layers,
        pooling=tuple(config.pooling),
        batch_size=config.batch_size,
        clap=network if kind == "clap" else None,
    )


def _hidden_count(config: Any, kind: str) -> int:
    """How many hidden states ``output_hidden_states`` returns (embedding output + layers)."""
    if kind == "whisper":
        return config.encoder_layers + 1
    if kind == "clap":
        return len(config.depths) + 1
    return config.num_hidden_layers + 1


def _layers(spec: str | list[int], n_hidden: int) -> tuple[int, ...]:
    if spec == "all":
        return tuple(range(n_hidden))
    if spec == "last":
        return (n_hidden - 1,)
    bad = [k for k in spec if k >= n_hidden]
    if bad:
        raise EncoderError(f"encoders: layers {bad} do not exist: the model has hidden states 0..{n_hidden - 1}")
    return tuple(sorted(set(spec)))


# -- the per-clip function -----------------------------------------------------------------------


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start sample of each window: every ``hop``, plus one aligned to the clip's end when the last
    regular window stops short of it; ``[0]`` for a clip shorter than one window."""
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def forward_windows(encoder: Encoder, windows: np.ndarray) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Hidden states of a batch of equal-length windows, as (windows, frames, width) float32 tensors per
    requested layer, and CLAP's projected audio embeddings (None for other kinds)."""
    import torch

    kind, extractor = encoder.kind, encoder.extractor
    batch = list(windows)
    if kind == "clap":
        inputs = extractor(
            batch, sampling_rate=encoder.sr, return_tensors="pt", truncation="rand_trunc", padding="repeatpad"
        )
        inputs = {"input_features": inputs["input_features"]}
    else:
        inputs = dict(extractor(batch, sampling_rate=encoder.sr, return_tensors="pt"))
        inputs.pop("attention_mask", None)  # equal-length windows: nothing to mask
    inputs = {k: v.to(encoder.dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    with torch.inference_mode():
        out = encoder.model(**inputs, output_hidden_states=True)
        hidden = [_frames(out.hidden_states[k]).float() for k in encoder.layers]
        embedding = None
        if kind == "clap":
            projected = encoder.clap.audio_projection(out.pooler_output)
            embedding = torch.nn.functional.normalize(projected.float(), dim=-1)
    if kind == "whisper":  # keep the frames that cover real samples (the rest is the 30-s padding)
        keep = -(-windows.shape[1] // (2 * WHISPER_HOP))
        hidden = [h[:, :keep] for h in hidden]
    return hidden, embedding


def _frames(state: torch.Tensor) -> torch.Tensor:
    """(batch, frames, width) view of a hidden state; a (batch, channels, H, W) feature map is flattened."""
    return state.flatten(2).transpose(1, 2) if state.dim() == 4 else state


def embed_clip(y: np.ndarray, encoder: Encoder) -> dict[str, Any]:
    """Pooled hidden states of one clip at the encoder's sampling rate (a pure per-clip function).

    Returns ``L<k>_<stat>`` (width,) float32 arrays for each requested layer and statistic,
    ``n_windows``, and ``emb`` (CLAP: the normalised mean of the windows' projected embeddings).
    """
    y = np.asarray(y, dtype=np.float32)
    if len(y) == 0:
        raise ClipError("empty waveform: nothing to embed")
    if not np.isfinite(y).all():
        raise ClipError("waveform contains NaN or inf samples")
    starts = window_starts(len(y), encoder.window, encoder.hop)
    length = min(encoder.window, len(y))
    sums: dict[int, np.ndarray] = {}
    squares: dict[int, np.ndarray] = {}
    n_frames: dict[int, int] = {}  # per layer: CLAP's stages have fewer positions than its patch embedding
    embeddings = []
    for first in range(0, len(starts), encoder.batch_size):
        windows = np.stack([y[s : s + length] for s in starts[first : first + encoder.batch_size]])
        hidden, embedding = forward_windows(encoder, windows)
        for k, h in zip(encoder.layers, hidden):
            frames = h.reshape(-1, h.shape[-1]).double().numpy()
            sums[k] = sums.get(k, 0) + frames.sum(axis=0)
            squares[k] = squares.get(k, 0) + (frames**2).sum(axis=0)
            n_frames[k] = n_frames.get(k, 0) + len(frames)
        if embedding is not None:
            embeddings.append(embedding.double().numpy())
    record: dict[str, Any] = {"n_windows": np.int64(len(starts))}
    for k in encoder.layers:
        mean = sums[k] / n_frames[k]
        stats = {"mean": mean, "std": np.sqrt(np.maximum(squares[k] / n_frames[k] - mean**2, 0.0))}
        for stat in encoder.pooling:
            record[f"L{k:02d}_{stat}"] = stats[stat].astype(np.float32)
    if embeddings:
        mean_embedding = np.concatenate(embeddings).mean(axis=0)
        record["emb"] = (mean_embedding / max(np.linalg.norm(mean_embedding), 1e-12)).astype(np.float32)
    return record


def feature_names(record: dict[str, Any]) -> list[str]:
    """Column names of a record's arrays, ``L<k>_<stat>_<i>`` and ``emb_<i>``, in store order."""
    return [f"{key}_{i:04d}" for key, value in record.items() if key != "n_windows" for i in range(len(value))]


def record_row(record: dict[str, Any]) -> np.ndarray:
    """A record's arrays side by side, in :func:`feature_names` order."""
    return np.concatenate([value for key, value in record.items() if key != "n_windows"])


# -- CLAP prompts ---------------------------------------------------------------------------------


def prompt_embeddings(encoder: Encoder, prompts: dict[str, list[str]], folder: str | Path) -> dict[str, list[float]]:
    """Per label: the normalised mean of its prompts' normalised CLAP text embeddings."""
    import torch
    import transformers

    if encoder.clap is None:
        raise EncoderError(f"encoders: prompts need a CLAP model (kind clap); this one is {encoder.kind}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    out = {}
    for label, texts in prompts.items():
        if not texts:
            raise EncoderError(f"encoders: prompts.{label} is empty; give it at least one text")
        tokens = tokenizer(list(texts), padding=True, return_tensors="pt")
        with torch.inference_mode():
            features = encoder.clap.get_text_features(**tokens)
            features = getattr(features, "pooler_output", features)
            features = torch.nn.functional.normalize(features.float(), dim=-1).mean(dim=0)
        out[label] = (features / features.norm().clamp_min(1e-12)).double().tolist()
    return out


def logit_scale(encoder: Encoder) -> float:
    """CLAP's learned audio-text temperature (``exp(logit_scale_a)``)."""
    return float(encoder.clap.logit_scale_a.exp()) if encoder.clap is not None else 1.0


def n_threads_env() -> int:
    """Torch threads per worker: ``MMER_ENCODER_THREADS`` or 1 (the executor runs one job per core)."""
    return int(os.environ.get("MMER_ENCODER_THREADS", "1"))
