"""Stage ``text_features``: manifest texts -> features/text.parquet (normalised embeddings)."""

from __future__ import annotations

import pandas as pd

from pipeline.features.text import clean_text, embed_texts, load_encoder
from pipeline.params import Params, as_dict
from pipeline.stages import MANIFEST, TEXT_STORE
from pipeline.store import read_store, store_metadata, text_schema, write_store

LIBRARIES = ("sentence-transformers", "transformers", "torch")


def run(params: Params) -> None:
    """Embed every clip's cleaned text with the configured sentence-transformers model."""
    manifest = read_store(MANIFEST, columns=["clip_id", "text"])
    texts = manifest["text"].fillna("").map(clean_text)
    empty = manifest.loc[texts == "", "clip_id"].tolist()
    if empty:
        raise ValueError(
            f"text_features: {len(empty)} clip(s) have no text (e.g. {empty[0]}). Every clip needs a text "
            "for now; support for clips without text is tracked in the text-store issue."
        )
    model_id, encoder = load_encoder(params.text.model, params.text.device)
    vectors = embed_texts(encoder, texts.tolist(), params.text.batch_size)
    dim = vectors.shape[1]
    meta = store_metadata(
        "text",
        as_dict(params.text),
        LIBRARIES,
        MANIFEST,
        model_id=model_id,
        embedding_dim=dim,
        max_seq_length=int(encoder.max_seq_length),
        normalized=True,
        cleaning="NFC, whitespace collapsed",
    )
    df = pd.DataFrame({"clip_id": manifest["clip_id"], "embedding": list(vectors)})
    write_store(df, TEXT_STORE, text_schema(dim), meta)
    print(f"text_features: {len(df)} clips x {dim} dims ({model_id}) -> {TEXT_STORE}")
