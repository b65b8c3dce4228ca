"""Bundles and `mmer predict`: a refitted model leaves the pipeline and predicts new clips."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.bundle import BundleError, read_bundle
from pipeline.cli import main
from pipeline.models import load_learner
from pipeline.params import load_params
from pipeline.predict import collect_inputs, predict, window_bounds
from pipeline.stages import bundle as bundle_stage
from pipeline.stages import train
from tests.conftest import write_params


@pytest.fixture
def bundled(project):
    """The tiny project with a logreg-concat bundle (no report: its card says so)."""
    folder = bundle_stage.write_bundle(load_params("params.yaml"), "logreg-concat")
    return project, folder


def refit_probabilities(folder, variant="logreg-concat"):
    """The bundled learner's probabilities on the training stores, in process."""
    params = load_params("params.yaml")
    model, fusion, _ = bundle_stage.parse_variant(variant)
    v = train.resolve_variant(params, model, fusion)
    data = train.load_variant_blocks(params, v)
    wanted = train.wanted_modalities(v, data.blocks)
    blocks = {k: x for k, x in data.blocks.items() if k.removesuffix("_present") in wanted}
    return data.rows["clip_id"].tolist(), load_learner(folder / "model").predict_proba(blocks)


def test_predict_on_the_training_clips_reproduces_the_refit_model_whatever_params_yaml_says(bundled):
    project, folder = bundled
    bundle = read_bundle(folder)
    assert bundle["variant"] == "logreg-concat" and bundle["modalities"] == ["audio", "text"]
    assert bundle["training"]["n_clips"] == 40 and bundle["cv_metrics"] is None
    assert bundle["features"]["descriptors"]["params"]["n_mfcc"] == 20
    assert "synthetic demo corpus" in (folder / "MODEL_CARD.md").read_text()
    ids, expected = refit_probabilities(folder)
    write_params(project, {"audio": {"n_mfcc": 13}, "text": {"lowercase": True}})  # the bundle's config must win
    table, metrics = predict(folder, [project / "data/demo/manifest.csv"], jobs=1, cache_dir=None)
    table = table.set_index("clip_id").loc[ids]
    np.testing.assert_allclose(table[[f"proba_Q{k}" for k in range(1, 5)]].to_numpy(), expected, rtol=1e-6)
    assert table["error"].isna().all() and table["has_text"].all() and set(table["modalities_used"]) == {"audio+text"}
    assert (
        metrics is not None and metrics["n_clips"] == 40 and metrics["f1_macro_pooled"] > 0.9
    )  # its own training clips
    low, high = metrics["f1_macro_ci95"]
    assert low <= metrics["f1_macro_pooled"] <= high


def test_folders_with_and_without_sidecar_lyrics_and_bad_files(bundled, tmp_path, capsys):
    project, folder = bundled
    songs = tmp_path / "songs"
    (songs / "sub").mkdir(parents=True)
    demo = project / "data/demo/audio"
    shutil.copy(demo / "demo_00000.wav", songs / "a.wav")
    (songs / "a.txt").write_text("sunny day dancing in the light")
    shutil.copy(demo / "demo_00001.wav", songs / "sub" / "b.wav")  # no lyrics
    (songs / "empty.wav").write_bytes(b"")
    (songs / "noise.mp3").write_bytes(b"not audio at all" * 50)
    code = main(["predict", "--bundle", str(folder), str(songs), "--out", str(tmp_path / "p.csv"), "--jobs", "1"])
    assert code == 2  # some clips failed, the rest were predicted
    table = pd.read_csv(tmp_path / "p.csv").set_index("clip_id")
    assert sorted(table.index) == ["a", "empty", "noise", "sub/b"]
    assert table.loc["a", "has_text"] and table.loc["a", "modalities_used"] == "audio+text"
    assert not table.loc["sub/b", "has_text"] and table.loc["sub/b", "modalities_used"] == "audio"
    assert table.loc[["a", "sub/b"], "error"].isna().all()
    assert np.allclose(table.loc[["a", "sub/b"], [f"proba_Q{k}" for k in range(1, 5)]].sum(axis=1), 1)
    for bad in ("empty", "noise"):
        assert isinstance(table.loc[bad, "error"], str) and pd.isna(table.loc[bad, "predicted"])
    out = capsys.readouterr().out
    assert "mmer predict: 4 clips" in out and "2 clip(s) failed" in out


