"""Shared fixtures: a tiny demo project built once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RAVDESS = REPO.parent / "shared" / "data" / "ravdess_song"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads (torch, LightGBM) sleep instead of spinning: the end-to-end `dvc repro` started
# with the session (see ``e2e_repros``) shares the cores with the tests, and spinning steals from both.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TINY_OVERRIDES = {
    "demo": {"n_clips": 40, "duration_s": 2.0},
    "executor": {"n_jobs": 1},  # in this process: a worker pool costs more than 40 tiny clips (tests of the pool set 2)
    "audio": {"melspec_frames": 64},
    "eval": {"n_folds": 4},
    "train": {
        "mlp": {"max_epochs": 30, "patience": 5},
        "multitask": {"max_epochs": 30, "patience": 5},
        "cnn": {"max_epochs": 8, "patience": 4, "time_pool": 2},  # 64 frames -> 32
        "lgbm": {"n_estimators": 40},
    },
}


def merge(base: dict, overrides: dict) -> dict:
    """Recursive dict update (returns a new dict)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(out.get(key) or {}, value) if isinstance(value, dict) and value else value
    return out


def write_params(directory: Path, overrides: dict | None = None) -> Path:
    """The repo's params.yaml with tiny-corpus overrides, written into ``directory``."""
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY_OVERRIDES)
    params = merge(params, overrides or {})
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """A project folder with the demo corpus, the manifest and every feature store built."""
    from pipeline.params import load_params
    from pipeline.stages import (
        audio_features,
        demo_corpus,
        essentia_features,
        musicnn_features,
        prepare,
        text_features,
    )

    root = tmp_path_factory.mktemp("tiny_project")
    write_params(root)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        params = load_params("params.yaml")
        demo_corpus.run(params)
        prepare.run(params)
        audio_features.run(params)
        essentia_features.run(params)
        musicnn_features.run(params)
        text_features.run(params)
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def project(tiny_project: Path, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the tiny project (tests may change it), as the working directory."""
    dest = tmp_path / "project"
    shutil.copytree(tiny_project, dest)
    monkeypatch.chdir(dest)
    return dest


E2E_MODULE = "tests.test_e2e_dvc"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that read the shared real corpus are ``realdata`` tests (``make test-fast`` leaves them out);
    the end-to-end tests run last (the bimodal `dvc repro` starts with the session, see ``e2e_repros``)."""
    for item in items:
        if "ravdess" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)
    items.sort(key=lambda item: getattr(item.module, "__name__", "") == E2E_MODULE)  # stable: the order otherwise stays


@pytest.fixture(scope="session", autouse=True)
def e2e_repros(request, tmp_path_factory):
    """The bimodal end-to-end `dvc repro` (tests/test_e2e_dvc.py), started before the first test.

    It is a subprocess on one core; the rest of the suite runs beside it, and its test
    (the last) waits for it. Nothing starts when that test is not selected.
    """
    selected = {item.name for item in request.session.items if item.module.__name__ == E2E_MODULE}
    if not selected:
        yield {}
        return
    from tests.test_e2e_dvc import start_repros

    started = start_repros(selected, tmp_path_factory)
    yield started
    for repro in started.values():
        repro.stop()


@pytest.fixture(scope="session", autouse=True)
def warm_dask_workers(request):
    """Dask workers of the cluster tests fork from one server that has imported and compiled the feature code.

    Each spawned worker would otherwise import librosa and compile its kernels again (~8 s of
    CPU, a dozen workers per session); a forked one inherits them. Only the tests' local
    clusters start this way: the pipeline's own ``local-cluster`` keeps Dask's default.
    """
    if not any(item.get_closest_marker("cluster") for item in request.session.items):
        yield
        return
    import multiprocessing

    import dask
    from distributed import utils

    multiprocessing.get_context("forkserver").set_forkserver_preload(["distributed", "tests.warm_worker"])
    utils._forkserver_preload_set = True  # keep this list (distributed would set its own)
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        yield


@pytest.fixture
def ravdess() -> Path:
    """The shared real corpus of sung phrases; tests skip when it is absent."""
    if not (RAVDESS / "manifest.csv").exists():
        pytest.skip(f"real corpus not found at {RAVDESS} (only present on the developers' and CI machines)")
    return RAVDESS
