"""Stage ``text_features``: manifest texts -> features/text.parquet (whole-text embeddings)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.executor import ClipCache, fingerprint
from pipeline.features.text import (
    ChunkEmbedder,
    clean_text,
    embed_texts,
    load_encoder,
    model_fingerprint,
    resolve_model,
)
from pipeline.params import Params
from pipeline.stages import MANIFEST, TEXT_STORE
from pipeline.store import library_versions, read_store, store_metadata, text_schema, write_store

LIBRARIES = ("sentence-transformers", "transformers", "tokenizers", "torch")


def run(params: Params) -> None:
    """Clean, chunk, embed and pool every clip's text; clips without text get a null embedding."""
    config = params.text.feature_config()
    manifest = read_store(MANIFEST, columns=["clip_id", "text"])
    cleaned = [
        clean_text(t, config.strip_timestamps, config.strip_sections, config.lowercase) for t in manifest["text"]
    ]
    with_text = [i for i, text in enumerate(cleaned) if text]
    model_id, encoder = load_encoder(config.model, config.device)
    embedder = ChunkEmbedder(encoder)
    dim = encoder.get_embedding_dimension()

    cache = None
    if params.cache.enabled:
        key = fingerprint(
            "text",
            model_id,
            model_fingerprint(config.model, resolve_model(config.model)[1]),
            embedder.window,
            config.overlap,
            config.pooling,
            library_versions(LIBRARIES),
        )
        cache = ClipCache(Path(params.cache.dir).resolve() / "text", key)
    results: dict[int, dict[str, np.ndarray]] = {}
    keys = {i: cache.key_of(cleaned[i].encode()) for i in with_text} if cache else {}
    for i in with_text:
        hit = cache.load(keys[i]) if cache else None
        if hit is not None:
            results[i] = hit
    todo = [i for i in with_text if i not in results]
    vectors, n_tokens, n_chunks = embed_texts(
        embedder, [cleaned[i] for i in todo], config.overlap, config.pooling, config.batch_size
    )
    for row, i in enumerate(todo):
        results[i] = {"embedding": vectors[row], "n_tokens": n_tokens[row], "n_chunks": n_chunks[row]}
        if cache:
            cache.save(keys[i], results[i])

    df = pd.DataFrame(
        {
            "clip_id": manifest["clip_id"],
            "has_text": [i in results for i in range(len(manifest))],
            "n_tokens": [int(results[i]["n_tokens"]) if i in results else 0 for i in range(len(manifest))],
            "n_chunks": [int(results[i]["n_chunks"]) if i in results else 0 for i in range(len(manifest))],
            "embedding": [results[i]["embedding"] if i in results else None for i in range(len(manifest))],
        }
    )
    meta = store_metadata(
        "text",
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
    write_store(df, TEXT_STORE, text_schema(dim), meta)
    print(
        f"text_features: {len(df)} clips ({meta['n_without_text']} without text) x {dim} dims ({model_id}); "
        f"{len(todo)} embedded, {len(with_text) - len(todo)} from cache; "
        f"{int(df['n_chunks'].sum())} windows of <= {embedder.window} tokens -> {TEXT_STORE}"
    )
