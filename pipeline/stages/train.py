"""Stage ``train@<model>-<fusion>``: cross-validate one learner x fusion variant."""

from __future__ import annotations

import resource
import time

import numpy as np
import pandas as pd

from pipeline.evaluation import cross_validate, make_folds, summarize
from pipeline.features.text import clean_text
from pipeline.fusion import ELEMENTWISE, modalities_for
from pipeline.models import make_learner
from pipeline.params import Params, as_dict
from pipeline.stages import AUDIO_STORE, ESSENTIA_STORE, MANIFEST, MODELS, TEXT_STORE
from pipeline.store import (
    oof_schema,
    read_matrix,
    read_metadata,
    read_store,
    store_metadata,
    write_json,
    write_store,
)

LIBRARIES = ("scikit-learn", "lightgbm", "torch")


def load_audio_block(audio_sets: list[str]) -> pd.DataFrame:
    """The audio modality: the numeric columns of each named audio store, joined on clip_id."""
    stores = {"descriptors": AUDIO_STORE, "essentia": ESSENTIA_STORE}
    block = None
    for name in audio_sets:
        table = read_store(stores[name]).set_index("clip_id")
        table = table.select_dtypes("number").add_prefix(f"{name}:")
        block = table if block is None else block.join(table, how="inner")
    return block


def load_blocks(
    audio_sets: list[str], text_representation: str = "embedding", cleaning: dict | None = None
) -> tuple[pd.DataFrame, dict[str, np.ndarray], int, list[str]]:
    """Manifest rows present in every feature store, the modality blocks, how many were dropped, audio column names.

    Every variant sees the same clips (and so the same folds), whatever its fusion;
    clips missing from an audio store (recorded in its errors table) are left out, never
    imputed. A clip without text stays in: its ``text_present`` is False and its text
    block is zeros (embeddings) or ``""`` (tfidf, where blocks["text"] holds cleaned texts).
    """
    manifest = read_store(MANIFEST, columns=["clip_id", "label", "group", "text"])
    ids, matrix, present = read_matrix(TEXT_STORE)
    audio = load_audio_block(audio_sets)
    keep = manifest["clip_id"].isin(audio.index).to_numpy() & manifest["clip_id"].isin(ids).to_numpy()
    rows = manifest[keep].reset_index(drop=True)
    text_rows = pd.Series(np.arange(len(ids)), index=ids).loc[rows["clip_id"]].to_numpy()
    if text_representation == "tfidf":
        texts = [clean_text(t, **(cleaning or {})) for t in rows["text"]]
        text_block = np.array(texts, dtype=object)
    else:
        text_block = matrix[text_rows]
    blocks = {
        "audio": audio.loc[rows["clip_id"]].to_numpy(dtype=np.float32),
        "text": text_block,
        "text_present": present[text_rows],
    }
    return rows.drop(columns="text"), blocks, int((~keep).sum()), list(audio.columns)


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


def run(params: Params, model: str, fusion: str) -> None:
    """Write models/<model>-<fusion>/{metrics.json, oof.parquet} (+ importance.json for lgbm)."""
    out_dir = MODELS / f"{model}-{fusion}"
    text = params.text
    cleaning = {
        "strip_timestamps": text.strip_timestamps,
        "strip_sections": text.strip_sections,
        "lowercase": text.lowercase,
    }
    rows, all_blocks, n_excluded, audio_names = load_blocks(params.train.audio_sets, text.representation, cleaning)
    wanted = modalities_for(fusion)
    blocks = {key: value for key, value in all_blocks.items() if key.removesuffix("_present") in wanted}
    classes = params.dataset.labels or read_metadata(MANIFEST)["classes"]
    y = np.array([classes.index(label) for label in rows["label"]])
    groups = rows["group"].to_numpy() if rows["group"].notna().all() else None  # prepare allows all or none
    folds = make_folds(y, groups, params.train.n_folds, params.seed)
    fitted: list = []
    started = time.perf_counter()
    oof, fold_of, per_fold = cross_validate(
        lambda: make_learner(
            model, fusion, params.train, params.seed, text.tfidf_dim if text.representation == "tfidf" else None
        ),
        blocks,
        y,
        folds,
        len(classes),
        fitted,
    )
    train_seconds = time.perf_counter() - started
    predictions = pd.DataFrame(
        {
            "clip_id": rows["clip_id"],
            "fold": fold_of,
            "label": rows["label"],
            "predicted": np.array(classes)[oof.argmax(axis=1)],
        }
    )
    for k, c in enumerate(classes):
        predictions[f"proba_{c}"] = oof[:, k]
    write_store(
        predictions,
        out_dir / "oof.parquet",
        oof_schema(classes),
        store_metadata(
            "oof",
            {"seed": params.seed, "train": as_dict(params.train)},
            LIBRARIES,
            MANIFEST,
            model=model,
            fusion=fusion,
            classes=classes,
        ),
    )
    metrics = {
        "model": model,
        "fusion": fusion,
        "classes": classes,
        "n_clips": len(rows),
        "n_excluded": n_excluded,
        "n_folds": len(folds),
        "grouped": groups is not None,
        "feature_dims": {m: int(blocks[m].shape[1]) for m in wanted if blocks[m].ndim == 2},
        "audio_sets": params.train.audio_sets if "audio" in blocks else [],
        "text_representation": text.representation if "text" in blocks else None,
        "n_without_text": int((~all_blocks["text_present"]).sum()),
        "folds": per_fold,
        "summary": summarize(per_fold),
        "params": {"seed": params.seed, "train": as_dict(params.train)},
        "dataset": read_metadata(MANIFEST)["params"]["dataset"],
        # wall time of the whole cross-validation and the stage's peak memory: the only
        # keys that vary between identical runs
        "runtime": {
            "train_seconds": round(train_seconds, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        },
    }
    write_json(metrics, out_dir / "metrics.json")
    if model == "lgbm" and fusion not in ELEMENTWISE:
        text_width = all_blocks["text"].shape[1] if all_blocks["text"].ndim == 2 else 0
        write_json(lgbm_importance(fitted, fusion, audio_names, text_width), out_dir / "importance.json")
    f1 = metrics["summary"]["f1_macro"]
    print(f"train {model}-{fusion}: macro-F1 {f1['mean']:.3f} ± {f1['std']:.3f} over {len(folds)} folds")
