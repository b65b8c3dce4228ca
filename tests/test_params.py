import pytest

from pipeline.params import DatasetParams, Params, ParamsError, build, load_params
from tests.conftest import REPO


def test_repo_params_file_matches_documented_defaults():
    # params.yaml spells out every default of pipeline/params.py: the two cannot drift apart.
    assert load_params(REPO / "params.yaml") == Params()


def test_unknown_key_is_named_with_the_allowed_keys(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  mlp:\n    hiden: 32\n")
    with pytest.raises(ParamsError, match=r"unknown key 'train.mlp.hiden'.*known keys here: hidden"):
        load_params(path)


def test_wrong_type_is_named():
    with pytest.raises(ParamsError, match=r"'eval.n_folds' must be int, got 'five'"):
        build(Params, {"eval": {"n_folds": "five"}})


def test_int_is_accepted_for_float_and_nested_values_are_typed():
    params = build(Params, {"demo": {"duration_s": 3}, "dataset": {"columns": {"clip_id": "id"}}})
    assert params.demo.duration_s == 3.0 and isinstance(params.demo.duration_s, float)
    assert params.dataset == DatasetParams(columns={"clip_id": "id"})


def test_cross_field_checks(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("dataset:\n  kind: manifest\n")
    with pytest.raises(ParamsError, match="needs dataset.manifest"):
        load_params(path)
    path.write_text("dataset:\n  kind: merge\n")
    with pytest.raises(ParamsError, match="dataset.kind 'merge' needs dataset.root: the folder holding your corpus"):
        load_params(path)
    # a manifest corpus with root left at the demo's folder: DVC would watch the wrong folder
    path.write_text("dataset:\n  kind: manifest\n  manifest: corpus/clips.csv\n")
    with pytest.raises(ParamsError, match="dataset.kind 'manifest' needs dataset.root: the folder holding your corpus"):
        load_params(path)
    path.write_text("dataset:\n  kind: manifest\n  manifest: corpus/clips.csv\n  root: corpus\n")
    assert load_params(path).dataset.root == "corpus"
    path.write_text("dataset:\n  kind: ravdess\n")
    with pytest.raises(
        ParamsError, match="dataset.kind must be 'demo', 'manifest', 'merge' or 'folders', got 'ravdess'"
    ):
        load_params(path)
    for text, message in [
        ("eval:\n  n_folds: 1\n", "eval.n_folds must be >= 2"),
        ("eval:\n  scheme: holdout\n", "eval.scheme must be 'cv', 'fixed' or 'predefined'"),
        ("eval:\n  n_repeats: 0\n", "eval.n_repeats must be >= 1"),
        ("eval:\n  scheme: fixed\n  n_repeats: 3\n", "n_repeats applies to scheme 'cv'"),
        ("eval:\n  n_boot: 0\n", "eval.n_boot must be >= 100"),
        ("dataset:\n  split: 70_15_15\n", "'dataset.split' must be str, got 701515; quote it"),
        ("dataset:\n  subset: both\n", "dataset.subset must be 'audio', 'lyrics' or 'bimodal', got 'both'"),
        ("dataset:\n  group_regex: '(spk'\n", "dataset.group_regex is not a valid regular expression"),
        ("eval:\n  scheme: predefined\n  n_repeats: 2\n", "n_repeats applies to scheme 'cv'"),
        ("train:\n  class_weight: auto\n", "train.class_weight must be null or 'balanced'"),
        ("train:\n  multitask:\n    loss_weights: [1, 1]\n", "loss_weights must be 3 non-negative"),
        ("train:\n  audio_sets: [descriptors, descriptors]\n", "train.audio_sets must be a non-empty list of distinct"),
        ("train:\n  audio_sets: [openl3]\n", r"names from \['descriptors', 'essentia', 'musicnn'"),
        ("train:\n  audio_sets: []\n", "train.audio_sets must be a non-empty list"),
        ("musicnn:\n  enabled: false\ntrain:\n  audio_sets: [musicnn_tags]\n", "musicnn.enabled is false"),
        ("musicnn:\n  batch_patches: 0\n", "musicnn.batch_patches must be >= 1"),
        ("executor:\n  kind: ray\n", "executor.kind must be 'local' or 'dask'"),
        ("executor:\n  workers: 0\n", "executor.workers must be >= 1"),
        ("executor:\n  kind: dask\n  address: scheduler:8786\n", "like tcp://host:8786"),
        ("musicnn:\n  max_error_fraction: 2\n", "musicnn.max_error_fraction must be in"),
        ("musicnn:\n  model: MSD_vgg\n", "musicnn.model must be 'MSD_musicnn' or 'MTT_musicnn', got 'MSD_vgg'"),
        ("essentia:\n  rhythm_method: fast\n", "essentia.rhythm_method must be 'degara' or 'multifeature'"),
        ("text:\n  representation: bow\n", "text.representation must be 'embedding' or 'tfidf', got 'bow'"),
        ("train:\n  class_weight: 1\n", "'train.class_weight' must be str, got 1"),
        ("train:\n  lgbm:\n    early_stopping_rounds: -1\n", "early_stopping_rounds must be >= 0, got -1"),
        (
            "executor:\n  kind: dask\ntrain:\n  lgbm:\n    distributed: true\n    early_stopping_rounds: 20\n",
            "train.lgbm.distributed does not early-stop; set train.lgbm.early_stopping_rounds: 0",
        ),
        ("train:\n  cnn:\n    time_pool: 0\n", "train.cnn.time_pool must be >= 1, got 0"),
    ]:
        path.write_text(text)
        with pytest.raises(ParamsError, match=message):
            load_params(path)


def test_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(ParamsError, match="file not found; run from the project root"):
        load_params(tmp_path / "nope.yaml")
