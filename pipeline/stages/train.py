"""Stage ``train@<model>-<fusion>``: cross-validate one learner x fusion variant."""

from __future__ import annotations

import resource
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.evaluation import cross_validate, make_splits, per_class_report, sorted_labels, summarize
from pipeline.features.text import clean_text
from pipeline.fusion import FUSIONS, MODALITIES, modalities_for
from pipeline.models import make_learner
from pipeline.params import Params, as_dict, check_audio_sets
from pipeline.stages import AUDIO_STORE, ESSENTIA_STORE, MANIFEST, MELSPEC_STORE, MODELS, MUSICNN_STORE, TEXT_STORE
from pipeline.store import (
    oof_schema,
    read_matrix,
    read_metadata,
    read_store,
    read_tensor,
    store_metadata,
    write_json,
    write_store,
)

LIBRARIES = ("scikit-learn", "lightgbm", "torch")


# audio set -> (store, prefix of its columns; None = every numeric column)
AUDIO_SET_COLUMNS = {
    "descriptors": (AUDIO_STORE, None),
    "essentia": (ESSENTIA_STORE, None),
    "musicnn": (MUSICNN_STORE, "pool_"),
    "musicnn_penultimate": (MUSICNN_STORE, "penultimate_"),
    "musicnn_tags": (MUSICNN_STORE, "tag_"),
}


def load_audio_block(audio_sets: list[str]) -> pd.DataFrame:
    """The audio modality: the feature columns of each named audio set, joined on clip_id."""
    block = None
    for name in audio_sets:
        store, prefix = AUDIO_SET_COLUMNS[name]
        table = read_store(store).set_index("clip_id").select_dtypes("number")
        if prefix is not None:
            table = table[[c for c in table.columns if c.startswith(prefix)]]
        table = table.add_prefix(f"{name}:")
        block = table if block is None else block.join(table, how="inner")
    return block


def shared_audio_sets(params: Params) -> list[str]:
    """The audio sets whose stores decide the clips of every variant: the descriptors
    (and log-mels), ``train.audio_sets``, and musicnn when enabled (train_musicnn reads it)."""
    sets = ["descriptors", *params.train.audio_sets, *(["musicnn"] if params.musicnn.enabled else [])]
    return list(dict.fromkeys(sets))


def shared_stores(params: Params) -> set:
    """The store files behind :func:`shared_audio_sets`."""
    return {AUDIO_SET_COLUMNS[name][0] for name in shared_audio_sets(params)}


def load_blocks(
    audio_sets: list[str],
    text_representation: str = "embedding",
    cleaning: dict | None = None,
    melspec: bool = False,
    shared_sets: list[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], int, list[str]]:
    """Manifest rows present in every feature store, the modality blocks, how many were dropped, audio column names.

    Every variant sees the same clips (and so the same folds), whatever its learner,
    fusion and audio sets: clips missing from the store of any of ``shared_sets``
    (:func:`shared_audio_sets`; recorded in its errors table) or from the log-mel store
    are left out, never imputed. With ``melspec``, the audio block is the (clips, mel
    bands, frames) log-mel tensor. A clip without text stays in: its ``text_present``
    is False and its text block is zeros (embeddings) or ``""`` (tfidf, where
    blocks["text"] holds cleaned texts). A modality no clip has (a text-only or
    audio-only corpus) has no block at all.
    """
    manifest = read_store(MANIFEST)
    manifest = manifest[
        [c for c in ("clip_id", "audio_path", "label", "group", "split", "fold", "text") if c in manifest]
    ]
    ids, matrix, present = read_matrix(TEXT_STORE)
    has_audio = bool(manifest["audio_path"].notna().any())
    keep = manifest["clip_id"].isin(ids).to_numpy().copy()
    audio = pd.DataFrame()
    if has_audio:
        audio = load_audio_block(audio_sets)
        keep &= manifest["clip_id"].isin(audio.index).to_numpy()
        stores = {MELSPEC_STORE} | {AUDIO_SET_COLUMNS[name][0] for name in shared_sets or []}
        for store in sorted(stores):
            keep &= manifest["clip_id"].isin(read_store(store, columns=["clip_id"])["clip_id"]).to_numpy()
    rows = manifest[keep].reset_index(drop=True)
    text_rows = pd.Series(np.arange(len(ids)), index=ids).loc[rows["clip_id"]].to_numpy()
    blocks: dict[str, np.ndarray] = {}
    if has_audio and melspec:
        tensor_ids, tensors, _ = read_tensor(MELSPEC_STORE)
        blocks["audio"] = tensors[
            pd.Series(np.arange(len(tensor_ids)), index=tensor_ids).loc[rows["clip_id"]].to_numpy()
        ]
    elif has_audio:
        blocks["audio"] = audio.loc[rows["clip_id"]].to_numpy(dtype=np.float32)
    if present[text_rows].any():
        if text_representation == "tfidf":
            blocks["text"] = np.array([clean_text(t, **(cleaning or {})) for t in rows["text"]], dtype=object)
        else:
            blocks["text"] = matrix[text_rows]
        blocks["text_present"] = present[text_rows]
    return rows.drop(columns=["text", "audio_path"]), blocks, int((~keep).sum()), list(audio.columns)


