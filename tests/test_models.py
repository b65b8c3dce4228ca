import dataclasses
from typing import ClassVar

import numpy as np
import pytest
import torch

from pipeline.evaluation import cross_validate, make_splits
from pipeline.models import LEARNERS, load_learner, make_learner
from pipeline.models.classical import ClassicalFusionClassifier
from pipeline.models.late import LateFusionClassifier
from pipeline.models.torch_head import AdamW, FusionHead
from pipeline.params import CNNParams, LGBMParams, MLPParams, MultitaskParams, TrainParams

FAST = TrainParams(
    mlp=MLPParams(max_epochs=60, patience=10),
    multitask=MultitaskParams(max_epochs=60, patience=10),
    cnn=CNNParams(max_epochs=25, patience=8, lr=3e-3, time_pool=1),
    lgbm=LGBMParams(n_estimators=60),
)


def two_axis_problem(n=240, seed=0, spectrogram=False):
    """4 classes = (sign of axis A) x (sign of axis B); modality 'audio' sees A, 'text' sees B.

    With ``spectrogram``, audio is a (n, 32, 40) "log-mel" whose low bands are loud when A > 0.
    """
    rng = np.random.default_rng(seed)
    a, b = rng.choice([-1, 1], n), rng.choice([-1, 1], n)
    y = (a > 0) * 2 + (b > 0)
    if spectrogram:
        audio = rng.normal(size=(n, 32, 40)).astype(np.float32)
        audio[:, :8, :] += 1.0 * a[:, None, None]
    else:
        audio = np.column_stack([a + rng.normal(0, 0.5, n), rng.normal(size=(n, 7))])
    text = np.column_stack([b + rng.normal(0, 0.5, n), rng.normal(size=(n, 11))])
    return {"audio": audio, "text": text}, y


def oof_accuracy(name, fusion, blocks, y, params=FAST):
    splits = make_splits(y, None, n_folds=4, seed=0)
    probabilities, _ = cross_validate(lambda: make_learner(name, fusion, params=params, seed=0), blocks, y, splits, 4)
    test = np.concatenate([s.test for s in splits])
    return float((np.concatenate(probabilities).argmax(axis=1) == y[test]).mean())


@pytest.mark.parametrize("name", [n for n in LEARNERS if n != "dummy"])
def test_each_learner_fuses_two_half_informative_modalities_and_beats_dummy(name):
    blocks, y = two_axis_problem(spectrogram=name == "cnn")
    chance = oof_accuracy("dummy", "none", blocks, y)
    audio_only = oof_accuracy(name, "audio", blocks, y)
    fused = oof_accuracy(name, "concat", blocks, y)
    assert chance < 0.3  # majority class of four balanced-ish classes
    assert 0.35 < audio_only < 0.65  # one axis of two: about half of the classes
    assert fused > 0.8 and fused > audio_only + 0.2


@pytest.mark.parametrize("name", ["logreg", "mlp"])
def test_late_fusion_beats_each_modality(name):
    blocks, y = two_axis_problem(n=400)
    late = oof_accuracy(name, "late", blocks, y)
    assert late > max(oof_accuracy(name, "audio", blocks, y), oof_accuracy(name, "text", blocks, y)) + 0.15


@pytest.mark.parametrize("fusion", ["product", "mean", "tensor"])
def test_elementwise_variants_beat_chance(fusion):
    blocks, y = two_axis_problem()
    assert oof_accuracy("mlp", fusion, blocks, y) > 0.6


