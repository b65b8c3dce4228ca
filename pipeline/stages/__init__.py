"""Thin stage scripts: read inputs, call pure functions, write outputs atomically.

Paths are fixed here so ``dvc.yaml``, the stages and the tests agree.
"""

from pathlib import Path

DEMO_ROOT = Path("data/demo")
MANIFEST = Path("data/manifest.parquet")
AUDIO_STORE = Path("features/audio.parquet")
MELSPEC_STORE = Path("features/melspec.parquet")
AUDIO_ERRORS = Path("features/audio_errors.parquet")
ESSENTIA_STORE = Path("features/essentia.parquet")
ESSENTIA_ERRORS = Path("features/essentia_errors.parquet")
MUSICNN_STORE = Path("features/musicnn.parquet")
MUSICNN_ERRORS = Path("features/musicnn_errors.parquet")
TEXT_STORE = Path("features/text.parquet")
MODELS = Path("models")
REPORTS = Path("reports")
ENCODER_MODELS = MODELS / "enc"  # train_encoders variants, and encoders.json (what each encoder resolved to)
ENCODERS_INDEX = ENCODER_MODELS / "encoders.json"


def encoder_store(name: str) -> Path:
    """``features/enc_<name>.parquet``: the store of encoder ``name`` (params.yaml ``encoders``)."""
    return Path(f"features/enc_{name}.parquet")


def text_set_store(name: str) -> Path:
    """The store of text set ``name``: ``default`` -> features/text.parquet, else features/text_<name>.parquet."""
    return TEXT_STORE if name == "default" else Path(f"features/text_{name}.parquet")


def encoder_errors(name: str) -> Path:
    """``features/enc_<name>_errors.parquet``: the clips encoder ``name`` could not embed."""
    return Path(f"features/enc_{name}_errors.parquet")
