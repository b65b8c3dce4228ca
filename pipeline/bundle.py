"""Final-model bundles: a learner refitted on every labelled clip, with everything needed to use it elsewhere.

``models/bundles/<variant>/`` holds ``model/`` (the learner, in the pickle-free formats
of :mod:`pipeline.models`), ``bundle.json`` (what it reads and how its inputs were made:
the feature configuration of every store, the audio column order, the labels, the
training corpus, the cross-validated metrics, library versions, each file's sha256) and
``MODEL_CARD.md`` (generated from ``bundle.json``). :func:`read_bundle` checks a bundle
before anything is loaded from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FORMAT = 1  # bundle.json "format"; a bundle written by a newer mmer is refused
BUNDLES = Path("models/bundles")


class BundleError(ValueError):
    """A bundle folder that cannot be used: missing, altered, or written by a newer mmer."""


def model_files(folder: Path) -> dict[str, str]:
    """``{path relative to the bundle: sha256}`` of every file of ``folder/model``."""
    from pipeline.store import file_sha256

    model = folder / "model"
    return {str(p.relative_to(folder)): file_sha256(p) for p in sorted(model.rglob("*")) if p.is_file()}


def read_bundle(folder: str | Path) -> dict:
    """``bundle.json``, checked: a known format, every listed file present and unaltered, consistent labels."""
    import json

    folder = Path(folder)
    path = folder / "bundle.json"
    if not path.exists():
        raise BundleError(f"{folder}: no bundle.json; a bundle is a folder written by `mmer bundle` (dvc stage bundle)")
    try:
        bundle = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc
    version = bundle.get("format")
    if version != FORMAT:
        newer = isinstance(version, int) and version > FORMAT
        raise BundleError(
            f"{path}: bundle format {version!r}; this mmer reads format {FORMAT}"
            + ("; upgrade mmer to use it" if newer else "; it was not written by mmer")
        )
    for name in ("variant", "learner", "fusion", "classes", "modalities", "files", "features"):
        if name not in bundle:
            raise BundleError(f"{path}: key {name!r} is missing; rebuild the bundle with `mmer bundle`")
    actual = model_files(folder)
    for name, digest in bundle["files"].items():
        if name not in actual:
            raise BundleError(f"{folder}: {name} is missing (bundle.json lists it); rebuild the bundle")
        if actual[name] != digest:
            raise BundleError(f"{folder}: {name} differs from the sha256 bundle.json records; rebuild the bundle")
    learner_classes = _learner_classes(folder / "model")
    if learner_classes is not None and max(learner_classes, default=-1) >= len(bundle["classes"]):
        raise BundleError(
            f"{path}: the model predicts class index {max(learner_classes)} but bundle.json names "
            f"{len(bundle['classes'])} labels {bundle['classes']}; rebuild the bundle"
        )
    return bundle


def _learner_classes(model: Path) -> list[int] | None:
    """The class indices in the top learner.json, when it lists them."""
    from pipeline.models.artifacts import read_config

    classes = read_config(model).get("classes")
    return None if classes is None else [int(c) for c in classes]


def model_card(bundle: dict) -> str:
    """MODEL_CARD.md: intended use, training data, cross-validated metrics with CI, inputs, limits."""
    training = bundle["training"]
    counts = ", ".join(f"{label} {n}" for label, n in training["label_counts"].items())
    cv = bundle.get("cv_metrics") or {}
    regression = bundle.get("task") == "regression"
    ci = cv.get("ccc_mean_ci95" if regression else "f1_macro_ci95")
    what = (
        f"Predicts {', '.join(bundle['targets'])} (continuous values)"
        if regression
        else f"Predicts one of {len(bundle['classes'])} emotion labels ({', '.join(bundle['classes'])})"
    )
    lines = [
        f"# Model card: {bundle['variant']}",
        "",
        f"mmer {bundle['mmer_version']}, bundle format {bundle['format']}. Generated from `bundle.json`; "
        "do not edit by hand.",
        "",
        "## What it does",
        "",
        f"{what} for a clip, from its {' and '.join(bundle['modalities'])}: learner `{bundle['learner']}`, "
        f"fusion `{bundle['fusion']}`"
        + (f", audio features {', '.join(bundle['audio_sets'])}" if bundle.get("audio_sets") else "")
        + ". Use it with `mmer predict --bundle <this folder> FILES...`.",
        "",
        "## Training data",
        "",
        f"{training['n_clips']} labelled clips of {training['source']}{f' ({counts})' if counts else ''}; "
        f"manifest sha256 `{training['manifest_sha256'][:16]}…`. Refitted on all of them after cross-validation; "
        "the inner validation rows carved as in training chose the stopping point.",
        "",
        "## Cross-validated performance",
        "",
    ]
    if cv and ci and regression:
        per_target = "; ".join(f"{t} {cv[f'ccc_{t}']['mean']:.3f}" for t in bundle["targets"])
        lines += [
            f"- mean CCC {cv['ccc_mean_pooled']:.3f} (95% bootstrap CI {ci[0]:.3f}–{ci[1]:.3f}), pooled out-of-fold "
            f"predictions; per target over folds: {per_target}",
            f"- quadrant accuracy {cv['quadrant_accuracy']['mean']:.3f}; RMSE {cv['rmse_mean']['mean']:.3f}",
            "",
            "These are the scores of the fold models on held-out clips of the same corpus; the bundled model, "
            "trained on every clip, is expected to do about as well on clips like them, not on other material.",
        ]
    elif cv and ci:
        lines += [
            f"- macro-F1 {cv['f1_macro_pooled']:.3f} (95% bootstrap CI {ci[0]:.3f}–{ci[1]:.3f}), pooled out-of-fold "
            f"predictions, {cv['f1_macro']['mean']:.3f} ± {cv['f1_macro']['std']:.3f} over folds",
            f"- AUC-ROC (macro, one-vs-rest) {cv['auc_roc_macro']['mean']:.3f}; accuracy {cv['accuracy']['mean']:.3f}",
            "",
            "These are the scores of the fold models on held-out clips of the same corpus; the bundled model, "
            "trained on every clip, is expected to do about as well on clips like them, not on other material.",
        ]
    else:
        lines.append("No cross-validated metrics were found (reports/metrics.json had no row for this variant).")
    lines += ["", "## Limits", ""]
    if training.get("demo"):
        lines.append(
            "- Trained on mmer's **synthetic demo corpus** (generated tones, drums and template lyrics): it "
            "says nothing about real music or speech. Use it to try `mmer predict`, not to tag a library."
        )
    lines += [
        "- Inputs must be made the way the training inputs were: `mmer predict` reads the feature configuration "
        "from `bundle.json`, whatever params.yaml says.",
        "- Labels are the training corpus' categories; clips of another kind (genre, language, recording "
        "conditions) may get confident but wrong labels.",
        "",
    ]
    return "\n".join(lines)


def store_features(store: Path, keep: tuple[str, ...] = ("params", "feature_names", "model", "model_id")) -> dict:
    """The parts of a store's metadata that define its features (extraction params, names, model)."""
    from pipeline.store import read_metadata

    meta = read_metadata(store)
    return {k: meta[k] for k in keep if k in meta}


def library_set() -> dict[str, Any]:
    """Versions of the libraries a bundle's features and learner depend on."""
    from pipeline.store import library_versions

    names = ["mmer", "numpy", "scikit-learn", "lightgbm", "torch", "librosa", "essentia", "sentence-transformers"]
    return library_versions(names)
