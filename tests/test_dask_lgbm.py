"""LightGBM trained with lightgbm.dask on a LocalCluster behind the usual fusion learner."""

import json

import numpy as np
import pytest

from pipeline.models.dask_lgbm import stratified_parts
from pipeline.params import ParamsError, load_params
from tests.conftest import write_params
from tests.test_dask import restored_environment  # noqa: F401  (autouse: Dask nannies leak variables)

pytest.importorskip("distributed")

SETTINGS = dict(n_estimators=30, num_leaves=7, min_child_samples=5, verbose=-1, random_state=0, deterministic=True)


@pytest.fixture(autouse=True, scope="module")
def closed_clusters():
    """The LocalClusters training started must not outlive these tests (2 cores)."""
    from pipeline.models.dask_lgbm import close_clients

    yield
    close_clients()


def test_stratified_parts_hold_every_class_and_every_row_once():
    y = np.array([0] * 7 + [1] * 3 + [2] * 5)
    parts = stratified_parts(y, 2)
    assert len(parts) == 2
    assert sorted(np.concatenate(parts).tolist()) == list(range(15))
    assert all(set(y[p]) == {0, 1, 2} for p in parts)
    assert len(stratified_parts(y, 8)) == 3  # the rarest class has 3 rows


def two_modalities(n: int = 240, seed: int = 0):
    """Audio tells Q1/Q2 from Q3/Q4, text tells Q1/Q3 from Q2/Q4: only both give the quadrant."""
    rng = np.random.default_rng(seed)
    labels = np.array(["Q1", "Q2", "Q3", "Q4"])[rng.integers(0, 4, n)]
    high = np.isin(labels, ["Q1", "Q2"]).astype(float)
    positive = np.isin(labels, ["Q1", "Q3"]).astype(float)
    audio = np.column_stack([high + 0.3 * rng.normal(size=n), rng.normal(size=(n, 5))])
    text = np.column_stack([positive + 0.3 * rng.normal(size=n), rng.normal(size=(n, 5))])
    return {"audio": audio, "text": text}, labels


@pytest.mark.cluster
def test_a_fusion_learner_trains_on_the_cluster_and_predicts_here(tmp_path):
    from pipeline.models import load_learner
    from pipeline.models.classical import ClassicalFusionClassifier
    from pipeline.models.dask_lgbm import DaskLGBMClassifier

    blocks, y = two_modalities()
    train, test = slice(0, 180), slice(180, None)
    estimator = DaskLGBMClassifier("local-cluster", 2, 2, "balanced", SETTINGS)
    learner = ClassicalFusionClassifier(estimator, "concat").fit({m: b[train] for m, b in blocks.items()}, y[train])
    assert len(set(learner.estimator_.part_workers_)) == 2  # one part on each of two workers
    test_blocks = {m: b[test] for m, b in blocks.items()}
    proba = learner.predict_proba(test_blocks)
    assert proba.shape == (60, 4) and np.allclose(proba.sum(axis=1), 1)
    accuracy = np.mean(learner.classes_[proba.argmax(axis=1)] == y[test])
    assert learner.classes_.tolist() == ["Q1", "Q2", "Q3", "Q4"] and accuracy > 0.8  # needs both modalities
    learner.save(tmp_path / "model")
    again = load_learner(tmp_path / "model")
    np.testing.assert_allclose(again.predict_proba({m: b[test] for m, b in blocks.items()}), proba, rtol=1e-6)
    refit = ClassicalFusionClassifier(estimator, "concat").fit({m: b[train] for m, b in blocks.items()}, y[train])
    assert refit.estimator_.part_workers_ == learner.estimator_.part_workers_  # the same rows on the same workers
    # (the trees may still differ: LightGBM ranks its machines in the order Dask reports them)
    again_accuracy = np.mean(refit.classes_[refit.predict_proba(test_blocks).argmax(axis=1)] == y[test])
    assert again_accuracy > 0.8


def test_distributed_lightgbm_needs_a_dask_executor_with_enough_workers(project):
    write_params(project, {"train": {"lgbm": {"distributed": True}}})
    with pytest.raises(ParamsError, match="train.lgbm.distributed needs executor.kind: dask"):
        load_params()
    lgbm = {"distributed": True, "n_partitions": 3}
    write_params(project, {"executor": {"kind": "dask", "workers": 2}, "train": {"lgbm": lgbm}})
    with pytest.raises(ParamsError, match="n_partitions 3 needs as many workers; executor.workers is 2"):
        load_params()


@pytest.mark.cluster
def test_the_train_stage_uses_lightgbm_dask(project, monkeypatch):
    import pipeline.models.dask_lgbm as dask_lgbm
    from pipeline.stages import train

    fits = []
    real_fit = dask_lgbm.DaskLGBMClassifier.fit

    def counted_fit(self, x, y):
        fits.append(len(y))
        return real_fit(self, x, y)

    monkeypatch.setattr(dask_lgbm.DaskLGBMClassifier, "fit", counted_fit)
    # 30 training clips a fold, 15 per worker: each worker's share must exceed min_child_samples to split at all
    lgbm = {"distributed": True, "min_child_samples": 3, "early_stopping_rounds": 0}
    write_params(project, {"executor": {"kind": "dask", "workers": 2}, "train": {"lgbm": lgbm}})
    train.run(load_params(), "lgbm", "concat")
    metrics = json.loads((project / "models" / "lgbm-concat" / "metrics.json").read_text())
    assert len(fits) == 4 and all(n >= 28 for n in fits)  # one distributed fit per fold
    # chance is 0.25; local LightGBM gets about 0.6 on these 40 clips, two 15-clip shares a little less
    assert 0.35 < metrics["summary"]["f1_macro"]["mean"] <= 1.0
    assert (project / "models" / "lgbm-concat" / "importance.json").exists()
