"""train.normalize: per-group z-scores from features alone, and learners that leave features unscaled."""

import dataclasses

import numpy as np
import pytest

from pipeline.evaluation import cross_validate, make_splits
from pipeline.models import load_learner, make_learner
from pipeline.normalize import group_standardize
from pipeline.params import Params, TrainParams, load_params
from pipeline.stages import train
from tests.conftest import write_params


def test_each_group_is_z_scored_with_its_own_clips_and_small_groups_take_the_reference():
    rng = np.random.default_rng(0)
    groups = np.array(["a"] * 6 + ["b"] * 6 + ["c"] * 2)
    x = rng.normal(size=(14, 3)) + np.where(groups == "a", 10.0, -5.0)[:, None]
    reference = groups != "c"
    out = group_standardize(x, groups, reference, min_clips=3)
    for g in ("a", "b"):
        np.testing.assert_allclose(out[groups == g].mean(axis=0), 0, atol=1e-6)
        np.testing.assert_allclose(out[groups == g].std(axis=0), 1, atol=1e-5)
    expected = (x[groups == "c"] - x[reference].mean(axis=0)) / x[reference].std(axis=0)
    np.testing.assert_allclose(out[groups == "c"], expected, rtol=1e-5)  # 2 clips < 3: the reference's statistics
    present = np.arange(14) != 0  # a clip without the modality: untouched, and in no statistic
    masked = group_standardize(x, groups, reference, 3, present)
    np.testing.assert_array_equal(masked[0], x[0].astype(np.float32))
    np.testing.assert_allclose(masked[1:6].mean(axis=0), 0, atol=1e-6)


def test_a_group_on_both_sides_of_a_split_is_scaled_per_side():
    """A fixed split may put one speaker in training and test: neither side's statistics reach the other."""
    rng = np.random.default_rng(3)
    groups = np.array(["a"] * 12)
    reference = np.arange(12) < 6  # the first six on the training side
    x = rng.normal(size=(12, 2)) + np.where(reference, 0.0, 50.0)[:, None]
    out = group_standardize(x, groups, reference, min_clips=3)
    for side in (reference, ~reference):
        np.testing.assert_allclose(out[side].mean(axis=0), 0, atol=1e-5)
    changed = x.copy()
    changed[~reference] += 100.0  # moving the test clips leaves the training rows' values alone
    np.testing.assert_array_equal(group_standardize(changed, groups, reference, 3)[reference], out[reference])


def test_log_mels_are_z_scored_per_group_and_mel_band():
    rng = np.random.default_rng(1)
    groups = np.repeat([0, 1], 4)
    x = rng.normal(size=(8, 5, 7)) * np.arange(1, 6)[None, :, None] + groups[:, None, None] * 3
    out = group_standardize(x, groups, np.ones(8, bool), 2)
    for g in (0, 1):
        np.testing.assert_allclose(out[groups == g].mean(axis=(0, 2)), 0, atol=1e-5)
        np.testing.assert_allclose(out[groups == g].std(axis=(0, 2)), 1, atol=1e-5)


def speaker_problem(n_groups=24, per_group=10, seed=0):
    """Each speaker shifts every audio feature by a large offset; the emotion is a small shift within the speaker."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per_group)
    y = rng.integers(0, 2, len(groups))
    offsets = rng.normal(0, 3.0, (n_groups, 6))[groups]
    audio = offsets + y[:, None] * 0.8 + rng.normal(0, 0.5, (len(groups), 6))
    return {"audio": audio}, y, groups


def grouped_accuracy(prepare, blocks, y, groups):
    params = TrainParams()
    splits = make_splits(y, groups, n_folds=4, seed=0)
    make = lambda: make_learner("logreg", "audio", params=params, seed=0)  # noqa: E731
    probabilities, _ = cross_validate(make, blocks, y, splits, 2, prepare=prepare)
    test = np.concatenate([s.test for s in splits])
    return float((np.concatenate(probabilities).argmax(axis=1) == y[test]).mean())


def test_group_normalisation_removes_speaker_offsets():
    blocks, y, groups = speaker_problem()
    group_params = dataclasses.replace(Params(), train=dataclasses.replace(TrainParams(), normalize="group"))
    prepare = train.group_normalizer(group_params, groups)
    global_acc = grouped_accuracy(None, blocks, y, groups)
    group_acc = grouped_accuracy(prepare, blocks, y, groups)
    assert global_acc < 0.7 and group_acc > 0.85  # measured 0.55 and 0.94


def test_group_normalisation_needs_groups():
    params = dataclasses.replace(Params(), train=dataclasses.replace(TrainParams(), normalize="group"))
    with pytest.raises(ValueError, match="train.normalize: group needs every clip's group"):
        train.group_normalizer(params, None)
    assert train.group_normalizer(Params(), None) is None  # global: nothing to prepare


@pytest.mark.parametrize(("name", "fusion"), [("logreg", "concat"), ("mlp", "concat"), ("lgbm", "audio")])
def test_normalize_none_feeds_features_unscaled_and_saves(name, fusion, tmp_path):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 80)
    blocks = {"audio": rng.normal(size=(80, 4)) * 100 + y[:, None], "text": rng.normal(size=(80, 3))}
    params = dataclasses.replace(TrainParams(), normalize="none")
    learner = make_learner(name, fusion, params=params, seed=0).fit(blocks, y)
    if name == "mlp":
        assert not learner.scalers_["audio"].mean_.any() and (learner.scalers_["audio"].scale_ == 1).all()
    else:
        np.testing.assert_array_equal(learner.transform(blocks)[:, :4], blocks["audio"])
    learner.save(tmp_path / "m")
    np.testing.assert_allclose(load_learner(tmp_path / "m").predict_proba(blocks), learner.predict_proba(blocks))


def test_normalize_keys_are_checked(tmp_path):
    with pytest.raises(Exception, match="train.normalize must be 'none', 'global' or 'group', got 'speaker'"):
        load_params(write_params(tmp_path, {"train": {"normalize": "speaker"}}))
    with pytest.raises(Exception, match="train.normalize_min_clips must be >= 2, got 1"):
        load_params(write_params(tmp_path, {"train": {"normalize_min_clips": 1}}))
