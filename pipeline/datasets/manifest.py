"""Dataset adapters and manifest validation (the ``prepare`` stage's logic).

Every adapter returns the same table: ``clip_id, audio_path, text, label, group,
split`` (``group`` and ``split`` nullable). Validation runs before any heavy work and
names the offending rows and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pipeline.store import MANIFEST_SCHEMA

COLUMNS = MANIFEST_SCHEMA.names
REQUIRED = ("clip_id", "audio_path", "label")


class ManifestError(ValueError):
    """The dataset manifest cannot be used as it is."""


def read_manifest_file(path: str | Path, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a user manifest (CSV or Parquet) and map its columns to mmer's names.

    ``columns`` maps mmer names to the file's names (``{clip_id: id, group: speaker}``);
    unmapped mmer names default to themselves; extra columns are kept. Audio paths
    are resolved relative to the manifest's folder.
    """
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found; set dataset.manifest in params.yaml")
    raw = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
    mapping = dict(columns or {})
    unknown = sorted(set(mapping) - set(COLUMNS))
    if unknown:
        raise ManifestError(f"dataset.columns: unknown mmer column(s) {unknown}; mmer columns are {COLUMNS}")
    missing = [mapping.get(c, c) for c in REQUIRED if mapping.get(c, c) not in raw.columns]
    if missing:
        raise ManifestError(
            f"{path}: missing required column(s) {missing}; found {list(raw.columns)}. "
            "Map your names with dataset.columns in params.yaml, e.g. {clip_id: id}"
        )
    df = raw.rename(columns={src: dst for dst, src in mapping.items()}).replace({"": None})
    base = path.parent
    df["audio_path"] = [
        None if p is None else os.path.relpath(base / p) if not os.path.isabs(p) else p for p in df["audio_path"]
    ]
    return df


def validate_manifest(
    df: pd.DataFrame, n_folds: int, labels: list[str] | None = None, check_files: bool = True
) -> pd.DataFrame:
    """Check a manifest and return it with mmer's columns first, sorted by clip_id.

    Raises :class:`ManifestError` for a missing column, blank/duplicate ids, blank or
    unknown labels, classes smaller than ``n_folds``, or missing audio files.
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ManifestError(f"manifest: missing required column(s) {missing}")
    df = df.copy()
    for optional in ("text", "group", "split"):
        if optional not in df.columns:
            df[optional] = None
    df["clip_id"] = df["clip_id"].astype("string")
    blank_ids = df["clip_id"].isna() | (df["clip_id"].str.strip() == "")
    if blank_ids.any():
        raise ManifestError(f"manifest: {int(blank_ids.sum())} row(s) have a blank clip_id (rows {_rows(blank_ids)})")
    dup = df["clip_id"].duplicated(keep=False)
    if dup.any():
        ids = sorted(df.loc[dup, "clip_id"].unique())
        raise ManifestError(
            f"manifest: duplicate clip_id(s) {ids[:5]}{' ...' if len(ids) > 5 else ''}; ids must be unique"
        )
    blank_labels = df["label"].isna() | (df["label"].astype(str).str.strip() == "")
    if blank_labels.any():
        raise ManifestError(
            f"manifest: {int(blank_labels.sum())} clip(s) have no label, e.g. {df.loc[blank_labels, 'clip_id'].iloc[0]}"
        )
    df["label"] = df["label"].astype(str).str.strip()
    if labels is not None:
        unknown = sorted(set(df["label"]) - set(labels))
        if unknown:
            raise ManifestError(f"manifest: unknown label(s) {unknown}; dataset.labels allows {labels}")
    counts = df["label"].value_counts()
    if len(counts) < 2:
        raise ManifestError(f"manifest: only one class ({counts.index[0]!r}); classification needs at least two")
    small = counts[counts < n_folds]
    if len(small):
        detail = ", ".join(f"{lab!r} has {n}" for lab, n in small.items())
        raise ManifestError(f"manifest: class(es) with fewer clips than train.n_folds={n_folds}: {detail}")
    if df["audio_path"].isna().any():
        raise ManifestError(f"manifest: clip {df.loc[df['audio_path'].isna(), 'clip_id'].iloc[0]} has no audio_path")
    if check_files:
        absent = [p for p in df["audio_path"] if not os.path.isfile(p)]
        if absent:
            raise ManifestError(
                f"manifest: {len(absent)} audio file(s) not found, e.g. {absent[0]}; "
                "paths are relative to the manifest file's folder"
            )
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + extra].sort_values("clip_id", kind="stable").reset_index(drop=True)


def _rows(mask: pd.Series) -> list[int]:
    return [int(i) for i in mask[mask].index[:5]]