@pytest.mark.parametrize("name", ["logreg", "lgbm", "mlp"])
def test_tensor_fusion_keeps_the_informative_modality_when_the_other_is_constant(name):
    """Texts that are one of two fixed sentences: the elementwise product loses audio; tensor keeps it."""
    rng = np.random.default_rng(3)
    n = 320
    y = rng.integers(0, 4, n)
    latent = y + rng.normal(0, 0.4, n)  # audio: one informative direction spread over 8 columns
    audio = latent[:, None] * rng.normal(size=8) + rng.normal(0, 0.3, (n, 8))
    text = rng.normal(size=(2, 12))[rng.integers(0, 2, n)]  # unrelated to the label
    blocks = {"audio": audio, "text": text}
    params = dataclasses.replace(FAST, pca_dim=4)
    audio_only = oof_accuracy(name, "audio", blocks, y, params)
    tensor = oof_accuracy(name, "tensor", blocks, y, params)
    assert audio_only > 0.75
    assert tensor > audio_only - 0.05  # within fold noise of audio alone
    if name != "mlp":  # the classical learners' product of PCA components collapses (measured 0.33 and 0.46)
        assert oof_accuracy(name, "product", blocks, y, params) < audio_only - 0.3


def test_pca_is_fitted_on_the_training_fold_only():
    blocks, y = two_axis_problem(n=100)
    train = np.arange(60)
    learner = ClassicalFusionClassifier(
        make_learner("logreg", "mean", params=FAST, seed=0).estimator, "mean", pca_dim=4, seed=0
    )
    learner.fit({m: x[train] for m, x in blocks.items()}, y[train])
    for m in ("audio", "text"):
        pca = learner.projections_[m]
        assert pca.n_samples_ == 60 and pca.n_components_ == 4
        np.testing.assert_allclose(learner.scalers_[m].mean_, blocks[m][train].mean(axis=0))
    assert learner.transform(blocks).shape == (100, 4)


class Recorder:
    """A learner that records the row ids (first audio column) it is fitted and validated on."""

    seen: ClassVar[list] = []

    def fit(self, blocks, y, validation=None):
        Recorder.seen.append((set(blocks["audio"][:, 0].astype(int)), set(validation[0]["audio"][:, 0].astype(int))))
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, blocks):
        return np.full((len(blocks["audio"]), len(self.classes_)), 1 / len(self.classes_))


def test_cross_validate_fits_on_training_rows_and_selects_on_validation_rows_only():
    Recorder.seen = []
    _, y = two_axis_problem(n=80)
    blocks = {"audio": np.arange(80, dtype=float)[:, None]}  # row index as the only feature
    splits = make_splits(y, None, n_folds=4, n_repeats=2, seed=0)
    probabilities, per_fold = cross_validate(Recorder, blocks, y, splits, 4)
    for split, (fitted_rows, validation_rows) in zip(splits, Recorder.seen):
        assert fitted_rows == set(split.train) and validation_rows == set(split.val)
        assert not (fitted_rows | validation_rows) & set(split.test)
    assert [(f["repeat"], f["fold"]) for f in per_fold] == [(r, k) for r in range(2) for k in range(4)]
    for r in range(2):  # each repeat tests every clip exactly once
        tested = np.concatenate([s.test for s in splits if s.repeat == r])
        assert sorted(tested.tolist()) == list(range(80))
    np.testing.assert_allclose(np.concatenate(probabilities).sum(axis=1), 1.0)


