import numpy as np
import pytest
import torch

from pipeline.evaluation import cross_validate, make_folds
from pipeline.models import LEARNERS, make_learner
from pipeline.models.classical import ClassicalFusionClassifier
from pipeline.models.torch_head import FusionHead
from pipeline.params import LGBMParams, MLPParams, TrainParams

FAST = TrainParams(mlp=MLPParams(max_epochs=60, patience=10), lgbm=LGBMParams(n_estimators=60))


def two_axis_problem(n=240, seed=0):
    """4 classes = (sign of axis A) x (sign of axis B); modality 'audio' sees A, 'text' sees B."""
    rng = np.random.default_rng(seed)
    a, b = rng.choice([-1, 1], n), rng.choice([-1, 1], n)
    y = (a > 0) * 2 + (b > 0)
    audio = np.column_stack([a + rng.normal(0, 0.5, n), rng.normal(size=(n, 7))])
    text = np.column_stack([b + rng.normal(0, 0.5, n), rng.normal(size=(n, 11))])
    return {"audio": audio, "text": text}, y


def oof_accuracy(name, fusion, blocks, y):
    folds = make_folds(y, None, 4, seed=0)
    oof, _, _ = cross_validate(lambda: make_learner(name, fusion, FAST, seed=0), blocks, y, folds, 4)
    return float((oof.argmax(axis=1) == y).mean())


@pytest.mark.parametrize("name", LEARNERS)
def test_each_learner_fuses_two_half_informative_modalities(name):
    blocks, y = two_axis_problem()
    audio_only = oof_accuracy(name, "audio", blocks, y)
    fused = oof_accuracy(name, "concat", blocks, y)
    assert 0.35 < audio_only < 0.65  # one axis of two: about half of the classes
    assert fused > 0.8 and fused > audio_only + 0.2


@pytest.mark.parametrize("fusion", ["product", "mean"])
def test_elementwise_variants_beat_chance(fusion):
    blocks, y = two_axis_problem()
    assert oof_accuracy("mlp", fusion, blocks, y) > 0.6


def test_pca_is_fitted_on_the_training_fold_only():
    blocks, y = two_axis_problem(n=100)
    train = np.arange(60)
    learner = ClassicalFusionClassifier(make_learner("logreg", "mean", FAST, 0).estimator, "mean", pca_dim=4, seed=0)
    learner.fit({m: x[train] for m, x in blocks.items()}, y[train])
    for m in ("audio", "text"):
        pca = learner.projections_[m]
        assert pca.n_samples_ == 60 and pca.n_components_ == 4
        np.testing.assert_allclose(learner.scalers_[m].mean_, blocks[m][train].mean(axis=0))
    assert learner.transform(blocks).shape == (100, 4)


def test_cross_validate_fits_each_fold_on_its_training_rows_only():
    seen = []

    class Recorder:
        def fit(self, blocks, y):
            seen.append(blocks["audio"][:, 0].copy())
            self.classes_ = np.unique(y)
            return self

        def predict_proba(self, blocks):
            return np.full((len(blocks["audio"]), len(self.classes_)), 1 / len(self.classes_))

    blocks, y = two_axis_problem(n=80)
    blocks = {"audio": np.arange(80, dtype=float)[:, None]}  # row index as the only feature
    folds = make_folds(y, None, 4, seed=0)
    oof, fold_of, _ = cross_validate(Recorder, blocks, y, folds, 4)
    for (train_idx, test_idx), fitted_rows in zip(folds, seen):
        assert set(fitted_rows.astype(int)) == set(train_idx)
        assert not set(fitted_rows.astype(int)) & set(test_idx)
    assert sorted(fold_of.tolist()) == sorted(np.repeat(range(4), 20).tolist())
    np.testing.assert_allclose(oof.sum(axis=1), 1.0)


def test_fused_head_output_depends_on_both_modalities():
    torch.manual_seed(0)
    head = FusionHead({"audio": 5, "text": 3}, "product", hidden=8, n_classes=4, dropout=0.0).eval()
    audio, text = torch.randn(2, 5), torch.randn(2, 3)
    base = head({"audio": audio, "text": text})
    assert base.shape == (2, 4)
    assert not torch.allclose(base, head({"audio": audio + 1, "text": text}))
    assert not torch.allclose(base, head({"audio": audio, "text": text + 1}))


def test_mlp_is_deterministic_and_returns_probabilities():
    blocks, y = two_axis_problem(n=120)
    p1 = make_learner("mlp", "concat", FAST, seed=3).fit(blocks, y).predict_proba(blocks)
    p2 = make_learner("mlp", "concat", FAST, seed=3).fit(blocks, y).predict_proba(blocks)
    np.testing.assert_array_equal(p1, p2)
    assert p1.shape == (120, 4)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("name", ["mlp", "logreg"])
def test_missing_text_values_cannot_leak_into_predictions(name):
    blocks, y = two_axis_problem(n=160)
    present = np.ones(160, dtype=bool)
    present[::4] = False
    blocks = {**blocks, "text_present": present}
    blocks["text"][~present] = 0.0
    learner = make_learner(name, "mean", FAST, seed=0).fit(blocks, y)
    noisy = {**blocks, "text": blocks["text"].copy()}
    noisy["text"][~present] = np.random.default_rng(1).normal(size=(40, 12)) * 100
    if name == "mlp":  # the head masks the missing modality itself
        np.testing.assert_allclose(learner.predict_proba(noisy)[~present], learner.predict_proba(blocks)[~present])
    # and clips without text are still classified from audio, better than chance
    accuracy = (learner.predict_proba(blocks).argmax(axis=1) == y)[~present].mean()
    assert accuracy > 0.35


@pytest.mark.parametrize("texts_with_words", [0, 2])
def test_tfidf_learner_survives_folds_with_almost_no_text(texts_with_words):
    blocks, y = two_axis_problem(n=40)
    texts = np.array([""] * 40, dtype=object)
    texts[:texts_with_words] = ["sunny day", "rainy night"][:texts_with_words]
    present = np.array([bool(t) for t in texts])
    learner = make_learner("logreg", "concat", FAST, seed=0, tfidf_dim=16)
    learner.fit({"audio": blocks["audio"], "text": texts, "text_present": present}, y)
    proba = learner.predict_proba({"audio": blocks["audio"], "text": texts, "text_present": present})
    assert proba.shape == (40, 4) and np.isfinite(proba).all()
