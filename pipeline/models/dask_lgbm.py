"""LightGBM trained data-parallel on a Dask cluster (``lightgbm.dask``), predicting locally.

``train.lgbm.distributed: true`` with ``executor.kind: dask`` puts this estimator inside
the same :class:`~pipeline.models.classical.ClassicalFusionClassifier` as local
LightGBM: scalers, projections and fusion are unchanged, only the booster's training
is spread over the workers. The fused matrix is cut into ``n_partitions`` stratified
parts (every part holds every class, so each worker's LightGBM agrees on the number of
classes), each placed on its own worker (workers in address order; no work stealing on
a LocalCluster), so the same rows meet the same workers on every run (LightGBM still
ranks its machines in the order Dask reports them, so refits can grow other trees);
balanced class weights are computed over all rows here and sent as sample weights.
The trained booster comes back with ``to_local()``, so prediction, saving and the
report work as for local LightGBM.
"""

from __future__ import annotations

import atexit

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.class_weight import compute_sample_weight

from pipeline.executor import DaskSettings, _dask_client

_SESSIONS: dict[DaskSettings, tuple] = {}


def shared_client(settings: DaskSettings):
    """One client (and LocalCluster, for ``local-cluster``) per process and settings, closed at exit.

    A LocalCluster started here does no work stealing, so a part stays on its worker.
    """
    if settings not in _SESSIONS:
        import dask

        with dask.config.set({"distributed.scheduler.work-stealing": False}):
            _SESSIONS[settings] = _dask_client(settings)
    return _SESSIONS[settings][0]


@atexit.register
def close_clients() -> None:
    """Close every client (and LocalCluster) :func:`shared_client` opened."""
    while _SESSIONS:
        _, (client, cluster) = _SESSIONS.popitem()
        client.close()
        if cluster is not None:
            cluster.close()


def stratified_parts(y: np.ndarray, n_parts: int) -> list[np.ndarray]:
    """Row indices of ``n_parts`` partitions that each hold every class (round-robin within each class).

    Fewer partitions than asked when the rarest class has fewer rows.
    """
    _, counts = np.unique(y, return_counts=True)
    n_parts = max(1, min(n_parts, int(counts.min())))
    order = np.argsort(y, kind="stable")
    rank = np.concatenate([np.arange(c) for c in counts])  # position of each row inside its class
    return [np.sort(order[rank % n_parts == i]) for i in range(n_parts)]


class DaskLGBMClassifier(ClassifierMixin, BaseEstimator):
    """A scikit-learn classifier whose ``fit`` runs ``lightgbm.dask.DaskLGBMClassifier`` on the cluster.

    Parameters
    ----------
    address, workers : the :class:`~pipeline.executor.DaskSettings` of the cluster.
    n_partitions : stratified row parts, one per worker (the cluster needs that many).
    class_weight : ``None`` or ``"balanced"`` (as sample weights over all rows).
    lgbm_params : keyword arguments of ``lightgbm.LGBMClassifier`` (``n_estimators``, ...).
    """

    def __init__(
        self,
        address: str = "local-cluster",
        workers: int = 2,
        n_partitions: int = 2,
        class_weight=None,
        lgbm_params=None,
    ):
        self.address = address
        self.workers = workers
        self.n_partitions = n_partitions
        self.class_weight = class_weight
        self.lgbm_params = lgbm_params

    def fit(self, x: np.ndarray, y: np.ndarray) -> DaskLGBMClassifier:
        import dask.array as da
        from lightgbm.dask import DaskLGBMClassifier as Distributed

        client = shared_client(DaskSettings(self.address, self.workers))
        try:
            client.wait_for_workers(self.n_partitions, timeout=120)
        except Exception as exc:
            raise RuntimeError(
                f"train.lgbm.n_partitions {self.n_partitions}: the cluster has {len(client.nthreads())} worker(s) "
                "after 120 s; start more workers (executor.workers for local-cluster) or lower n_partitions"
            ) from exc
        self.classes_, codes = np.unique(y, return_inverse=True)  # every worker sees the same integer labels
        weights = compute_sample_weight(self.class_weight, codes) if self.class_weight else np.ones(len(codes))
        parts = stratified_parts(codes, self.n_partitions)
        self.part_workers_ = sorted(client.nthreads())[: len(parts)]

        def spread(values: np.ndarray):  # part i lives on worker i
            pieces = [da.from_array(np.ascontiguousarray(values[rows])) for rows in parts]
            placed = [client.persist(p, workers=[w]) for p, w in zip(pieces, self.part_workers_)]
            return da.concatenate(placed)

        model = Distributed(client=client, **(self.lgbm_params or {}))
        with client.as_current():  # lightgbm.dask waits on the current client
            model.fit(spread(np.asarray(x, dtype=np.float64)), spread(codes), sample_weight=spread(weights))
        self.model_ = model.to_local()
        self.booster_ = self.model_.booster_
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (columns in ``classes_`` order), computed here."""
        return self.model_.predict_proba(x)
