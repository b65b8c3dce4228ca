"""Each stage on the tiny demo project (40 clips of 2 s), run in-process."""

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.executor import StageFailed
from pipeline.features.audio import feature_names
from pipeline.params import load_params
from pipeline.stages import (
    AUDIO_ERRORS,
    AUDIO_STORE,
    ESSENTIA_ERRORS,
    ESSENTIA_STORE,
    MANIFEST,
    MELSPEC_STORE,
    TEXT_STORE,
    audio_features,
    essentia_features,
    prepare,
    report,
    text_features,
    train,
)
from pipeline.store import file_sha256, read_matrix, read_metadata, read_store, read_tensor, write_store
from tests.conftest import write_params


def test_manifest_store(project):
    manifest = read_store(MANIFEST)
    assert list(manifest.columns[:6]) == ["clip_id", "audio_path", "text", "label", "group", "split"]
    assert len(manifest) == 40 and manifest["label"].value_counts().tolist() == [10] * 4
    assert {"valence", "arousal", "tempo_bpm"} <= set(manifest.columns)  # generator's draws kept
    meta = read_metadata(MANIFEST)
    assert meta["store"] == "manifest" and meta["label_counts"] == {"Q1": 10, "Q2": 10, "Q3": 10, "Q4": 10}


def test_audio_store_is_complete_and_self_describing(project):
    audio = read_store(AUDIO_STORE)
    params = load_params()
    names = feature_names(params.audio.feature_config())
    assert list(audio.columns) == ["clip_id", *names]
    assert len(audio) == 40 and np.isfinite(audio[names].to_numpy()).all()
    meta = read_metadata(AUDIO_STORE)
    assert meta["feature_names"] == names
    assert meta["params"]["n_mfcc"] == 20 and meta["versions"]["librosa"].startswith("0.")
    assert meta["manifest_sha256"] == file_sha256(MANIFEST)
    assert len(read_store(AUDIO_ERRORS)) == 0


def test_melspec_store_reads_as_one_array(project):
    ids, mels, n_valid = read_tensor(MELSPEC_STORE)
    assert ids.tolist() == read_store(AUDIO_STORE)["clip_id"].tolist()
    assert mels.shape == (40, 96, 64) and mels.dtype == np.float32
    assert (n_valid == 64).all()  # 2-s clips fill 64 frames (1.5 s)
    assert read_metadata(MELSPEC_STORE)["store"] == "melspec"


def test_essentia_store(project):
    music = read_store(ESSENTIA_STORE)
    assert len(music) == 40 and set(music["scale"]) <= {"major", "minor"}
    assert np.isfinite(music.select_dtypes("number").to_numpy()).all()
    assert music["clip_id"].tolist() == read_store(MANIFEST)["clip_id"].tolist()
    assert len(read_store(ESSENTIA_ERRORS)) == 0
    write_params(project, {"essentia": {"enabled": False}})
    essentia_features.run(load_params())
    assert len(read_store(ESSENTIA_STORE)) == 0 and read_metadata(ESSENTIA_STORE)["params"]["enabled"] is False


def test_audio_sets_concatenate_stores(project):
    write_params(project, {"train": {"audio_sets": ["descriptors", "essentia"]}})
    train.run(load_params(), "logreg", "audio")
    metrics = json.loads((project / "models" / "logreg-audio" / "metrics.json").read_text())
    assert metrics["feature_dims"] == {"audio": 1120 + 39} and metrics["audio_sets"] == ["descriptors", "essentia"]


def test_cache_recomputes_only_new_clips(project, capsys):
    # the session fixture filled the cache for all 40 clips; drop 10 from the manifest, then add them back
    manifest = read_store(MANIFEST)
    schema = pq.read_schema(MANIFEST).remove_metadata()
    cache_dir = project / ".mmer_cache" / "audio"
    assert len(list(cache_dir.rglob("*.npz"))) == 40
    shutil.rmtree(cache_dir)
    write_store(manifest.head(30), MANIFEST, schema, read_metadata(MANIFEST))
    audio_features.run(load_params())
    assert "30 computed, 0 from cache" in capsys.readouterr().out
    write_store(manifest, MANIFEST, schema, read_metadata(MANIFEST))
    audio_features.run(load_params())
    assert "10 computed, 30 from cache" in capsys.readouterr().out
    full = read_store(AUDIO_STORE)
    assert full["clip_id"].tolist() == manifest["clip_id"].tolist()


