"""Text embedding benchmark: whole-lyrics chunked embedding against plain truncating encode.

Generates N realistic lyrics (200-600 words: verses, a repeated chorus, some LRC
timestamps and section markers), then measures in one run:

(a) plain ``SentenceTransformer.encode(texts)``, which truncates every song to the
    model's 256 word-pieces;
(b) mmer's ``embed_texts`` on the cleaned lyrics: every window of every song, in
    length-sorted batches, pooled per song;
(c) an unoptimised reference of the same chunk-and-pool definition (fp32, one text at
    a time, one window at a time), to check that (b) computes the same vectors;
(d) (b) with ``text.dtype: bfloat16`` (weights and activations in bf16).

Prints a table and writes JSON with ``--json PATH``: songs_per_s for (a), (b) and (d),
speedup_vs_plain, words and windows per song, and min_cosine of (b) and (d) against (c).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_io import emit  # noqa: E402  (bench/ is on sys.path when run as a script)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pipeline.datasets import demo  # noqa: E402
from pipeline.features.text import (  # noqa: E402
    ChunkEmbedder,
    chunk_token_ids,
    clean_text,
    embed_texts,
    load_encoder,
    pool_chunks,
)

WORDS = demo.POSITIVE_WORDS + demo.NEGATIVE_WORDS + demo.ENERGETIC_WORDS + demo.CALM_WORDS + demo.NEUTRAL_WORDS


def make_lyric(rng: np.random.Generator, n_words: int) -> str:
    """Verses of fresh lines and a chorus that comes back, LRC-style markup here and there."""

    def line() -> str:
        words = " ".join(rng.choice(WORDS, 3))
        mark = rng.choice([",", "!", "?", "...", "", ""])
        return f"{rng.choice(demo.OPENERS)}, {words}{mark} {rng.choice(demo.ENDINGS)}, oh-oh (yeah)"

    chorus = [line() for _ in range(4)]
    parts, count, verse = [], 0, 1
    while count < n_words:
        verse_lines = [line() for _ in range(6)]
        parts += [f"[Verse {verse}]", *verse_lines, "[Chorus]", *chorus]
        count += sum(len(x.split()) for x in verse_lines + chorus)
        verse += 1
    stamped = [f"[{i // 20:02d}:{i % 60:02d}.00]{x}" if rng.random() < 0.3 else x for i, x in enumerate(parts)]
    return "\n".join(stamped)


def reference_embedding(embedder: ChunkEmbedder, text: str, overlap: int) -> np.ndarray:
    """The same definition through sentence-transformers' own path: each window decoded back to
    text and passed to ``encode`` alone (fp32, one text at a time), then pooled."""
    ids = embedder.tokenize([text])[0]
    windows = chunk_token_ids(ids, embedder.window, overlap)
    pieces = [embedder.tokenizer.decode(w) for w in windows]
    vectors = np.stack([embedder.encoder.encode([p], normalize_embeddings=True)[0] for p in pieces])
    return pool_chunks(vectors, np.array([len(w) for w in windows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=64)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    raw = [make_lyric(rng, int(rng.integers(200, 601))) for _ in range(args.songs)]
    texts = [clean_text(t) for t in raw]
    _, encoder = load_encoder("default")
    embedder = ChunkEmbedder(encoder)
    encoder.encode(texts[:4], show_progress_bar=False)  # warm-up
    embed_texts(embedder, texts[:4])

    start = time.perf_counter()
    encoder.encode(texts, batch_size=32, show_progress_bar=False)
    t_plain = time.perf_counter() - start
    start = time.perf_counter()
    ours, n_tokens, n_chunks = embed_texts(embedder, texts, overlap=args.overlap)
    t_mmer = time.perf_counter() - start
    reference = np.stack([reference_embedding(embedder, t, args.overlap) for t in texts])
    bf16 = ChunkEmbedder(load_encoder("default", dtype="bfloat16")[1])
    embed_texts(bf16, texts[:4])  # warm-up
    start = time.perf_counter()
    ours_bf16, _, _ = embed_texts(bf16, texts, overlap=args.overlap)
    t_bf16 = time.perf_counter() - start

    result = {
        "songs": args.songs,
        "words_per_song": float(np.mean([len(t.split()) for t in texts])),
        "tokens_per_song": float(n_tokens.mean()),
        "windows_per_song": float(n_chunks.mean()),
        "share_of_tokens_plain_encode_reads": float(np.mean(np.minimum(n_tokens, embedder.window) / n_tokens)),
        "plain_songs_per_s": args.songs / t_plain,
        "songs_per_s": args.songs / t_mmer,
        "speedup_vs_plain": t_plain / t_mmer,
        "min_cosine": float(np.min(np.sum(ours * reference, axis=1))),
        "bfloat16_songs_per_s": args.songs / t_bf16,
        "bfloat16_speedup_vs_plain": t_plain / t_bf16,
        "bfloat16_speedup_vs_float32": t_mmer / t_bf16,
        "bfloat16_min_cosine": float(np.min(np.sum(ours_bf16 * reference, axis=1))),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
