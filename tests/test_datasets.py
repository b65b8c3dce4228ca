"""Real-corpus adapters on tiny fake trees: MERGE (both split strategies), folders, manifests, fetch."""

import hashlib
import http.server
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pipeline.datasets.manifest import ManifestError
from pipeline.datasets.merge import read_merge

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
WORDS = {"Q1": "sunny dancing joy", "Q2": "angry burning rage", "Q3": "lonely tears grey", "Q4": "calm gentle breeze"}


def tone(seed: int, seconds: float = 1.5, sr: int = 22050) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * (220 + 40 * seed % 300) * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32)


def make_merge_tree(root: Path, subset: str = "bimodal", variant: str = "balanced", per_quadrant: int = 6) -> Path:
    """A MERGE release folder with the published file names, CSV columns and both split strategies."""
    name = {"audio": "Audio", "lyrics": "Lyrics", "bimodal": "Bimodal"}[subset]
    folder = root / f"MERGE_{name}_{variant.title()}"
    stem = f"merge_{subset}_{variant}"
    rows = []
    for qi, quadrant in enumerate(QUADRANTS):
        for k in range(per_quadrant):
            song = f"MT{qi}{k:03d}"
            lyric = f"L{qi}{k:03d}"
            rows.append({"song": song, "lyric": lyric, "quadrant": quadrant, "artist": f"Artist {k % 4}"})
            if subset != "lyrics":
                audio_dir = folder / ("audio" if subset == "bimodal" else "") / quadrant
                audio_dir.mkdir(parents=True, exist_ok=True)
                sf.write(audio_dir / f"{song}.mp3", tone(qi * 10 + k), 22050, format="MP3")
            if subset != "audio":
                lyrics_dir = folder / ("lyrics" if subset == "bimodal" else "") / quadrant
                lyrics_dir.mkdir(parents=True, exist_ok=True)
                name_id = lyric if subset == "bimodal" else song
                (lyrics_dir / f"{name_id}.txt").write_text(f"[Chorus]\n{WORDS[quadrant]} {k}\nlà-bas ♪\n")
    table = pd.DataFrame(rows)
    keys = (
        {"Audio_Song": table["song"], "Lyric_Song": table["lyric"]} if subset == "bimodal" else {"Song": table["song"]}
    )
    metadata = pd.DataFrame({**keys, "Quadrant": table["quadrant"], "Artist": table["artist"], "Title": "t"})
    metadata.to_csv(folder / f"{stem}_metadata.csv", index=False)
    av = pd.DataFrame({**keys, "Arousal": np.linspace(0, 1, len(table)), "Valence": np.linspace(1, 0, len(table))})
    av.to_csv(folder / f"{stem}_av_values.csv", index=False)
    for split, shares in (("70_15_15", (0.7, 0.15)), ("40_30_30", (0.4, 0.3))):
        tvt = folder / "tvt_dataframes" / f"tvt_{split}"
        tvt.mkdir(parents=True, exist_ok=True)
        order = np.random.default_rng(0).permutation(len(table))
        n_train, n_val = int(shares[0] * len(table)), int(shares[1] * len(table))
        parts = {
            "train": order[:n_train],
            "validate": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }
        for part, index in parts.items():
            songs = pd.DataFrame(
                {"Song": table["song"].to_numpy()[index], "Quadrant": table["quadrant"].to_numpy()[index]}
            )
            songs.to_csv(tvt / f"tvt_{split}_{part}_{subset}_{variant}.csv", index=False)
    return folder