def test_cached_rows_equal_fresh_rows_and_params_invalidate(project, capsys):
    cached_run = read_store(AUDIO_STORE)  # the fixture's second copy: built fresh, now rebuilt from cache
    audio_features.run(load_params())
    assert "0 computed, 40 from cache" in capsys.readouterr().out
    pd.testing.assert_frame_equal(read_store(AUDIO_STORE), cached_run)
    write_params(project, {"audio": {"n_mfcc": 13}})
    audio_features.run(load_params())
    assert "40 computed, 0 from cache" in capsys.readouterr().out
    assert "mfcc_12_mean" in read_store(AUDIO_STORE).columns and "mfcc_13_mean" not in read_store(AUDIO_STORE).columns


def test_text_store_holds_unit_vectors(project):
    ids, vectors, present = read_matrix(TEXT_STORE)
    assert len(ids) == 40 and vectors.shape == (40, 384) and present.all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    store = read_store(TEXT_STORE, columns=["n_tokens", "n_chunks"])
    assert (store["n_tokens"] > 10).all() and (store["n_chunks"] == 1).all()  # demo lyrics fit one window
    meta = read_metadata(TEXT_STORE)
    assert meta["model_id"] == "sentence-transformers/all-MiniLM-L6-v2" and meta["embedding_dim"] == 384
    assert meta["max_seq_length"] == 256 and meta["window_tokens"] == 254 and meta["params"]["pooling"] == "mean"
    assert meta["n_without_text"] == 0 and "tokenizers" in meta["versions"]


def test_clips_without_text_train_with_a_missing_modality(project, capsys):
    manifest = read_store(MANIFEST)
    manifest.loc[[0, 5, 9], "text"] = None
    write_store(manifest, MANIFEST, pq.read_schema(MANIFEST).remove_metadata(), read_metadata(MANIFEST))
    text_features.run(load_params())
    out = capsys.readouterr().out
    assert "(3 without text)" in out and "0 embedded, 37 from cache" in out  # cache keyed by text content
    store = read_store(TEXT_STORE)
    assert store["has_text"].tolist().count(False) == 3
    assert store.loc[~store["has_text"], "embedding"].isna().all()
    for model in ("mlp", "lgbm"):
        train.run(load_params(), model, "mean")
        metrics = json.loads((project / "models" / f"{model}-mean" / "metrics.json").read_text())
        assert metrics["n_clips"] == 40 and metrics["n_without_text"] == 3
    report.run()
    assert "3 clips without text" in (project / "reports" / "leaderboard.md").read_text()


def test_tfidf_text_representation(project):
    write_params(project, {"text": {"representation": "tfidf", "tfidf_dim": 16}})
    train.run(load_params(), "logreg", "text")
    metrics = json.loads((project / "models" / "logreg-text" / "metrics.json").read_text())
    assert metrics["text_representation"] == "tfidf" and metrics["feature_dims"] == {}
    assert metrics["summary"]["auc_roc_macro"]["mean"] > 0.5


