import pandas as pd
import pytest

from pipeline.datasets.manifest import ManifestError, read_manifest_file, validate_manifest


def manifest(n_per_class=5, labels=("happy", "sad")):
    rows = [
        {"clip_id": f"{lab}_{i}", "audio_path": f"{lab}_{i}.wav", "text": "la la", "label": lab}
        for lab in labels
        for i in range(n_per_class)
    ]
    return pd.DataFrame(rows)


def valid(df, **kw):
    return validate_manifest(df, n_folds=5, check_files=False, **kw)


def test_valid_manifest_gets_all_columns_sorted_by_id():
    out = valid(manifest().assign(speaker="x"))
    assert list(out.columns) == ["clip_id", "audio_path", "text", "label", "group", "split", "speaker"]
    assert out["group"].isna().all()
    assert out["clip_id"].is_monotonic_increasing


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda df: df.drop(columns="label"), r"missing required column\(s\) \['label'\]"),
        (lambda df: df.assign(clip_id=["x"] * len(df)), r"duplicate clip_id\(s\) \['x'\]"),
        (lambda df: df.assign(label=[""] + list(df["label"][1:])), "1 clip\\(s\\) have no label, e.g. happy_0"),
        (lambda df: df.head(7), "fewer clips than eval.n_folds=5: 'sad' has 2"),
        (lambda df: df[df["label"] == "happy"], "only one class"),
        (lambda df: df.assign(clip_id=[" "] + list(df["clip_id"][1:])), "blank clip_id"),
    ],
)
def test_validation_errors_name_the_problem(mutate, message):
    df = mutate(manifest())
    with pytest.raises(ManifestError, match=message):
        valid(df)


def test_unknown_label_against_declared_labels():
    with pytest.raises(ManifestError, match=r"unknown label\(s\) \['sad'\]; dataset.labels allows \['happy', 'calm'\]"):
        valid(manifest(), labels=["happy", "calm"])


def test_missing_audio_file_is_named(tmp_path):
    df = manifest().assign(audio_path=lambda d: [str(tmp_path / p) for p in d["audio_path"]])
    with pytest.raises(ManifestError, match="10 audio file\\(s\\) not found, e.g. .*happy_0.wav"):
        validate_manifest(df, n_folds=5)


def test_column_mapping_and_paths_relative_to_the_manifest(tmp_path):
    (tmp_path / "sub").mkdir()
    csv = tmp_path / "sub" / "meta.csv"
    manifest().rename(columns={"clip_id": "id", "label": "emotion"}).assign(singer="s1").to_csv(csv, index=False)
    with pytest.raises(ManifestError, match=r"missing required column\(s\) \['clip_id', 'label'\].*dataset.columns"):
        read_manifest_file(csv)
    df = read_manifest_file(csv, {"clip_id": "id", "label": "emotion", "group": "singer"})
    assert df["group"].unique().tolist() == ["s1"]
    assert df["audio_path"][0].endswith("sub/happy_0.wav")
    with pytest.raises(ManifestError, match="unknown mmer column"):
        read_manifest_file(csv, {"speaker": "singer"})


def test_real_corpus_through_the_manifest_adapter(ravdess):
    df = read_manifest_file(ravdess / "manifest.csv", {"clip_id": "id", "group": "speaker"})
    out = validate_manifest(df, n_folds=5)
    assert len(out) == 274
    assert sorted(out["label"].unique()) == ["angry", "calm", "fearful", "happy", "neutral", "sad"]
    assert out["group"].nunique() == 23
    assert "gender" in out.columns  # extra columns are kept


def test_group_must_be_all_or_nothing():
    df = manifest().assign(group=["s1", None] + ["s2"] * 8)
    with pytest.raises(ManifestError, match="1 of 10 clips have no group \\(e.g. happy_1\\)"):
        valid(df)
    with pytest.raises(ManifestError, match="only 2 distinct groups for eval.n_folds=5"):
        valid(manifest().assign(group=["s1", "s2"] * 5))


def test_declared_but_unused_label():
    with pytest.raises(ManifestError, match="declares \\['calm'\\] but no clip has that label"):
        valid(manifest(), labels=["happy", "sad", "calm"])


def test_clip_without_text_is_kept_with_missing_text():
    out = valid(manifest().assign(text=["  "] + ["la"] * 9))
    assert out["text"].isna().sum() == 1 and len(out) == 10


def test_parquet_manifest_with_numeric_columns(tmp_path):
    df = manifest().assign(label=[0, 1] * 5, group=list(range(10)), split=1.0)
    df.to_parquet(tmp_path / "m.parquet")
    out = valid(read_manifest_file(tmp_path / "m.parquet"))
    assert sorted(out["label"].unique()) == ["0", "1"]  # integral numbers stay integral
    assert out["group"].tolist()[:2] == ["0", "1"] and set(out["split"]) == {"1"}
    broken = manifest().assign(audio_path=[None] + ["x.wav"] * 9)
    broken.to_parquet(tmp_path / "broken.parquet")
    with pytest.raises(
        ManifestError, match="1 of 10 clips have no audio_path \\(e.g. happy_0\\); give every clip audio, or none"
    ):
        valid(read_manifest_file(tmp_path / "broken.parquet"))