def test_merge_bimodal_manifest_with_both_split_strategies(tmp_path):
    make_merge_tree(tmp_path)
    df = read_merge(tmp_path, "bimodal", "balanced", "70_15_15")
    assert len(df) == 24 and sorted(df["label"].unique()) == list(QUADRANTS)
    assert df["split"].value_counts().to_dict() == {"train": 16, "validate": 3, "test": 5}
    assert df["group"].nunique() == 4 and df["clip_id"].str.startswith("MT").all()
    first = df.set_index("clip_id").loc["MT1002"]
    assert first["audio_path"].endswith("MERGE_Bimodal_Balanced/audio/Q2/MT1002.mp3")
    assert first["text"].startswith("[Chorus]\nangry burning rage 2") and "♪" in first["text"]
    assert first["lyric_id"] == "L1002" and 0 <= first["valence"] <= 1
    other = read_merge(tmp_path / "MERGE_Bimodal_Balanced", "bimodal", "balanced", "40_30_30")  # the folder itself
    assert other["split"].value_counts().to_dict() == {"train": 9, "validate": 7, "test": 8}
    assert read_merge(tmp_path, "bimodal", "balanced", "none")["split"].isna().all()


@pytest.mark.parametrize(("subset", "audio", "text"), [("audio", True, False), ("lyrics", False, True)])
def test_merge_single_modality_subsets(tmp_path, subset, audio, text):
    make_merge_tree(tmp_path, subset, "complete", per_quadrant=3)
    df = read_merge(tmp_path, subset, "complete", "70_15_15")
    assert len(df) == 12
    assert df["audio_path"].notna().all() == audio and df["audio_path"].isna().all() == (not audio)
    assert df["text"].notna().all() == text and df["text"].isna().all() == (not text)
    if audio:
        assert df["audio_path"].str.contains("MERGE_Audio_Complete/Q[1-4]/MT", regex=True).all()


def test_merge_errors_name_the_missing_file(tmp_path):
    with pytest.raises(ManifestError, match="MERGE_Bimodal_Balanced/merge_bimodal_balanced_metadata.csv: not found"):
        read_merge(tmp_path, "bimodal", "balanced", "70_15_15")
    folder = make_merge_tree(tmp_path, per_quadrant=2)
    (folder / "audio" / "Q3" / "MT2001.mp3").unlink()
    with pytest.raises(ManifestError, match="1 file\\(s\\) named by the metadata are missing, e.g. .*Q3/MT2001.mp3"):
        read_merge(tmp_path, "bimodal", "balanced", "70_15_15")
    sf.write(folder / "audio" / "Q3" / "MT2001.mp3", tone(1), 22050, format="MP3")
    test_csv = folder / "tvt_dataframes" / "tvt_70_15_15" / "tvt_70_15_15_test_bimodal_balanced.csv"
    pd.read_csv(test_csv).iloc[1:].to_csv(test_csv, index=False)  # one song left out of every split file
    with pytest.raises(
        ManifestError, match="do not match merge_bimodal_balanced_metadata.csv .*1 song\\(s\\) without a split"
    ):
        read_merge(tmp_path, "bimodal", "balanced", "70_15_15")
    (folder / "tvt_dataframes" / "tvt_40_30_30" / "tvt_40_30_30_validate_bimodal_balanced.csv").unlink()
    with pytest.raises(ManifestError, match="tvt_40_30_30_validate_bimodal_balanced.csv: not found"):
        read_merge(tmp_path, "bimodal", "balanced", "40_30_30")


def test_folders_layout_with_sidecar_text_and_group_regex(tmp_path):
    from pipeline.datasets.folders import read_folders

    for label in ("happy", "sad"):
        (tmp_path / label).mkdir()
        for k in range(3):
            sf.write(tmp_path / label / f"spk{k}_take{label}.wav", tone(k), 22050)
        (tmp_path / label / f"spk0_take{label}.lrc").write_text("[00:01.00]hello")
        (tmp_path / label / "notes_only.txt").write_text("a text-only clip")
    with pytest.raises(ManifestError, match="happy/notes_only: a text file without an audio file of the same name"):
        read_folders(tmp_path)
    for label in ("happy", "sad"):
        (tmp_path / label / "notes_only.txt").unlink()
    df = read_folders(tmp_path).set_index("clip_id")
    assert len(df) == 6 and df["group"].isna().all()
    assert df.loc["happy/spk0_takehappy", "text"] == "[00:01.00]hello" and pd.isna(
        df.loc["happy/spk1_takehappy", "text"]
    )
    grouped = read_folders(tmp_path, group_regex=r"^(spk\d+)_").set_index("clip_id")
    assert grouped.loc["sad/spk2_takesad", "group"] == "spk2" and grouped["group"].nunique() == 3
    (tmp_path / "sad" / "odd_name.wav").write_bytes((tmp_path / "sad" / "spk0_takesad.wav").read_bytes())
    with pytest.raises(ManifestError, match="does not match the file name 'odd_name.wav'"):
        read_folders(tmp_path, group_regex=r"^(spk\d+)_")
    sf.write(tmp_path / "sad" / "odd_name.flac", tone(9), 22050)
    with pytest.raises(ManifestError, match="two audio files of one clip"):
        read_folders(tmp_path)