@pytest.mark.parametrize("selects", [False, True])
def test_late_fusion_weight_never_sees_test_clips(selects):
    """Run late fusion through the protocol with spying components: inside ``fit`` nothing touches a test clip,
    predictions that choose the weight see validation clips only, and learners that select nothing train on
    the training clips until the weight is chosen."""
    log = []
    phase = {"now": "test"}

    class Spy:
        selects_on_validation = selects

        def __init__(self, modality):
            self.modality = modality

        def fit(self, blocks, y, validation=None):
            rows = set(blocks[self.modality][:, 0].astype(int))
            if validation is not None:
                log.append((phase["now"], "validate", set(validation[0][self.modality][:, 0].astype(int))))
            log.append((phase["now"], "fit", rows))
            inner = {self.modality: blocks[self.modality][:, 1:]}
            val = None if validation is None else ({self.modality: validation[0][self.modality][:, 1:]}, validation[1])
            self.inner = make_learner("logreg", self.modality, params=FAST, seed=0).fit(inner, y, validation=val)
            self.classes_ = self.inner.classes_
            return self

        def predict_proba(self, blocks):
            log.append((phase["now"], "predict", set(blocks[self.modality][:, 0].astype(int))))
            return self.inner.predict_proba({self.modality: blocks[self.modality][:, 1:]})

    class Late(LateFusionClassifier):
        def fit(self, blocks, y, validation=None):
            phase["now"] = "fit"
            try:
                return super().fit(blocks, y, validation)
            finally:
                phase["now"] = "test"

    blocks, y = two_axis_problem(n=160)
    ids = np.arange(160, dtype=float)[:, None]
    blocks = {"audio": np.hstack([ids, blocks["audio"]]), "text": np.hstack([ids, blocks["text"]])}
    splits = make_splits(y, None, n_folds=4, seed=0)
    fitted = []
    cross_validate(lambda: Late(Spy("audio"), Spy("text")), blocks, y, splits, 4, fitted)
    per_split = np.array_split(np.arange(len(log)), len(splits))  # every split logs the same number of events
    for split, events in zip(splits, per_split):
        train, val, test = set(split.train), set(split.val), set(split.test)
        during_fit = [log[i] for i in events if log[i][0] == "fit"]
        assert during_fit and not any(rows & test for _, _, rows in during_fit)
        assert all(rows <= val for _, kind, rows in during_fit if kind in ("predict", "validate"))
        fits = [rows for _, kind, rows in during_fit if kind == "fit"]
        assert fits[0] == train and fits[1] == train  # audio, text: training clips only while the weight is open
        assert any(log[i][0] == "test" and log[i][2] == test for i in events)  # then the test clips are scored
    assert all(0.0 < f.weight_ < 1.0 for f in fitted)  # both modalities carry half of the label


