import numpy as np
import pytest

from pipeline.evaluation import METRICS, classification_metrics, make_folds, make_splits, summarize


def test_perfect_and_known_predictions():
    y = np.array([0, 0, 1, 1, 2, 2])
    perfect = np.eye(3)[y]
    assert classification_metrics(y, perfect) == {m: 1.0 for m in METRICS}
    # Predict class 0 for everything: accuracy 1/3, recall per class (1, 0, 0).
    always0 = np.tile([0.6, 0.2, 0.2], (6, 1))
    m = classification_metrics(y, always0)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["recall_macro"] == pytest.approx(1 / 3)
    assert m["f1_macro"] == pytest.approx((2 * (1 / 3) / (1 + 1 / 3)) / 3)
    assert m["auc_roc_macro"] == pytest.approx(0.5)


def test_binary_auc_uses_the_positive_column():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    assert classification_metrics(y, proba)["auc_roc_macro"] == 1.0


def test_grouped_folds_never_split_a_group():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"singer{i}" for i in range(10)], 12)
    y = np.tile(np.arange(4), 30)
    rng.shuffle(y)
    folds = make_folds(y, groups, n_folds=5, seed=1)
    assert len(folds) == 5
    for train_idx, test_idx in folds:
        assert not set(groups[train_idx]) & set(groups[test_idx])
    covered = np.sort(np.concatenate([test for _, test in folds]))
    np.testing.assert_array_equal(covered, np.arange(120))


def test_stratified_folds_are_balanced_and_seeded():
    y = np.repeat(np.arange(4), 25)
    folds = make_folds(y, None, n_folds=5, seed=7)
    for _, test_idx in folds:
        assert np.bincount(y[test_idx]).tolist() == [5, 5, 5, 5]
    again = make_folds(y, None, n_folds=5, seed=7)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))


def test_too_few_groups_is_a_clear_error():
    with pytest.raises(ValueError, match="only 3 groups for 5 folds"):
        make_folds(np.zeros(30), np.repeat(["a", "b", "c"], 10), n_folds=5, seed=0)


def test_summary_mean_and_sample_std():
    summary = summarize([{"f1_macro": 0.5}, {"f1_macro": 0.7}])
    assert summary["f1_macro"]["mean"] == pytest.approx(0.6)
    assert summary["f1_macro"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))


def test_auc_skips_classes_absent_from_a_fold():
    y = np.array([0, 0, 2, 2])  # class 1 absent, as in a small grouped fold
    proba = np.array([[0.7, 0.2, 0.1], [0.5, 0.1, 0.4], [0.2, 0.2, 0.6], [0.45, 0.0, 0.55]])
    assert classification_metrics(y, proba)["auc_roc_macro"] == 1.0


def test_macro_metrics_ignore_classes_absent_from_truth_and_predictions():
    y = np.array([0, 0, 2, 2])  # perfect predictions on a fold that lacks class 1
    m = classification_metrics(y, np.eye(3)[y])
    assert m["f1_macro"] == m["precision_macro"] == m["recall_macro"] == m["balanced_accuracy"] == 1.0


def test_vectorised_macro_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    from pipeline.evaluation import macro_f1_from_labels

    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, size=(20, 50)), rng.integers(0, 4, size=(20, 50))
    p[0] = np.where(p[0] == 3, 0, p[0])  # class 3 never predicted in one resample
    expected = [f1_score(a, b, average="macro", zero_division=0) for a, b in zip(t, p)]
    np.testing.assert_allclose(macro_f1_from_labels(t, p, 4), expected)


def test_bootstrap_ci_brackets_the_score_and_narrows_with_data():
    from pipeline.evaluation import bootstrap_f1_ci

    rng = np.random.default_rng(1)

    def noisy(n):
        y = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
        return y, np.eye(3)[pred]

    y, proba = noisy(200)
    low, high = bootstrap_f1_ci(y, proba, seed=0)
    score = classification_metrics(y, proba)["f1_macro"]
    assert low < score < high
    y_big, proba_big = noisy(5000)
    low_big, high_big = bootstrap_f1_ci(y_big, proba_big, seed=0)
    assert high_big - low_big < (high - low) / 3


