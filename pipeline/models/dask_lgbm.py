"""LightGBM trained data-parallel on a Dask cluster (``lightgbm.dask``), predicting locally.

``train.lgbm.distributed: true`` with ``executor.kind: dask`` puts this estimator inside
the same :class:`~pipeline.models.classical.ClassicalFusionClassifier` as local
LightGBM: scalers, projections and fusion are unchanged, only the booster's training
is spread over the workers. The fused matrix becomes a Dask array of one stratified
partition per worker (every partition holds every class, so each worker's LightGBM
agrees on the number of classes); balanced class weights are computed over all rows
here and sent as sample weights. The trained booster comes back with ``to_local()``,
so prediction, saving and the report work as for local LightGBM.
"""

from __future__ import annotations

import atexit

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.class_weight import compute_sample_weight

from pipeline.executor import DaskSettings, _dask_client

_CLIENTS: dict[DaskSettings, object] = {}


def shared_client(settings: DaskSettings):
    """One client (and LocalCluster, for ``local-cluster``) per process and settings, closed at exit."""
    if settings not in _CLIENTS:
        client, cluster = _dask_client(settings)
        _CLIENTS[settings] = client

        def close() -> None:
            client.close()
            if cluster is not None:
                cluster.close()

        atexit.register(close)
    return _CLIENTS[settings]


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
    class_weight : ``None`` or ``"balanced"`` (as sample weights over all rows).
    lgbm_params : keyword arguments of ``lightgbm.LGBMClassifier`` (``n_estimators``, ...).
    """

    def __init__(self, address: str = "local-cluster", workers: int = 2, class_weight=None, lgbm_params=None):
        self.address = address
        self.workers = workers
        self.class_weight = class_weight
        self.lgbm_params = lgbm_params

    def fit(self, x: np.ndarray, y: np.ndarray) -> DaskLGBMClassifier:
        import dask.array as da
        from lightgbm.dask import DaskLGBMClassifier as Distributed

        client = shared_client(DaskSettings(self.address, self.workers))
        self.classes_, codes = np.unique(y, return_inverse=True)  # every worker sees the same integer labels
        weights = compute_sample_weight(self.class_weight, codes) if self.class_weight else np.ones(len(codes))
        parts = stratified_parts(codes, len(client.nthreads()))
        order = np.concatenate(parts)
        rows = tuple(len(p) for p in parts)

        def spread(values: np.ndarray):  # one chunk per stratified partition
            return da.from_array(np.ascontiguousarray(values[order]), chunks=(rows, *values.shape[1:]))

        model = Distributed(client=client, **(self.lgbm_params or {}))
        with client.as_current():  # lightgbm.dask waits on the current client
            model.fit(spread(np.asarray(x, dtype=np.float64)), spread(codes), sample_weight=spread(weights))
        self.model_ = model.to_local()
        self.booster_ = self.model_.booster_
        self.n_parts_ = len(parts)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (columns in ``classes_`` order), computed here."""
        return self.model_.predict_proba(x)