def test_late_fusion_handles_a_class_missing_from_training(tmp_path):
    blocks, y = two_axis_problem(n=200)
    keep = y != 1  # classes 0, 2, 3: label indices are no longer positions
    train = {m: x[keep] for m, x in blocks.items()}
    late = make_learner("logreg", "late", params=FAST, seed=0).fit(train, y[keep])
    proba = late.predict_proba(blocks)
    assert late.classes_.tolist() == [0, 2, 3] and proba.shape == (200, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    accuracy = (late.classes_[proba.argmax(axis=1)] == y)[keep].mean()
    assert accuracy > 0.6
    late.save(tmp_path / "late")
    np.testing.assert_allclose(load_learner(tmp_path / "late").predict_proba(blocks), proba)


def test_late_fusion_falls_back_to_audio_for_clips_without_text():
    blocks, y = two_axis_problem(n=200)
    blocks["text_present"] = np.ones(200, dtype=bool)
    late = make_learner("logreg", "late", params=FAST, seed=0).fit(blocks, y)
    without = {**blocks, "text": np.zeros_like(blocks["text"]), "text_present": np.zeros(200, dtype=bool)}
    audio_only = late.audio_.predict_proba({"audio": blocks["audio"]})
    np.testing.assert_allclose(late.predict_proba(without), audio_only)


@pytest.mark.parametrize("fusion", ["concat", "product", "mean", "tensor"])
@pytest.mark.parametrize("audio_shape", [(5,), (32, 40)])
@pytest.mark.parametrize("aux_heads", [False, True])
def test_fused_head_output_depends_on_both_modalities(fusion, audio_shape, aux_heads):
    torch.manual_seed(0)
    head = FusionHead({"audio": audio_shape, "text": (3,)}, fusion, 8, 4, dropout=0.0, aux_heads=aux_heads).eval()
    audio, text = torch.randn(2, *audio_shape), torch.randn(2, 3)
    base = head({"audio": audio, "text": text})
    assert base.shape == (2, 4)
    assert not torch.allclose(base, head({"audio": audio + torch.randn_like(audio), "text": text}))
    assert not torch.allclose(base, head({"audio": audio, "text": text + 1}))
    masked = {"text": torch.tensor([[1.0], [0.0]])}  # second clip has no text: its text values cannot matter
    out = head({"audio": audio, "text": text}, masked)
    moved = head({"audio": audio, "text": text + torch.tensor([[0.0], [5.0]])}, masked)
    assert torch.allclose(out[1], moved[1]) and torch.allclose(out[0], base[0])
    if aux_heads:  # the multi-task learner's extra heads see one modality each
        logits = head.heads({"audio": audio, "text": text})
        assert set(logits) == {"fused", "audio", "text"}
        assert torch.allclose(logits["text"], head.heads({"audio": audio + 1, "text": text})["text"])


def test_adamw_updates_parameters_bit_for_bit_as_torch_optim_adamw_with_step_decay():
    def train(make_optimiser):
        torch.manual_seed(0)
        head = FusionHead({"audio": (32, 40), "text": (3,)}, "concat", 8, 4, dropout=0.0, aux_heads=True)
        optimiser, halve = make_optimiser(head.parameters())
        data = torch.Generator().manual_seed(1)
        for step in range(12):
            optimiser.zero_grad()
            audio, text = torch.randn(6, 32, 40, generator=data), torch.randn(6, 3, generator=data)
            logits = head.heads({"audio": audio, "text": text})
            loss = logits["fused"].square().mean() + logits["audio"].abs().mean()
            if step % 3:  # the text head gets a gradient on some steps only: its step count lags
                loss = loss + logits["text"].pow(3).mean()
            loss.backward()
            optimiser.step()
            if step % 4 == 3:
                halve(optimiser)
        return [p.detach().clone() for p in head.parameters()]

    def ours(params):
        def halve(opt):
            opt.lr *= 0.5

        return AdamW(params, lr=0.01, weight_decay=0.05), halve

    def torch_optim(params):
        opt = torch.optim.AdamW(params, lr=0.01, weight_decay=0.05)
        scheduler = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)  # stepped every 4th step below
        return opt, lambda _: scheduler.step()

    mine, reference = train(ours), train(torch_optim)
    assert len(mine) == len(reference) > 10
    assert all(torch.equal(a, b) for a, b in zip(mine, reference))


def test_lgbm_early_stopping_trains_on_training_rows_and_keeps_the_best_trees(tmp_path):
    blocks, y = two_axis_problem(n=300)
    rows = {"train": np.arange(240), "val": np.arange(240, 300)}
    part = {k: {m: x[r] for m, x in blocks.items()} for k, r in rows.items()}
    stopping = TrainParams(lgbm=LGBMParams(n_estimators=400, learning_rate=0.3, early_stopping_rounds=10))
    learner = make_learner("lgbm", "concat", params=stopping, seed=0)
    assert learner.selects_on_validation
    learner.fit(part["train"], y[rows["train"]], validation=(part["val"], y[rows["val"]]))
    kept = learner.estimator_.best_iteration_
    assert 1 <= kept < 100  # an easy problem: the validation loss bottoms out long before 400 trees
    # the same trees as a plain fit of `kept` trees on the training rows alone: validation rows only stopped it
    plain = TrainParams(lgbm=LGBMParams(n_estimators=kept, learning_rate=0.3, early_stopping_rounds=0))
    reference = make_learner("lgbm", "concat", params=plain, seed=0).fit(part["train"], y[rows["train"]])
    np.testing.assert_allclose(learner.predict_proba(part["val"]), reference.predict_proba(part["val"]), rtol=1e-12)
    learner.save(tmp_path)  # only the kept trees are saved
    np.testing.assert_array_equal(load_learner(tmp_path).predict_proba(part["val"]), learner.predict_proba(part["val"]))
    assert not make_learner("lgbm", "concat", params=plain, seed=0).selects_on_validation