def test_paired_bootstrap_separates_equal_from_clearly_better():
    from pipeline.evaluation import paired_bootstrap_pvalue

    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 400)
    weak = np.eye(4)[np.where(rng.random(400) < 0.4, y, rng.integers(0, 4, 400))]
    strong = np.eye(4)[np.where(rng.random(400) < 0.8, y, rng.integers(0, 4, 400))]
    assert paired_bootstrap_pvalue(y, weak, weak.copy()) == 1.0
    assert paired_bootstrap_pvalue(y, strong, weak) < 0.05
    similar = np.eye(4)[np.where(rng.random(400) < 0.4, y, rng.integers(0, 4, 400))]
    assert paired_bootstrap_pvalue(y, similar, weak) > 0.05


def test_repeated_grouped_cv_keeps_groups_apart_in_test_and_validation():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"singer{i}" for i in range(12)], 10)
    y = rng.integers(0, 3, 120)
    splits = make_splits(y, groups, n_folds=4, n_repeats=3, val_fraction=0.2, seed=5)
    assert [(s.repeat, s.fold) for s in splits] == [(r, k) for r in range(3) for k in range(4)]
    for s in splits:
        sets = [set(groups[rows]) for rows in (s.train, s.val, s.test)]
        assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
        assert sorted(np.r_[s.train, s.val, s.test].tolist()) == list(range(120))
        assert 0.1 < len(s.val) / (len(s.train) + len(s.val)) < 0.35
    tests = [tuple(s.test) for s in splits]
    assert len(set(tests)) == len(tests)  # repeats reshuffle the folds


def test_fixed_scheme_uses_the_split_column_and_carves_validation_when_absent():
    y = np.tile([0, 1], 10)
    split = np.array(["train"] * 12 + ["validate"] * 4 + ["test"] * 4, dtype=object)
    (s,) = make_splits(y, None, scheme="fixed", split=split)
    assert (
        s.train.tolist() == list(range(12))
        and s.val.tolist() == [12, 13, 14, 15]
        and s.test.tolist() == [16, 17, 18, 19]
    )
    split[12:16] = "train"
    (s,) = make_splits(y, None, scheme="fixed", split=split, val_fraction=0.25)
    assert len(s.val) == 4 and set(s.train) | set(s.val) == set(range(16)) and s.test.tolist() == [16, 17, 18, 19]
    split[0] = "dev"
    with pytest.raises(ValueError, match=r"unknown value\(s\) \['dev'\]"):
        make_splits(y, None, scheme="fixed", split=split)
    with pytest.raises(ValueError, match="needs clips with split 'train' and clips with split 'test'"):
        make_splits(y, None, scheme="fixed", split=np.array(["train"] * 20, dtype=object))


def test_per_class_report_and_confusion():
    from pipeline.evaluation import per_class_report

    y = np.array([0, 0, 0, 1, 1, 2])
    proba = np.eye(3)[[0, 0, 1, 1, 1, 0]]
    report = per_class_report(y, proba, ["a", "b", "c"])
    assert report["confusion"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report["per_class"]["a"] == {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_repeats_pool_per_clip_in_the_bootstrap():
    from pipeline.evaluation import bootstrap_f1_ci, paired_bootstrap_pvalue, pooled_f1

    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 300)
    repeats = np.stack([np.eye(4)[np.where(rng.random(300) < 0.6, y, rng.integers(0, 4, 300))] for _ in range(3)])
    pooled = pooled_f1(y, repeats)
    from pipeline.evaluation import macro_f1_from_labels

    expected = macro_f1_from_labels(np.tile(y, 3), repeats.argmax(axis=-1).ravel(), 4)[0]
    assert pooled == pytest.approx(expected)
    low, high = bootstrap_f1_ci(y, repeats, seed=0)
    assert low < pooled < high
    assert paired_bootstrap_pvalue(y, repeats, repeats.copy()) == 1.0