def test_corrupt_clip_is_recorded_not_fatal(project):
    bad = project / "data" / "demo" / "audio" / "demo_00003.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    audio_features.run(load_params())  # 1 of 40 = 2.5% is within the default 5% budget
    errors = read_store(AUDIO_ERRORS)
    assert errors["clip_id"].tolist() == ["demo_00003"] and errors["stage"].tolist() == ["decode"]
    assert "demo_00003.wav: cannot decode audio" in errors["message"][0]
    assert len(read_store(AUDIO_STORE)) == 39
    for fusion in ("text", "concat"):
        train.run(load_params(), "logreg", fusion)
        metrics = json.loads((project / "models" / f"logreg-{fusion}" / "metrics.json").read_text())
        assert metrics["n_clips"] == 39 and metrics["n_excluded"] == 1
    # text-only is scored on the same clips and folds as the fused variant
    text_oof = read_store(project / "models" / "logreg-text" / "oof.parquet")
    concat_oof = read_store(project / "models" / "logreg-concat" / "oof.parquet")
    pd.testing.assert_frame_equal(text_oof[["clip_id", "fold"]], concat_oof[["clip_id", "fold"]])


def test_error_budget_stops_the_stage_but_keeps_the_errors_table(project):
    (project / "data" / "demo" / "audio" / "demo_00003.wav").write_bytes(b"")
    write_params(project, {"audio": {"max_error_fraction": 0.01}})
    with pytest.raises(
        StageFailed, match="1 of 40 clips failed \\(2.5% > max_error_fraction 1.0%\\).*decode/AudioDecodeError"
    ):
        audio_features.run(load_params())
    assert read_store(AUDIO_ERRORS)["clip_id"].tolist() == ["demo_00003"]


def test_prepare_refuses_a_missing_file_before_heavy_work(project):
    shutil.rmtree(project / "features")
    (project / "data" / "demo" / "audio" / "demo_00007.wav").unlink()
    with pytest.raises(ValueError, match="1 audio file\\(s\\) not found, e.g. .*demo_00007.wav"):
        prepare.run(load_params())


@pytest.mark.parametrize(
    ("model", "fusion"),
    [("lgbm", "mean"), ("mlp", "mean"), ("logreg", "late"), ("multitask", "concat"), ("cnn", "mean")],
)
def test_train_writes_oof_metrics_and_loadable_fold_models(project, model, fusion):
    from pipeline.models import load_learner
    from pipeline.stages.train import load_blocks

    train.run(load_params(), model, fusion)
    out = project / "models" / f"{model}-{fusion}"
    oof = read_store(out / "oof.parquet")
    assert len(oof) == 40 and sorted(oof["fold"].unique()) == [0, 1, 2, 3] and set(oof["repeat"]) == {0}
    proba = oof[[f"proba_Q{i}" for i in range(1, 5)]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (oof["predicted"] == np.array(["Q1", "Q2", "Q3", "Q4"])[proba.argmax(axis=1)]).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(f["repeat"], f["fold"]) for f in metrics["folds"]] == [(0, k) for k in range(4)]
    for summary in metrics["summary"].values():
        assert 0.0 <= summary["mean"] <= 1.0 and summary["std"] >= 0.0
    assert set(metrics["summary"]) >= {"f1_macro", "auc_roc_macro", "f1_macro_text_removed"}
    audio_dims = [96, 64] if model == "cnn" else 1120
    assert metrics["feature_dims"] == {"audio": audio_dims, "text": 384}
    assert sum(c["support"] for c in metrics["per_class"].values()) == 40
    assert (
        np.array(metrics["confusion"]).sum() == 40
        and np.trace(metrics["confusion"]) == (oof["label"] == oof["predicted"]).sum()
    )
    assert metrics["runtime"]["peak_rss_mb"] > 0
    # fold 0's saved model reproduces fold 0's out-of-fold probabilities
    data = load_blocks(["descriptors"], melspec=model == "cnn")
    rows, blocks = data.rows, data.blocks
    test = oof[oof["fold"] == 0].set_index("clip_id")
    index = rows.index[rows["clip_id"].isin(test.index)].to_numpy()
    loaded = load_learner(out / "folds" / "fold0")
    reloaded = loaded.predict_proba({m: x[index] for m, x in blocks.items()})
    expected = test.loc[rows["clip_id"][index], [f"proba_Q{i}" for i in range(1, 5)]].to_numpy()
    np.testing.assert_allclose(reloaded, expected, rtol=1e-5, atol=1e-7)
    assert sorted(p.name for p in (out / "folds").iterdir()) == ["fold0", "fold1", "fold2", "fold3"]