def test_folders_without_audio_are_a_text_only_corpus(tmp_path):
    from pipeline.datasets.folders import read_folders

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "one.txt").write_text(f"text of {label}")
    df = read_folders(tmp_path)
    assert df["audio_path"].isna().all() and df["text"].tolist() == ["text of a", "text of b"]


def test_manifest_text_paths_and_predefined_folds(tmp_path):
    from pipeline.datasets.manifest import read_manifest_file

    (tmp_path / "lyrics").mkdir()
    (tmp_path / "lyrics" / "a.txt").write_text("first song", encoding="utf-8")
    (tmp_path / "lyrics" / "b.lrc").write_bytes("caf\xe9 latin-1".encode("latin-1"))
    pd.DataFrame(
        {"id": ["a", "b", "c"], "file": ["lyrics/a.txt", "lyrics/b.lrc", ""], "mood": ["x", "y", "x"], "f": [1, 2, 3]}
    ).to_csv(tmp_path / "m.csv", index=False)
    df = read_manifest_file(tmp_path / "m.csv", {"clip_id": "id", "text_path": "file", "label": "mood", "fold": "f"})
    assert df["text"].tolist()[:2] == ["first song", "caf\ufffd latin-1"] and pd.isna(df["text"].iloc[2])
    assert df["audio_path"].isna().all() and df["fold"].tolist() == ["1", "2", "3"]
    from pipeline.datasets.manifest import check_predefined_folds

    check_predefined_folds(df)
    df.loc[1, "fold"] = pd.NA
    with pytest.raises(ManifestError, match="needs a fold for every clip"):
        check_predefined_folds(df)
    pd.DataFrame({"id": ["a", "b"], "t": ["x", "y"], "mood": ["x", "y"], "f": ["1", ""]}).to_csv(
        tmp_path / "n.csv", index=False
    )
    blank = read_manifest_file(tmp_path / "n.csv", {"clip_id": "id", "text": "t", "label": "mood", "fold": "f"})
    assert blank["fold"].isna().tolist() == [False, True]  # a blank cell is no fold, not a fold named ""
    pd.DataFrame({"id": ["a"], "file": ["lyrics/zzz.txt"], "mood": ["x"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ManifestError, match="text_path .*zzz.txt not found"):
        read_manifest_file(tmp_path / "m.csv", {"clip_id": "id", "text_path": "file", "label": "mood"})


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files from its directory, honouring ``Range: bytes=N-`` like Zenodo does."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return super().do_GET()
        data = path.read_bytes()
        start = int(self.headers.get("Range", "bytes=0-")[6:].rstrip("-") or 0)
        if start >= len(data):  # nothing left: what Zenodo answers for a complete partial file
            self.send_response(416)
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def zenodo(tmp_path):
    """A local stand-in for the Zenodo record API and file downloads on 127.0.0.1."""
    served = tmp_path / "served"
    served.mkdir()
    make_merge_tree(tmp_path / "src", per_quadrant=2)
    archive = served / "MERGE_Bimodal_Balanced.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "src").rglob("*")):
            zf.write(path, path.relative_to(tmp_path / "src"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: RangeHandler(*a, directory=str(served)))
    base = f"http://127.0.0.1:{server.server_port}"
    blob = archive.read_bytes()
    record = {
        "files": [
            {
                "key": archive.name,
                "size": len(blob),
                "checksum": "md5:" + hashlib.md5(blob).hexdigest(),
                "links": {"self": f"{base}/{archive.name}"},
            }
        ]
    }
    (served / "record.json").write_text(json.dumps(record))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base, blob
    server.shutdown()


def test_fetch_resumes_verifies_and_unpacks(zenodo, tmp_path):
    from pipeline.datasets.fetch import FetchError, download, fetch_archives, record_files

    base, blob = zenodo
    dest = tmp_path / "merge"
    dest.mkdir()
    (dest / "MERGE_Bimodal_Balanced.zip.part").write_bytes(blob[:1000])  # an interrupted download
    fetch_archives(dest, ["MERGE_Bimodal_Balanced.zip"], f"{base}/record.json")
    assert (dest / "MERGE_Bimodal_Balanced.zip").read_bytes() == blob
    assert not (dest / "MERGE_Bimodal_Balanced.zip.part").exists()
    assert len(read_merge(dest, "bimodal", "balanced", "70_15_15")) == 8  # unpacked where prepare looks
    meta = record_files(f"{base}/record.json")["MERGE_Bimodal_Balanced.zip"]
    with pytest.raises(FetchError, match="MD5 mismatch"):
        download(meta["url"], tmp_path / "other.zip", md5="0" * 32, size=meta["size"])
    assert not (tmp_path / "other.zip.part").exists()
    with pytest.raises(FetchError, match="no file\\(s\\) \\['MERGE_Audio_Complete.zip'\\]"):
        fetch_archives(dest, ["MERGE_Audio_Complete.zip"], f"{base}/record.json")
    # a download that finished but was killed before its check: verified without another request
    complete = tmp_path / "again" / "MERGE_Bimodal_Balanced.zip"
    complete.parent.mkdir()
    Path(str(complete) + ".part").write_bytes(blob)
    assert download(f"{base}/MERGE_Bimodal_Balanced.zip", complete, meta["md5"], None).read_bytes() == blob
    with pytest.raises(FetchError, match="cannot read the record"):
        record_files(f"{base}/missing.json")


def test_fetch_works_with_file_urls(tmp_path):
    from pipeline.datasets.fetch import download

    source = tmp_path / "archive.bin"
    source.write_bytes(b"x" * 5000)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "archive.bin.part").write_bytes(b"garbage")  # file:// ignores Range: start over
    got = download(source.as_uri(), tmp_path / "out" / "archive.bin", hashlib.md5(b"x" * 5000).hexdigest(), 5000)
    assert got.read_bytes() == b"x" * 5000


def run_project(root: Path, overrides: dict, variants: list[tuple[str, str]]) -> dict:
    """prepare, the feature stages, some train variants and the report in ``root``; returns reports/metrics.json."""
    import os

    from pipeline.params import load_params
    from pipeline.stages import audio_features, essentia_features, prepare, report, text_features, train
    from tests.conftest import write_params

    write_params(root, overrides)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        params = load_params()
        prepare.run(params)
        audio_features.run(params)
        essentia_features.run(params)
        text_features.run(params)
        for model, fusion in variants:
            train.run(params, model, fusion)
        report.run()
        return json.loads((root / "reports" / "metrics.json").read_text())
    finally:
        os.chdir(cwd)


FAST = {
    "executor": {"n_jobs": 1},
    "essentia": {"enabled": False},
    "musicnn": {"enabled": False},
    "eval": {"n_folds": 3},
}


def test_merge_av_values_run_regression_through_kind_merge(tmp_path):
    make_merge_tree(tmp_path / "merge", per_quadrant=6)
    dataset = {"kind": "merge", "root": str(tmp_path / "merge"), "target_center": 0.5}  # MERGE-style [0, 1] values
    overrides = {**FAST, "task": "regression", "dataset": dataset, "eval": {"scheme": "fixed"}}
    metrics = run_project(tmp_path, overrides, [("logreg", "concat"), ("logreg", "audio"), ("dummy", "none")])
    assert set(metrics["logreg"]) == {"audio", "concat"}
    assert {"ccc_mean", "ccc_arousal", "ccc_valence", "quadrant_accuracy"} <= set(metrics["logreg"]["concat"])
    oof = pd.read_parquet(tmp_path / "models" / "logreg-concat" / "oof.parquet")
    manifest = pd.read_parquet(tmp_path / "data" / "manifest.parquet").set_index("clip_id")
    np.testing.assert_allclose(oof["true_valence"], manifest.loc[oof["clip_id"], "valence"].astype(float))
    assert oof["true_arousal"].between(0, 1).all() and len(oof) == 5  # the 5 test songs, scored once


def test_merge_fixed_split_fits_on_train_and_scores_test_once(tmp_path):
    make_merge_tree(tmp_path / "merge", per_quadrant=6)
    overrides = {**FAST, "dataset": {"kind": "merge", "root": str(tmp_path / "merge")}, "eval": {"scheme": "fixed"}}
    metrics = run_project(tmp_path, overrides, [("logreg", "concat"), ("logreg", "audio"), ("dummy", "none")])
    assert set(metrics["logreg"]) == {"audio", "concat"} and "dummy" in metrics
    run = json.loads((tmp_path / "models" / "logreg-concat" / "metrics.json").read_text())
    assert run["scheme"] == "fixed" and run["n_test_clips"] == 5 and run["grouped"] is True
    (fold,) = run["folds"]  # fit on the 16 train songs, select on the 3 validate songs, score the 5 test songs
    assert (fold["n_train"], fold["n_val"], fold["n_test"]) == (16, 3, 5)
    oof = pd.read_parquet(tmp_path / "models" / "logreg-concat" / "oof.parquet")
    manifest = pd.read_parquet(tmp_path / "data" / "manifest.parquet")
    assert sorted(oof["clip_id"]) == sorted(manifest.loc[manifest["split"] == "test", "clip_id"])
    assert {"valence", "arousal", "lyric_id"} <= set(manifest.columns)
    assert "fixed split: 5 test clips scored once" in (tmp_path / "reports" / "leaderboard.md").read_text()


def test_audio_only_folders_corpus_skips_text_variants(tmp_path):
    for label in ("calm", "tense"):
        (tmp_path / "corpus" / label).mkdir(parents=True)
        for k in range(6):
            sf.write(tmp_path / "corpus" / label / f"take{k}.wav", tone(k + (label == "tense") * 50), 22050)
    overrides = {**FAST, "dataset": {"kind": "folders", "root": str(tmp_path / "corpus")}}
    metrics = run_project(tmp_path, overrides, [("logreg", "audio"), ("logreg", "concat"), ("mlp", "text")])
    assert set(metrics) == {"logreg"} and set(metrics["logreg"]) == {"audio"}
    skipped = json.loads((tmp_path / "models" / "logreg-concat" / "metrics.json").read_text())
    assert (
        skipped["skipped"] == "no clip has text"
        and not (tmp_path / "models" / "logreg-concat" / "oof.parquet").exists()
    )
    assert (
        "no text in this corpus: 2 variants that need it were skipped"
        in (tmp_path / "reports" / "leaderboard.md").read_text()
    )


def test_text_only_manifest_with_predefined_folds(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    texts = [("joy", "sunny dancing joy laughter"), ("gloom", "lonely tears grey rain")]
    rows = [
        {"id": f"{lab}{k}", "lyric": f"{words} {k}", "mood": lab, "fold": k % 3}
        for lab, words in texts
        for k in range(6)
    ]
    pd.DataFrame(rows).to_csv(corpus / "texts.csv", index=False)
    overrides = {
        **FAST,
        "dataset": {
            "kind": "manifest",
            "root": str(corpus),
            "manifest": str(corpus / "texts.csv"),
            "columns": {"clip_id": "id", "text": "lyric", "label": "mood", "fold": "fold"},
        },
        "eval": {"scheme": "predefined"},
    }
    metrics = run_project(tmp_path, overrides, [("logreg", "text"), ("lgbm", "audio"), ("cnn", "concat")])
    assert set(metrics) == {"logreg"} and metrics["logreg"]["text"]["f1_macro"]["mean"] > 0.9
    oof = pd.read_parquet(tmp_path / "models" / "logreg-text" / "oof.parquet")
    assert len(oof) == 12
    run = json.loads((tmp_path / "models" / "logreg-text" / "metrics.json").read_text())
    assert run["fold_labels"] == ["0", "1", "2"]
    expected = {r["id"]: str(r["fold"]) for r in rows}
    assert all(expected[c] == run["fold_labels"][f] for c, f in zip(oof["clip_id"], oof["fold"]))
    assert "3 predefined folds" in (tmp_path / "reports" / "leaderboard.md").read_text()
    assert (
        json.loads((tmp_path / "models" / "cnn-concat" / "metrics.json").read_text())["skipped"] == "no clip has audio"
    )


def test_fetch_cli_downloads_the_archive_of_the_configured_subset(zenodo, tmp_path, monkeypatch, capsys):
    from pipeline.cli import main
    from tests.conftest import write_params

    base, blob = zenodo
    write_params(tmp_path, {"dataset": {"kind": "merge", "root": "merge", "subset": "bimodal", "variant": "balanced"}})
    monkeypatch.chdir(tmp_path)
    assert main(["fetch", "merge", "--dest", "merge", "--record-url", f"{base}/record.json"]) == 0
    assert (tmp_path / "merge" / "MERGE_Bimodal_Balanced.zip").read_bytes() == blob
    assert (tmp_path / "merge" / "MERGE_Bimodal_Balanced" / "merge_bimodal_balanced_metadata.csv").exists()
    assert "verified and unpacked" in capsys.readouterr().out
    assert main(["fetch", "merge", "--dest", "merge", "--record-url", f"{base}/nothing.json"]) == 1
    assert "cannot read the record" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("subset", "variant", "fusion"), [("audio", "complete", "audio"), ("lyrics", "balanced", "text")]
)
def test_merge_single_modality_subsets_train(tmp_path, subset, variant, fusion):
    make_merge_tree(tmp_path / "merge", subset, variant, per_quadrant=6)
    dataset = {
        "kind": "merge",
        "root": str(tmp_path / "merge"),
        "subset": subset,
        "variant": variant,
        "split": "40_30_30",
    }
    metrics = run_project(tmp_path, {**FAST, "dataset": dataset}, [("logreg", fusion), ("logreg", "concat")])
    assert set(metrics["logreg"]) == {fusion}  # concat needs both modalities: skipped
    run = json.loads((tmp_path / "models" / f"logreg-{fusion}" / "metrics.json").read_text())
    assert run["n_clips"] == 24 and run["modalities"] == [fusion] and run["grouped"] is True
    assert 0.0 <= metrics["logreg"][fusion]["f1_macro"]["mean"] <= 1.0


def test_folders_with_sidecar_lyrics_train_a_fused_variant(tmp_path):
    for qi, quadrant in enumerate(QUADRANTS[:2]):
        folder = tmp_path / "corpus" / quadrant
        folder.mkdir(parents=True)
        for k in range(6):
            sf.write(folder / f"artist{k % 3}_{k}.wav", tone(qi * 40 + k), 22050)
            (folder / f"artist{k % 3}_{k}.lrc").write_text(f"[00:00.10]{WORDS[quadrant]}\n[00:02.00]{k}")
    dataset = {"kind": "folders", "root": str(tmp_path / "corpus"), "group_regex": r"^(artist\d)_"}
    metrics = run_project(tmp_path, {**FAST, "dataset": dataset}, [("logreg", "concat")])
    run = json.loads((tmp_path / "models" / "logreg-concat" / "metrics.json").read_text())
    assert run["grouped"] is True and run["n_without_text"] == 0 and run["modalities"] == ["audio", "text"]
    assert metrics["logreg"]["concat"]["f1_macro"]["mean"] > 0.9  # the lyrics name the class