def lgbm_importance(fitted: list, fusion: str, audio_names: list[str], text_width: int) -> dict[str, float]:
    """Mean split gain per input column over the folds' LightGBM models, by column name.

    Columns are named ``audio:<set>:<feature>``, ``text:<index>`` and ``text:missing``.
    Only for variants whose columns are the inputs themselves (audio, text, concat): the
    elementwise fusions see per-fold PCA components, which mean nothing across folds.
    """
    names = {
        "audio": [f"audio:{n}" for n in audio_names],
        "text": [f"text:{i:03d}" for i in range(text_width)] + ["text:missing"],
    }
    columns = [n for m in modalities_for(fusion) for n in names[m]]
    gains = np.mean([getattr(f, "learner_", f).estimator_.booster_.feature_importance("gain") for f in fitted], axis=0)
    if len(columns) != len(gains):  # e.g. TF-IDF text, whose width is chosen per fold
        return {}
    return {name: float(g) for name, g in zip(columns, gains)}


def check_variant(model: str, fusion: str) -> None:
    """The dummy runs once, with fusion ``none``; every other learner needs a real fusion."""
    if (model == "dummy") != (fusion == "none"):
        raise ValueError(
            "the dummy learner ignores its inputs: train it with --fusion none"
            if model == "dummy"
            else f"fusion 'none' is for the dummy learner only; {model} needs one of {FUSIONS}"
        )
    if fusion != "none" and fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {FUSIONS}")