def test_cnn_time_pool_averages_frames_before_the_convolutions(tmp_path):
    blocks, y = two_axis_problem(n=80, spectrogram=True)
    audio = np.repeat(blocks["audio"], 2, axis=2)  # (80, 32, 80): every frame twice
    pooled = CNNParams(max_epochs=3, patience=3, time_pool=2)
    learner = make_learner("cnn", "audio", params=TrainParams(cnn=pooled), seed=0).fit({"audio": audio}, y)
    first = learner.model_.encoders["audio"].features[0]
    assert isinstance(first, torch.nn.AvgPool2d) and first.kernel_size == (1, 2)
    x = torch.from_numpy(audio[:2]).unsqueeze(1)
    torch.testing.assert_close(first(x), torch.from_numpy(blocks["audio"][:2]).unsqueeze(1))  # pairs averaged
    learner.save(tmp_path)
    np.testing.assert_array_equal(
        load_learner(tmp_path).predict_proba({"audio": audio}), learner.predict_proba({"audio": audio})
    )
    with pytest.raises(ValueError, match=r"got \(32, 40\) \(20 frames after time_pool 2\).*lower train.cnn.time_pool"):
        make_learner("cnn", "audio", params=TrainParams(cnn=pooled), seed=0).fit(blocks, y)


def test_cnn_refuses_too_small_spectrograms():
    blocks, y = two_axis_problem(n=40, spectrogram=True)
    with pytest.raises(ValueError, match="at least 26 bands x 26 frames, got \\(32, 20\\)"):
        make_learner("cnn", "audio", params=FAST, seed=0).fit({"audio": blocks["audio"][:, :, :20]}, y)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_torch_learners_are_deterministic_and_return_probabilities(name):
    blocks, y = two_axis_problem(n=120, spectrogram=name == "cnn")
    p1 = make_learner(name, "concat", params=FAST, seed=3).fit(blocks, y).predict_proba(blocks)
    p2 = make_learner(name, "concat", params=FAST, seed=3).fit(blocks, y).predict_proba(blocks)
    np.testing.assert_array_equal(p1, p2)
    assert p1.shape == (120, 4)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, rtol=1e-6)


VARIANTS = [(n, f) for n in LEARNERS if n != "dummy" for f in ("mean", "late")] + [
    ("dummy", "none"),
    ("lgbm", "concat"),
    ("logreg", "tensor"),
    ("mlp", "tensor"),
]


