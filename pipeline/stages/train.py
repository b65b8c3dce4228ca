"""Stage ``train@<model>-<fusion>``: cross-validate one learner x fusion variant."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation import cross_validate, make_folds, summarize
from pipeline.fusion import modalities_for
from pipeline.models import make_learner
from pipeline.params import Params, as_dict
from pipeline.stages import AUDIO_STORE, MANIFEST, MODELS, TEXT_STORE
from pipeline.store import oof_schema, read_matrix, read_metadata, read_store, write_json, write_store


def load_blocks(modalities: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, np.ndarray], int]:
    """Manifest rows that have every needed modality, their feature blocks, and how many were dropped.

    Clips missing from a store (recorded in its errors table) are left out, never imputed.
    """
    manifest = read_store(MANIFEST, columns=["clip_id", "label", "group"])
    keep = np.ones(len(manifest), dtype=bool)
    tables = {}
    if "audio" in modalities:
        audio = read_store(AUDIO_STORE).set_index("clip_id")
        tables["audio"] = audio
        keep &= manifest["clip_id"].isin(audio.index).to_numpy()
    if "text" in modalities:
        ids, matrix = read_matrix(TEXT_STORE)
        tables["text"] = pd.DataFrame(matrix, index=ids)
        keep &= manifest["clip_id"].isin(ids).to_numpy()
    rows = manifest[keep].reset_index(drop=True)
    blocks = {m: tables[m].loc[rows["clip_id"]].to_numpy(dtype=np.float32) for m in modalities}
    return rows, blocks, int((~keep).sum())


def run(params: Params, model: str, fusion: str) -> None:
    """Write models/<model>-<fusion>/{metrics.json, oof.parquet}."""
    out_dir = MODELS / f"{model}-{fusion}"
    rows, blocks, n_excluded = load_blocks(modalities_for(fusion))
    classes = params.dataset.labels or sorted(rows["label"].unique())
    y = np.array([classes.index(label) for label in rows["label"]])
    groups = rows["group"].to_numpy() if rows["group"].notna().all() else None
    folds = make_folds(y, groups, params.train.n_folds, params.seed)
    oof, fold_of, per_fold = cross_validate(
        lambda: make_learner(model, fusion, params.train, params.seed), blocks, y, folds, len(classes)
    )
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
    manifest_meta = read_metadata(MANIFEST)
    write_store(
        predictions,
        out_dir / "oof.parquet",
        oof_schema(classes),
        {"store": "oof", "model": model, "fusion": fusion, "classes": classes},
    )
    metrics = {
        "model": model,
        "fusion": fusion,
        "classes": classes,
        "n_clips": len(rows),
        "n_excluded": n_excluded,
        "n_folds": len(folds),
        "grouped": groups is not None,
        "feature_dims": {m: int(x.shape[1]) for m, x in blocks.items()},
        "folds": per_fold,
        "summary": summarize(per_fold),
        "params": {"seed": params.seed, "train": as_dict(params.train)},
        "dataset": manifest_meta.get("params", {}).get("dataset", {}),
    }
    write_json(metrics, out_dir / "metrics.json")
    f1 = metrics["summary"]["f1_macro"]
    print(f"train {model}-{fusion}: macro-F1 {f1['mean']:.3f} ± {f1['std']:.3f} over {len(folds)} folds")
