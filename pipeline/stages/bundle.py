"""Stage ``bundle``: refit the chosen variants on every labelled clip -> models/bundles/<variant>/.

``bundle.variants`` names them (``best`` = rank 1 of the leaderboard, from
reports/summary.json). Each is fitted with its cross-validation recipe: the same
learner and ``train`` values (tuned on all clips when ``tune.enabled``), inner
validation rows carved the same way for early stopping and the late-fusion weight.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from pipeline.bundle import BUNDLES, FORMAT, library_set, model_card, model_files, store_features
from pipeline.models import ZERO_SHOT
from pipeline.params import Params, as_dict
from pipeline.stages import (
    AUDIO_STORE,
    ESSENTIA_STORE,
    MANIFEST,
    MELSPEC_STORE,
    MUSICNN_STORE,
    REPORTS,
    TEXT_STORE,
)
from pipeline.stages import train as train_stage
from pipeline.store import read_metadata, write_json, write_text

NOTE = "NO_BUNDLE.txt"
SET_STORES = {"descriptors": AUDIO_STORE, "essentia": ESSENTIA_STORE}  # the musicnn sets: MUSICNN_STORE


def run(params: Params) -> None:
    """Write one bundle per name in ``bundle.variants`` (and remove bundles no longer named).

    With ``bundle.variants: []`` or ``train.normalize: group`` (new clips would need their
    group's statistics), the folder only holds a note saying why there is no bundle.
    """
    why_none = "bundle.variants is empty" if not params.bundle.variants else None
    if params.train.normalize == "group":
        why_none = "train.normalize is 'group': a bundle would need each new clip's group statistics"
    names = [] if why_none else [best_variant(params) if name == "best" else name for name in params.bundle.variants]
    names = list(dict.fromkeys(names))
    BUNDLES.mkdir(parents=True, exist_ok=True)
    (BUNDLES / NOTE).unlink(missing_ok=True)
    if why_none:
        write_text(f"No bundle: {why_none}.\n", BUNDLES / NOTE)
        print(f"bundle: none written ({why_none})")
    for stale in sorted(p for p in BUNDLES.iterdir() if p.is_dir() and p.name not in names):  # and temp folders
        shutil.rmtree(stale)
    for name in names:
        folder = write_bundle(params, name)
        print(f"bundle {name}: refitted on all labelled clips -> {folder}")


def best_variant(params: Params) -> str:
    """The best variant a bundle can serve: rank 1 of the leaderboard (reports/summary.json), passing over
    variants of ``encoders`` stores (``mmer predict`` does not run transformers encoders yet)."""
    path = REPORTS / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; bundle.variants 'best' needs the report (run `dvc repro report`)")
    summary = json.loads(path.read_text())
    best = summary["best"]["variant"]
    ranked = [best, *(summary.get("f1_macro") or summary.get("ccc_mean") or {})]  # in leaderboard order
    servable = next(name for name in ranked if not encoder_variant(name, params) or name == ranked[-1])
    if servable != best:
        print(f"bundle: best is {servable}, the leaderboard's best that bundles serve ({best} reads an encoder store)")
    return servable


def encoder_variant(name: str, params: Params) -> bool:
    """Whether variant ``name`` reads an ``encoders`` or ``text_encoders`` store (``lgbm@mert-concat``,
    ``zeroshot@clap-audio``, ``mlp@xlmr-text``)."""
    learner, _, sets = name.rpartition("-")[0].partition("@")
    stores = {*params.encoders, *params.text_encoders}
    return learner == ZERO_SHOT or any(s.split(".")[0] in stores for s in sets.split("+") if s)


def parse_variant(name: str) -> tuple[str, str, list[str] | None]:
    """``lgbm@musicnn-concat`` -> (``lgbm``, ``concat``, ``["musicnn"]``); ``mlp-late`` -> (``mlp``, ``late``, None)."""
    head, sep, fusion = name.rpartition("-")
    if not sep or not head:
        raise ValueError(f"bundle.variants: {name!r} is not a variant name like 'lgbm-concat' or 'best'")
    model, _, sets = head.partition("@")
    return model, fusion, sets.split("+") if sets else None


def write_bundle(params: Params, name: str) -> Path:
    """Refit variant ``name`` on all clips and write its bundle folder atomically; returns the folder."""
    if encoder_variant(name, params):
        raise ValueError(
            f"bundle {name}: variants of encoder stores cannot be bundled yet (`mmer predict` does not run "
            "transformers encoders); name another variant in bundle.variants"
        )
    model, fusion, audio_sets = parse_variant(name)
    variant = train_stage.resolve_variant(params, model, fusion, audio_sets)
    if variant.skipped:
        raise ValueError(f"bundle {name}: the variant cannot run here ({variant.skipped})")
    if params.train.normalize == "group":
        raise ValueError(
            f"bundle {name}: train.normalize 'group' needs each new clip's group statistics; bundles support "
            "'global' and 'none'"
        )
    data = train_stage.load_variant_blocks(params, variant)
    wanted = train_stage.wanted_modalities(variant, data.blocks)
    absent = [m for m in wanted if m not in data.blocks]
    if absent:
        raise ValueError(f"bundle {name}: no clip has {', '.join(absent)}")
    blocks = {k: v for k, v in data.blocks.items() if k.removesuffix("_present") in wanted}
    groups = train_stage.grouping(data.rows)
    if params.task == "regression":
        from pipeline.datasets.manifest import target_values
        from pipeline.evaluation import quadrant_codes

        classes, y = [], target_values(data.rows, params.dataset.targets)
        learner, tuned = fit_on_all(
            params, variant, blocks, y, groups, 0, strata=quadrant_codes(y - params.dataset.target_center)
        )
    else:
        classes = params.dataset.labels or read_metadata(MANIFEST)["classes"]
        y = np.array([classes.index(label) for label in data.rows["label"]])
        learner, tuned = fit_on_all(params, variant, blocks, y, groups, len(classes))
    final = BUNDLES / name
    BUNDLES.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=BUNDLES))
    try:
        learner.save(tmp / "model")
        bundle = describe(params, variant, data, wanted, classes, tuned)
        bundle["files"] = model_files(tmp)
        write_json(bundle, tmp / "bundle.json")
        write_text(model_card(bundle), tmp / "MODEL_CARD.md")
        os.chmod(tmp, 0o755)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def fit_on_all(
    params: Params, variant, blocks: dict[str, np.ndarray], y: np.ndarray, groups, n_classes: int, strata=None
) -> tuple[object, dict | None]:
    """The variant's learner fitted on all clips, validation carved as in cross-validation (stratified on
    ``strata``, default ``y``); and the tuned values."""
    from pipeline.evaluation import Split, carve_validation

    fit, val = carve_validation(y if strata is None else strata, groups, params.eval.val_fraction, params.seed)
    build = train_stage.learner_factory(params, variant)
    chosen = {}
    tuner = train_stage.make_tuner(params, variant, build, groups, n_classes, 1)
    if tuner is not None:
        seen = np.concatenate([fit, val])
        chosen = tuner({m: x[seen] for m, x in blocks.items()}, y[seen], Split(0, 0, fit, val, np.array([], int)))
    part = {name: {m: x[rows] for m, x in blocks.items()} for name, rows in (("fit", fit), ("val", val))}
    learner = build(**chosen).fit(part["fit"], y[fit], validation=(part["val"], y[val]))
    return learner, (chosen or None)


def text_weights(model: str) -> str:
    """What identifies the text model's weights (package version, or the files' hash for a local folder)."""
    from pipeline.features.text import model_fingerprint, resolve_model

    return model_fingerprint(model, resolve_model(model)[1])


def describe(params: Params, variant, data, wanted: tuple[str, ...], classes: list[str], tuned: dict | None) -> dict:
    """bundle.json without its file list: the variant, its inputs' making, the training corpus, the CV metrics."""
    from pipeline import __version__

    manifest = read_metadata(MANIFEST)
    features: dict = {}
    if "audio" in wanted and variant.model == "cnn":
        features["melspec"] = store_features(MELSPEC_STORE)
    elif "audio" in wanted:
        for audio_set in variant.audio_sets:
            store = SET_STORES.get(audio_set, MUSICNN_STORE)
            features[audio_set] = store_features(store)
    if "text" in wanted:
        features["text"] = {**store_features(TEXT_STORE), "representation": params.text.representation}
        if params.text.representation == "embedding":
            features["text"]["weights"] = text_weights(params.text.model)
    metrics_path = REPORTS / "metrics.json"
    cv = (
        json.loads(metrics_path.read_text()).get(variant.name, {}).get(variant.fusion)
        if metrics_path.exists()
        else None
    )
    return {
        "format": FORMAT,
        "mmer_version": __version__,
        "variant": f"{variant.name}-{variant.fusion}",
        "learner": variant.model,
        "fusion": variant.fusion,
        "audio_sets": [] if "audio" not in wanted else ["melspec"] if variant.model == "cnn" else variant.audio_sets,
        "modalities": list(wanted),
        "task": params.task,
        "classes": classes,
        "targets": list(params.dataset.targets) if params.task == "regression" else [],
        "target_center": params.dataset.target_center,
        "audio_columns": data.audio_names if "audio" in wanted and variant.model != "cnn" else [],
        "features": features,
        "train": as_dict(params.train),
        "tuned": tuned,
        "seed": params.seed,
        "training": {
            "n_clips": len(data.rows),
            "label_counts": {c: int((data.rows["label"] == c).sum()) for c in classes},
            "manifest_sha256": manifest["content_sha256"],
            "source": manifest["source"],
            "demo": params.dataset.kind == "demo",
        },
        "cv_metrics": cv,
        "versions": library_set(),
    }