@pytest.mark.parametrize(("name", "fusion"), VARIANTS)
def test_saved_learners_load_and_predict_the_same(name, fusion, tmp_path):
    blocks, y = two_axis_problem(n=120, spectrogram=name == "cnn")
    blocks["text_present"] = np.arange(120) % 5 > 0
    learner = make_learner(name, fusion, params=FAST, seed=0).fit(blocks, y)
    learner.save(tmp_path / "model")
    loaded = load_learner(tmp_path / "model")
    np.testing.assert_allclose(loaded.predict_proba(blocks), learner.predict_proba(blocks), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(loaded.classes_, learner.classes_)
    assert not list((tmp_path / "model").rglob("*.pkl")) and not list((tmp_path / "model").rglob("*.joblib"))
    assert not list((tmp_path / "model").rglob("*.skops"))
    loaded.save(tmp_path / "again")  # equal models, equal bytes (dvc sees an unchanged output)
    files = sorted(p.relative_to(tmp_path / "model") for p in (tmp_path / "model").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    for name in files:
        assert (tmp_path / "model" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_tfidf_learner_saves_and_loads(tmp_path):
    blocks, y = two_axis_problem(n=60)
    texts = np.array([["sunny happy day", "dark rainy night"][int(label) % 2] for label in y], dtype=object)
    blocks = {"audio": blocks["audio"], "text": texts, "text_present": np.ones(60, dtype=bool)}
    learner = make_learner("lgbm", "concat", params=FAST, seed=0, tfidf_dim=8).fit(blocks, y)
    learner.save(tmp_path / "m")
    np.testing.assert_allclose(load_learner(tmp_path / "m").predict_proba(blocks), learner.predict_proba(blocks))


def test_fitted_files_rebuild_only_the_types_mmer_writes(tmp_path):
    import json
    import zipfile

    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from pipeline.models.artifacts import dump_fitted, load_fitted

    scaler = StandardScaler().fit(np.arange(12.0).reshape(6, 2))
    dump_fitted({"scaler": scaler}, tmp_path / "ok.npz")
    np.testing.assert_array_equal(load_fitted(tmp_path / "ok.npz")["scaler"].scale_, scaler.scale_)
    with pytest.raises(TypeError, match=r"not sklearn\.preprocessing\._function_transformer\.FunctionTransformer"):
        dump_fitted({"f": FunctionTransformer(func=eval)}, tmp_path / "no.npz")
    with zipfile.ZipFile(tmp_path / "ok.npz") as archive:
        meta = json.loads(archive.read("meta.json"))
    meta["scaler"]["type"] = "FunctionTransformer"
    with zipfile.ZipFile(tmp_path / "altered.npz", "w") as archive:
        archive.writestr("meta.json", json.dumps(meta))
    with pytest.raises(ValueError, match="altered.npz: refusing to build 'FunctionTransformer'"):
        load_fitted(tmp_path / "altered.npz")


@pytest.mark.parametrize(
    "payload",
    [
        lambda: {"when": __import__("datetime").date(2026, 1, 1)},
        lambda: __import__("sklearn.preprocessing").preprocessing.FunctionTransformer(func=eval),
    ],
)
def test_skops_refuses_untrusted_types_and_functions(tmp_path, payload):
    import skops.io as sio

    from pipeline.models.artifacts import load_skops

    sio.dump(payload(), tmp_path / "x.skops")
    with pytest.raises(ValueError, match="refusing to load untrusted types"):
        load_skops(tmp_path / "x.skops")


@pytest.mark.parametrize("name", ["logreg", "lgbm", "mlp"])
def test_balanced_class_weight_lifts_the_minority_class(name):
    rng = np.random.default_rng(0)
    n_major, n_minor = 270, 30
    y = np.r_[np.zeros(n_major, int), np.ones(n_minor, int)]
    audio = (y[:, None] * 0.9 + rng.normal(size=(300, 4))).astype(np.float32)  # overlapping classes
    blocks = {"audio": audio}

    def minority_recall(class_weight):
        params = TrainParams(mlp=FAST.mlp, lgbm=FAST.lgbm, class_weight=class_weight)
        splits = make_splits(y, None, n_folds=3, seed=0)
        probabilities, _ = cross_validate(
            lambda: make_learner(name, "audio", params=params, seed=0), blocks, y, splits, 2
        )
        test = np.concatenate([s.test for s in splits])
        predicted = np.concatenate(probabilities).argmax(axis=1)
        return (predicted[y[test] == 1] == 1).mean()

    assert minority_recall("balanced") > minority_recall(None) + 0.15


@pytest.mark.parametrize("name", ["mlp", "multitask", "logreg"])
def test_missing_text_values_cannot_leak_into_predictions(name):
    blocks, y = two_axis_problem(n=160)
    present = np.ones(160, dtype=bool)
    present[::4] = False
    blocks = {**blocks, "text_present": present}
    blocks["text"][~present] = 0.0
    learner = make_learner(name, "mean", params=FAST, seed=0).fit(blocks, y)
    noisy = {**blocks, "text": blocks["text"].copy()}
    noisy["text"][~present] = np.random.default_rng(1).normal(size=(40, 12)) * 100
    if name != "logreg":  # the head masks the missing modality itself
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
    learner = make_learner("logreg", "concat", params=FAST, seed=0, tfidf_dim=16)
    learner.fit({"audio": blocks["audio"], "text": texts, "text_present": present}, y)
    proba = learner.predict_proba({"audio": blocks["audio"], "text": texts, "text_present": present})
    assert proba.shape == (40, 4) and np.isfinite(proba).all()


def test_learner_modules_import_only_io_helpers_from_the_package():
    import ast
    from pathlib import Path

    import pipeline.models

    folder = Path(pipeline.models.__file__).parent
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "pipeline.models", f"{path.name}:{node.lineno} imports the registry"
            elif isinstance(node, ast.Import):
                assert all(a.name != "pipeline.models" for a in node.names), f"{path.name}:{node.lineno}"


@pytest.mark.parametrize(
    ("name", "fusion", "tfidf_dim"),
    [("dummy", "none", None), ("logreg", "concat", None), ("logreg", "late", None), ("logreg", "concat", 4)],
)
def test_learners_have_the_learner_interface_and_load_back(name, fusion, tfidf_dim, tmp_path):
    from pipeline.models import Learner

    blocks, y = two_axis_problem(n=60)
    if tfidf_dim:
        blocks["text"] = np.array(
            [["sunny happy day", "dark rainy night"][int(label) % 2] for label in y], dtype=object
        )
    learner = make_learner(name, fusion, params=FAST, seed=0, tfidf_dim=tfidf_dim).fit(blocks, y)
    members = [m for m in dir(Learner) if not m.startswith("_")] + list(Learner.__annotations__)
    assert sorted(members) == ["classes_", "fit", "predict_proba", "save", "selects_on_validation"]
    assert all(hasattr(learner, m) for m in members) and learner.selects_on_validation is False
    learner.save(tmp_path / "m")
    loaded = load_learner(tmp_path / "m")
    assert type(loaded) is type(learner)
    np.testing.assert_array_equal(loaded.predict_proba(blocks), learner.predict_proba(blocks))


def test_load_learner_names_unknown_types_and_make_learner_takes_keywords(tmp_path):
    (tmp_path / "learner.json").write_text('{"type": "svm"}')
    with pytest.raises(
        ValueError,
        match="unknown learner type 'svm'; known: \\['classical', 'classical_regressor', 'late', 'late_regressor', "
        "'mean', 'prior'",
    ):
        load_learner(tmp_path)
    with pytest.raises(TypeError):
        make_learner("logreg", "concat", FAST, 0)


def test_a_wrapped_estimator_of_another_type_saves_as_skops(tmp_path):
    from sklearn.neighbors import KNeighborsClassifier

    from pipeline.models.classical import ClassicalFusionClassifier

    blocks, y = two_axis_problem(n=60)
    learner = ClassicalFusionClassifier(KNeighborsClassifier(3), "concat").fit(blocks, y)
    learner.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["estimator.skops", "fitted.npz", "learner.json"]
    np.testing.assert_array_equal(load_learner(tmp_path / "m").predict_proba(blocks), learner.predict_proba(blocks))


def test_a_namesake_of_a_fitted_type_is_not_written_as_that_type(tmp_path):
    from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression

    from pipeline.models.artifacts import dump_fitted, is_fitted_type

    class LogisticRegression(SklearnLogisticRegression):  # same name, other behaviour: loading would lose it
        def predict_proba(self, x):
            return 1 - super().predict_proba(x)

    blocks, y = two_axis_problem(n=60)
    namesake = LogisticRegression().fit(blocks["audio"], y)
    assert is_fitted_type(SklearnLogisticRegression().fit(blocks["audio"], y)) and not is_fitted_type(namesake)
    with pytest.raises(TypeError, match=r"not tests\.test_models\.LogisticRegression \('estimator'\)"):
        dump_fitted({"estimator": namesake}, tmp_path / "fitted.npz")
    assert not (tmp_path / "fitted.npz").exists()