def run(params: Params, model: str, fusion: str, audio_sets: list[str] | None = None) -> None:
    """Write models/<model>-<fusion>/{metrics.json, oof.parquet, folds/} (+ importance.json for lgbm).

    ``audio_sets`` replaces ``train.audio_sets`` for this variant, which is then named
    ``<model>@<set>+<set>`` (``models/lgbm@musicnn-concat``) in its folder and the report.
    """
    check_variant(model, fusion)
    variant = model
    if audio_sets is not None:
        check_audio_sets(params, audio_sets, "--audio-sets", require_enabled=False)
        if model in ("dummy", "cnn"):
            raise ValueError(f"--audio-sets applies to the vector learners; {model} does not read audio stores")
        variant = f"{model}@{'+'.join(audio_sets)}"
    out_dir = MODELS / f"{variant}-{fusion}"
    if audio_sets is not None:
        disabled = sorted(
            {"essentia" for s in audio_sets if s == "essentia" and not params.essentia.enabled}
            | {"musicnn" for s in audio_sets if s.startswith("musicnn") and not params.musicnn.enabled}
        )
        if disabled:
            reason = " and ".join(f"{d}.enabled is false" for d in disabled)
            write_skipped(out_dir, variant, fusion, f"its audio sets need {', '.join(disabled)}, and {reason}")
            return
        outside = [s for s in audio_sets if AUDIO_SET_COLUMNS[s][0] not in shared_stores(params)]
        if outside:
            raise ValueError(
                f"--audio-sets {outside}: every variant is scored on the clips of the stores in "
                f"{shared_audio_sets(params)}; add {outside} to train.audio_sets so that all variants share clips"
            )
    audio_sets = list(audio_sets or params.train.audio_sets)
    text, ev = params.text, params.eval
    cleaning = {
        "strip_timestamps": text.strip_timestamps,
        "strip_sections": text.strip_sections,
        "lowercase": text.lowercase,
    }
    rows, all_blocks, n_excluded, audio_names = load_blocks(
        audio_sets, text.representation, cleaning, melspec=model == "cnn", shared_sets=shared_audio_sets(params)
    )
    available = [m for m in MODALITIES if m in all_blocks]
    wanted = tuple(available[:1]) if model == "dummy" else modalities_for(fusion)
    absent = [m for m in wanted if m not in all_blocks]
    if absent:
        write_skipped(out_dir, variant, fusion, ", ".join(f"no clip has {m}" for m in absent), absent)
        return
    blocks = {key: value for key, value in all_blocks.items() if key.removesuffix("_present") in wanted}
    classes = params.dataset.labels or read_metadata(MANIFEST)["classes"]
    y = np.array([classes.index(label) for label in rows["label"]])
    groups = rows["group"].to_numpy() if rows["group"].notna().all() else None  # prepare allows all or none
    splits = make_splits(
        y,
        groups,
        scheme=ev.scheme,
        n_folds=ev.n_folds,
        n_repeats=ev.n_repeats,
        val_fraction=ev.val_fraction,
        seed=params.seed,
        split=rows["split"].to_numpy(dtype=object) if ev.scheme == "fixed" else None,
        fold=rows["fold"].to_numpy(dtype=object) if ev.scheme == "predefined" else None,
    )
    fitted: list = []
    tfidf_dim = text.tfidf_dim if text.representation == "tfidf" else None
    started = time.perf_counter()
    probabilities, per_fold = cross_validate(
        lambda: make_learner(
            model, fusion, params.train, params.seed, tfidf_dim, ev.val_fraction, params.executor.dask()
        ),
        blocks,
        y,
        splits,
        len(classes),
        fitted,
    )
    train_seconds = time.perf_counter() - started
    test_rows = np.concatenate([s.test for s in splits])
    proba = np.concatenate(probabilities)
    first_repeat = np.concatenate([np.full(len(s.test), s.repeat == 0) for s in splits])
    predictions = pd.DataFrame(
        {
            "clip_id": rows["clip_id"].to_numpy()[test_rows],
            "repeat": np.concatenate([np.full(len(s.test), s.repeat, np.int32) for s in splits]),
            "fold": np.concatenate([np.full(len(s.test), s.fold, np.int32) for s in splits]),
            "label": rows["label"].to_numpy()[test_rows],
            "predicted": np.array(classes)[proba.argmax(axis=1)],
        }
    )
    for k, c in enumerate(classes):
        predictions[f"proba_{c}"] = proba[:, k]
    predictions = predictions.sort_values(["repeat", "clip_id"], kind="stable").reset_index(drop=True)
    run_params = {
        "seed": params.seed,
        "eval": as_dict(ev),
        "train": {**as_dict(params.train), "audio_sets": audio_sets},
    }
    write_store(
        predictions,
        out_dir / "oof.parquet",
        oof_schema(classes),
        store_metadata("oof", run_params, LIBRARIES, MANIFEST, model=variant, fusion=fusion, classes=classes),
    )
    save_fold_models(fitted, splits, out_dir / "folds")
    metrics = {
        "model": variant,
        "learner": model,
        "fusion": fusion,
        "classes": classes,
        "scheme": ev.scheme,
        "n_clips": len(rows),
        "n_test_clips": len(np.unique(test_rows)),
        "n_excluded": n_excluded,
        "n_folds": len({s.fold for s in splits}),
        "n_repeats": len({s.repeat for s in splits}),
        # predefined scheme: the manifest's fold label of each fold index in oof.parquet and "folds"
        "fold_labels": sorted_labels(set(rows["fold"].astype(str))) if ev.scheme == "predefined" else None,
        "grouped": groups is not None,
        "feature_dims": {
            m: list(blocks[m].shape[1:]) if blocks[m].ndim == 3 else int(blocks[m].shape[1])
            for m in wanted
            if blocks[m].ndim >= 2 and model != "dummy"
        },
        # what the audio modality was made of: the audio sets, the log-mel tensor (cnn), or nothing
        "audio_sets": (
            [] if "audio" not in wanted or model == "dummy" else ["melspec"] if model == "cnn" else audio_sets
        ),
        "text_representation": text.representation if "text" in blocks else None,
        "n_without_text": int((~all_blocks["text_present"]).sum()) if "text" in all_blocks else len(rows),
        "modalities": available,
        "folds": per_fold,
        "summary": summarize(per_fold),
        # per-class scores and confusion counts of the first repeat: one prediction per test clip
        **per_class_report(y[test_rows][first_repeat], proba[first_repeat], classes),
        "params": run_params,
        "dataset": read_metadata(MANIFEST)["params"]["dataset"],
        # wall time of the whole protocol and the stage's peak memory: the only keys
        # that vary between identical runs
        "runtime": {
            "train_seconds": round(train_seconds, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        },
    }
    write_json(metrics, out_dir / "metrics.json")
    if model == "lgbm" and fusion in ("audio", "text", "concat"):
        text_width = all_blocks["text"].shape[1] if "text" in all_blocks and all_blocks["text"].ndim == 2 else 0
        write_json(lgbm_importance(fitted, fusion, audio_names, text_width), out_dir / "importance.json")
    f1 = metrics["summary"]["f1_macro"]
    where = "the test split" if ev.scheme == "fixed" else f"{len(splits)} folds"
    print(f"train {variant}-{fusion}: macro-F1 {f1['mean']:.3f} ± {f1['std']:.3f} over {where}")


def write_skipped(out_dir: Path, model: str, fusion: str, reason: str, absent: list[str] = ()) -> None:
    """A variant that cannot run here (a modality the corpus lacks, a disabled store): its metrics.json
    says why, and nothing else is written."""
    shutil.rmtree(out_dir, ignore_errors=True)
    absent = list(absent)
    write_json(
        {"model": model, "fusion": fusion, "skipped": reason, "absent_modalities": absent}, out_dir / "metrics.json"
    )
    print(f"train {model}-{fusion}: skipped ({reason})")


def save_fold_models(fitted: list, splits: list, folder: Path) -> None:
    """The fitted learners of the first repeat, one folder per fold (``load_learner`` reads them back)."""
    shutil.rmtree(folder, ignore_errors=True)  # no stale folds from an earlier run with more folds
    for learner, split in zip(fitted, splits):
        if split.repeat == 0:
            learner.save(folder / f"fold{split.fold}")
