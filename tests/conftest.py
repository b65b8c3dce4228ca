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

TINY_OVERRIDES = {
    "demo": {"n_clips": 40, "duration_s": 2.0},
    "executor": {"n_jobs": 1},  # in this process: a worker pool costs more than 40 tiny clips (tests of the pool set 2)
    "audio": {"melspec_frames": 64},
    "eval": {"n_folds": 4},
    "train": {
        "mlp": {"max_epochs": 30, "patience": 5},
        "multitask": {"max_epochs": 30, "patience": 5},
        "cnn": {"max_epochs": 8, "patience": 4},
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that read the shared real corpus are ``realdata`` tests (``make test-fast`` leaves them out)."""
    for item in items:
        if "ravdess" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)


@pytest.fixture
def ravdess() -> Path:
    """The shared real corpus of sung phrases; tests skip when it is absent."""
    if not (RAVDESS / "manifest.csv").exists():
        pytest.skip(f"real corpus not found at {RAVDESS} (only present on the developers' and CI machines)")
    return RAVDESS
