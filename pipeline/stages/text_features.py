"""Stage ``text_features``: manifest texts -> features/text.parquet (whole-text embeddings)."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pandas as pd

from pipeline.features import text as text_module
from pipeline.features.text import (
    ChunkEmbedder,
    clean_text,
    embed_texts,
    load_encoder,
    model_fingerprint,
    resolve_model,
)
from pipeline.params import Params
from pipeline.stages import MANIFEST, text_set_store
from pipeline.stages.clips import make_cache, write_feature_store
from pipeline.store import read_store, store_metadata, text_schema

LIBRARIES = ("sentence-transformers", "transformers", "tokenizers", "torch")


def run(params: Params, name: str = "default") -> None:
    """Clean, chunk, embed and pool every clip's text; clips without text get a null embedding.

    ``name``: ``default`` (features/text.parquet, ``text``'s model) or a ``text_encoders`` entry
    (features/text_<name>.parquet). Identical cleaned texts are embedded once; embeddings are
    cached by (cleaned text, model, window, overlap, pooling, code).
    """
    if name != "default" and name not in params.text_encoders:
        raise ValueError(
            f"text encoder {name!r} is not in params.yaml text_encoders (defined: {sorted(params.text_encoders)})"
        )
    config = params.text_encoder_config(name)
    store_path, store_name = text_set_store(name), "text" if name == "default" else f"text_{name}"
    manifest = read_store(MANIFEST, columns=["clip_id", "text"])
    cleaned = [
        clean_text(t, config.strip_timestamps, config.strip_sections, config.lowercase) for t in manifest["text"]
    ]
    if not any(cleaned):  # an audio-only corpus: nothing to embed, no model to load
        write_without_text(params, manifest["clip_id"], config, store_path, store_name)
        return
    model_id, encoder = load_encoder(
        config.model, config.device, config.dtype, config.encoder_kind, config.token_pooling
    )
    embedder = ChunkEmbedder(encoder)
    dim = encoder.get_embedding_dimension()
    settings = {
        "model_id": model_id,
        "weights": model_fingerprint(config.model, resolve_model(config.model)[1]),
        "window": embedder.window,
        "overlap": config.overlap,
        "pooling": config.pooling,
        "dtype": config.dtype,
        **(
            {"encoder_kind": "transformers", "token_pooling": config.token_pooling}
            if config.encoder_kind == "transformers"
            else {}
        ),
    }
    cache = make_cache(params, "text", settings, [text_module, sys.modules[__name__]], LIBRARIES)

    unique = sorted({text for text in cleaned if text})
    keys = {text: cache.key_of(text.encode()) for text in unique} if cache else {}
    results: dict[str, dict[str, np.ndarray]] = {}
    for text in unique:
        hit = cache.load(keys[text]) if cache else None
        if hit is not None:
            results[text] = hit
    todo = [text for text in unique if text not in results]
    vectors, n_tokens, n_chunks = embed_texts(embedder, todo, config.overlap, config.pooling, config.batch_size)
    for row, text in enumerate(todo):
        results[text] = {"embedding": vectors[row], "n_tokens": n_tokens[row], "n_chunks": n_chunks[row]}
        if cache:
            cache.save(keys[text], results[text])

    usable = {text: r for text, r in results.items() if int(r["n_chunks"]) > 0}  # no word-pieces = no text
    found = [usable.get(text) for text in cleaned]
    df = pd.DataFrame(
        {
            "clip_id": manifest["clip_id"],
            "has_text": [r is not None for r in found],
            "n_tokens": [0 if r is None else int(r["n_tokens"]) for r in found],
            "n_chunks": [0 if r is None else int(r["n_chunks"]) for r in found],
            "embedding": [None if r is None else r["embedding"] for r in found],
        }
    )
    meta = store_metadata(
        store_name,
        dataclasses.asdict(config),
        LIBRARIES,
        MANIFEST,
        model_id=model_id,
        embedding_dim=dim,
        max_seq_length=int(encoder.max_seq_length),
        window_tokens=embedder.window,
        normalized=True,
        n_without_text=int((~df["has_text"]).sum()),
    )
    write_feature_store(params, df, store_path, text_schema(dim), meta)
    stage = "text_features" if name == "default" else f"text_encoder_features@{name}"
    print(
        f"{stage}: {len(df)} clips ({meta['n_without_text']} without text) x {dim} dims ({model_id}); "
        f"{len(unique)} distinct texts: {len(todo)} embedded, {len(unique) - len(todo)} from cache; "
        f"{int(df['n_chunks'].sum())} windows of <= {embedder.window} tokens -> {store_path}"
    )


def write_without_text(params: Params, clip_ids: pd.Series, config, store_path, store_name: str = "text") -> None:
    """The store of a corpus where no clip has text: every embedding null, the encoder never loaded.

    The embedding column keeps a placeholder width of 1 (Arrow needs a positive fixed
    size); with ``has_text`` false everywhere, no value of it is ever read.
    """
    n = len(clip_ids)
    df = pd.DataFrame(
        {
            "clip_id": clip_ids,
            "has_text": [False] * n,
            "n_tokens": [0] * n,
            "n_chunks": [0] * n,
            "embedding": [None] * n,
        }
    )
    meta = store_metadata(
        store_name, dataclasses.asdict(config), LIBRARIES, MANIFEST, model_id=None, embedding_dim=None, n_without_text=n
    )
    write_feature_store(params, df, store_path, text_schema(1), meta)
    print(f"text_features: {n} clips, none with text (an audio-only corpus): no model loaded -> {store_path}")