def test_a_labelled_manifest_gives_metrics_and_an_unlabelled_one_does_not(bundled, tmp_path):
    project, folder = bundled
    manifest = pd.read_csv(project / "data/demo/manifest.csv").head(12)
    manifest["audio_path"] = [str(project / "data/demo" / p) for p in manifest["audio_path"]]
    manifest.rename(columns={"clip_id": "id", "label": "quadrant"}).to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "p.parquet"
    folder = folder.resolve()
    args = ["predict", "--bundle", str(folder), str(tmp_path / "m.csv"), "--out", str(out), "--jobs", "1"]
    assert main([*args, "--column", "clip_id=id", "--column", "label=quadrant"]) == 0
    metrics = json.loads((tmp_path / "p.metrics.json").read_text())
    low, high = metrics["f1_macro_ci95"]
    assert metrics["n_clips"] == 12 and 0 <= low <= metrics["f1_macro_pooled"] <= high <= 1
    songs = tmp_path / "songs"  # relative audio paths, and the manifest named relative to the working folder
    (songs / "audio").mkdir(parents=True)
    for path in manifest["audio_path"]:
        shutil.copy(path, songs / "audio")
    unlabelled = manifest.drop(columns=["label"]).assign(
        audio_path=[f"audio/{Path(p).name}" for p in manifest["audio_path"]]
    )
    unlabelled.to_csv(songs / "unlabelled.csv", index=False)
    os.chdir(tmp_path)
    assert main(["predict", "--bundle", str(folder), "songs/unlabelled.csv", "--out", "p.parquet", "--jobs", "1"]) == 0
    assert not (tmp_path / "p.metrics.json").exists()  # the labelled run's metrics are not left beside these
    table = pd.read_parquet(tmp_path / "p.parquet")
    assert len(table) == 12 and table["error"].isna().all() and table["predicted"].notna().all()


def test_an_audio_only_bundle_ignores_text_and_a_text_only_bundle_needs_no_audio(project, tmp_path):
    params = load_params("params.yaml")
    audio_only = bundle_stage.write_bundle(params, "logreg-audio")
    text_only = bundle_stage.write_bundle(params, "logreg-text")
    assert read_bundle(text_only)["features"].keys() == {"text"}
    texts = pd.DataFrame({"clip_id": ["x", "y"], "text": ["tears and grey rain alone", "dancing in the sun"]})
    texts.to_csv(tmp_path / "texts.csv", index=False)
    table, _ = predict(text_only, [tmp_path / "texts.csv"], jobs=1)
    assert table["error"].isna().all() and set(table["modalities_used"]) == {"text"}
    table, _ = predict(audio_only, [tmp_path / "texts.csv"], jobs=1)  # no audio: error rows, no crash
    assert (table["error"] == "no audio file").all()


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda b, f: b.update(format=99), "bundle format 99; this mmer reads format 1; upgrade mmer to use it"),
        (lambda b, f: (f / "model" / "fitted.npz").unlink(), "model/fitted.npz is missing"),
        (lambda b, f: (f / "model" / "learner.json").write_text("{}"), "model/learner.json differs from the sha256"),
        (
            lambda b, f: b.update(classes=["Q1", "Q2"]),
            "the model predicts class index 3 but bundle.json names 2 labels",
        ),
    ],
)
def test_a_tampered_bundle_is_refused_in_one_line(bundled, tamper, message):
    _, folder = bundled
    bundle = json.loads((folder / "bundle.json").read_text())
    tamper(bundle, folder)
    (folder / "bundle.json").write_text(json.dumps(bundle))
    with pytest.raises(BundleError, match=message) as raised:
        read_bundle(folder)
    assert "\n" not in str(raised.value)