def test_dummy_is_chance_and_needs_fusion_none(project):
    train.run(load_params(), "dummy", "none")
    metrics = json.loads((project / "models" / "dummy-none" / "metrics.json").read_text())
    assert metrics["summary"]["auc_roc_macro"]["mean"] == 0.5 and metrics["summary"]["accuracy"]["mean"] < 0.4
    with pytest.raises(ValueError, match="train it with --fusion none"):
        train.run(load_params(), "dummy", "audio")
    with pytest.raises(ValueError, match="fusion 'none' is for the dummy learner only"):
        train.run(load_params(), "mlp", "none")


def test_repeated_cv_and_fixed_split_schemes(project):
    write_params(project, {"eval": {"n_repeats": 3}})
    train.run(load_params(), "logreg", "concat")
    oof = read_store(project / "models" / "logreg-concat" / "oof.parquet")
    assert len(oof) == 120 and oof.groupby("repeat")["clip_id"].nunique().tolist() == [40, 40, 40]
    assert oof.pivot(index="clip_id", columns="repeat", values="fold").nunique(axis=1).max() > 1  # reshuffled
    metrics = json.loads((project / "models" / "logreg-concat" / "metrics.json").read_text())
    assert len(metrics["folds"]) == 12 and metrics["n_repeats"] == 3

    manifest = read_store(MANIFEST)
    manifest["split"] = np.where(np.arange(40) < 24, "train", np.where(np.arange(40) < 30, "validate", "test"))
    write_store(manifest, MANIFEST, pq.read_schema(MANIFEST).remove_metadata(), read_metadata(MANIFEST))
    write_params(project, {"eval": {"scheme": "fixed"}})
    train.run(load_params(), "mlp", "concat")
    oof = read_store(project / "models" / "mlp-concat" / "oof.parquet")
    assert sorted(oof["clip_id"]) == sorted(manifest["clip_id"][30:])  # scored on the test split once
    metrics = json.loads((project / "models" / "mlp-concat" / "metrics.json").read_text())
    assert metrics["scheme"] == "fixed" and metrics["n_test_clips"] == 10 and len(metrics["folds"]) == 1


def test_prepare_checks_the_split_column_of_the_fixed_scheme(project):
    write_params(project, {"eval": {"scheme": "fixed"}})
    with pytest.raises(ValueError, match="needs a split \\(train/validate/test\\) for every clip; 40 have none"):
        prepare.run(load_params())


@pytest.mark.parametrize(("model", "fusion"), [("mlp", "concat"), ("cnn", "product"), ("lgbm", "late")])
def test_train_is_deterministic(project, model, fusion):
    write_params(project, {"eval": {"n_repeats": 2}})
    params = load_params()
    out = project / "models" / f"{model}-{fusion}"

    def without_runtime() -> dict:
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics.pop("runtime")["train_seconds"] > 0
        return metrics

    train.run(params, model, fusion)
    first = without_runtime(), read_store(out / "oof.parquet")
    train.run(params, model, fusion)
    assert without_runtime() == first[0]
    pd.testing.assert_frame_equal(read_store(out / "oof.parquet"), first[1])


def test_grouped_manifest_keeps_groups_apart(project):
    manifest = read_store(MANIFEST)
    manifest["group"] = [f"artist{i % 8}" for i in range(len(manifest))]
    write_store(manifest, MANIFEST, pq.read_schema(MANIFEST).remove_metadata(), read_metadata(MANIFEST))
    train.run(load_params(), "logreg", "audio")
    oof = read_store(project / "models" / "logreg-audio" / "oof.parquet").merge(manifest[["clip_id", "group"]])
    assert oof.groupby("group")["fold"].nunique().max() == 1
    assert json.loads((project / "models" / "logreg-audio" / "metrics.json").read_text())["grouped"] is True