def test_inputs_are_collected_from_files_folders_and_manifests(tmp_path):
    (tmp_path / "album").mkdir()
    for name in ("one.wav", "two.flac", "cover.jpg", "one.lrc"):
        (tmp_path / "album" / name).write_text("[00:01.00] la la la")
    table = collect_inputs([tmp_path / "album", tmp_path / "solo.wav"])
    assert table["clip_id"].tolist() == ["one", "two", "solo"]
    assert table["text"].tolist() == ["[00:01.00] la la la", None, None]  # the .lrc sidecar, raw (cleaned later)
    with pytest.raises(ValueError, match="two inputs have the clip id 'one'"):
        collect_inputs([tmp_path / "album", tmp_path / "album" / "one.wav"])
    with pytest.raises(FileNotFoundError, match="notes.pdf: not found"):
        collect_inputs([tmp_path / "notes.pdf"])


def test_the_stage_bundles_the_best_variant_removes_stale_ones_and_notes_when_it_writes_none(project):
    params = load_params("params.yaml")
    stale = bundle_stage.write_bundle(params, "logreg-audio")
    (project / "reports").mkdir(exist_ok=True)
    (project / "reports/summary.json").write_text(json.dumps({"best": {"variant": "logreg-text"}}))
    write_params(project, {"tune": {"enabled": True, "n_trials": 2}})
    bundle_stage.run(load_params("params.yaml"))
    assert sorted(p.name for p in (project / "models/bundles").iterdir()) == ["logreg-text"]
    assert not stale.exists()
    assert set(read_bundle(project / "models/bundles/logreg-text")["tuned"]) == {"C"}  # tuned on all clips
    for overrides, why in (
        ({"bundle": {"variants": []}}, "bundle.variants is empty"),
        ({"train": {"normalize": "group"}}, "train.normalize is 'group'"),
    ):
        write_params(project, overrides)
        bundle_stage.run(load_params("params.yaml"))
        assert [p.name for p in (project / "models/bundles").iterdir()] == ["NO_BUNDLE.txt"]
        assert why in (project / "models/bundles/NO_BUNDLE.txt").read_text()


def test_window_bounds_cover_the_song_to_its_end():
    assert window_bounds(25, 10, 5) == [(0, 10), (5, 15), (10, 20), (15, 25)]
    assert window_bounds(23, 10, 5) == [(0, 10), (5, 15), (10, 20), (13, 23)]  # the last one ends with the song
    assert window_bounds(20, 10, 10) == [(0, 10), (10, 20)]
    assert window_bounds(7, 10, 5) == [(0, 7)]  # shorter than a window: the whole song


def test_windowed_predictions_and_plots(bundled, tmp_path):
    project, folder = bundled
    songs = tmp_path / "songs"
    songs.mkdir()
    for name in ("demo_00002", "demo_00003"):  # 2-s demo clips
        shutil.copy(project / "data/demo/audio" / f"{name}.wav", songs / f"{name}.wav")
    (songs / "demo_00002.txt").write_text("sunny dancing laughter")
    out, plots = tmp_path / "p.csv", tmp_path / "plots"
    args = ["predict", "--bundle", str(folder), str(songs), "--out", str(out), "--jobs", "1"]
    assert main([*args, "--window", "1", "--hop", "0.5", "--plots", str(plots)]) == 0
    windows = pq.read_table(tmp_path / "p_windows.parquet")
    assert b"whole text" in windows.schema.metadata[b"mmer"]
    windows = windows.to_pandas()
    assert windows["clip_id"].tolist() == ["demo_00002"] * 3 + ["demo_00003"] * 3
    assert windows[["start_s", "end_s"]].to_numpy().tolist() == [[0, 1], [0.5, 1.5], [1, 2]] * 2
    assert windows["error"].isna().all()
    np.testing.assert_allclose(windows[[f"proba_Q{k}" for k in range(1, 5)]].sum(axis=1), 1, rtol=1e-6)
    assert sorted(p.name for p in plots.iterdir()) == ["demo_00002.svg", "demo_00003.svg"]
    assert (plots / "demo_00002.svg").read_text().startswith("<svg")
    assert main([*args, "--plots", str(plots)]) == 1  # --plots without --window is refused
