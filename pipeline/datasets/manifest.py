"""Dataset adapters and manifest validation (the ``prepare`` stage's logic).

Every adapter returns the same table: ``clip_id, audio_path, text, label, group,
split`` (``group`` and ``split`` nullable; ``audio_path`` empty for every clip of a
text-only corpus, ``text`` for an audio-only one) plus any extra columns. Validation
runs before any heavy work and names the offending rows and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.sources import is_url, sources_exist
from pipeline.store import MANIFEST_SCHEMA

COLUMNS = MANIFEST_SCHEMA.names
REQUIRED = ("clip_id", "label")
INPUT_ONLY = ("text_path", "fold")  # may be mapped in dataset.columns; not part of every manifest


def read_text_file(path: str | Path) -> str:
    """A lyrics/transcript file's text as UTF-8 (with or without BOM).

    Bytes that are not UTF-8 become U+FFFD; ``prepare`` lists the clips they touched in
    the manifest's metadata (``text_decoding_replaced``) and warns.
    """
    return Path(path).read_bytes().decode("utf-8-sig", errors="replace")


class ManifestError(ValueError):
    """The dataset manifest cannot be used as it is."""


def read_manifest_file(path: str | Path, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a user manifest (CSV or Parquet) and map its columns to mmer's names.

    ``columns`` maps mmer names to the file's names (``{clip_id: id, group: speaker}``);
    unmapped mmer names default to themselves; extra columns are kept. Audio paths
    are resolved relative to the manifest's folder. A ``text_path`` column names a
    ``.txt``/``.lrc`` file per clip (relative to the manifest) whose content becomes
    the clip's text where ``text`` is empty; a ``fold`` column gives predefined folds
    (``eval.scheme: predefined``).
    """
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found; set dataset.manifest in params.yaml")
    if path.suffix == ".parquet":
        raw = pd.read_parquet(path)
    else:  # bytes that are not UTF-8 become U+FFFD; prepare records the clips they touched
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding_errors="replace")
    mapping = dict(columns or {})
    unknown = sorted(set(mapping) - set(COLUMNS) - set(INPUT_ONLY))
    if unknown:
        raise ManifestError(
            f"dataset.columns: unknown mmer column(s) {unknown}; mmer columns are {COLUMNS + list(INPUT_ONLY)}"
        )
    missing = [mapping.get(c, c) for c in REQUIRED if mapping.get(c, c) not in raw.columns]
    if not any(mapping.get(c, c) in raw.columns for c in ("audio_path", "text", "text_path")):
        missing.append("audio_path or text or text_path")
    if missing:
        raise ManifestError(
            f"{path}: missing required column(s) {missing}; found {list(raw.columns)}. "
            "Map your names with dataset.columns in params.yaml, e.g. {clip_id: id}"
        )
    df = normalize_columns(raw.rename(columns={src: dst for dst, src in mapping.items()}))
    base = path.parent
    refuse_escaping_paths(df, "audio_path", base, path)
    if "text_path" in df.columns:
        df["text_path"] = df["text_path"].astype("string").str.strip().replace("", pd.NA)
        refuse_escaping_paths(df, "text_path", base, path, follow_links=True)
    prefix = os.path.relpath(base)  # relative paths become relative to the working directory
    df["audio_path"] = [
        p if pd.isna(p) or os.path.isabs(p) or is_url(p) else os.path.normpath(os.path.join(prefix, p))
        for p in df["audio_path"]
    ]
    if "text_path" in df.columns:
        df["text"] = [
            text if pd.notna(text) or pd.isna(tp) else _read_sidecar(Path(os.path.realpath(base / str(tp))), path)
            for text, tp in zip(df["text"], df["text_path"])
        ]
        df["text"] = df["text"].astype("string")
    if "fold" in df.columns:
        fold = df["fold"].astype("string").str.strip()
        df["fold"] = fold.mask(fold == "")
    return df


def refuse_escaping_paths(
    df: pd.DataFrame, column: str, base: Path, manifest: Path, follow_links: bool = False
) -> None:
    """A relative path must stay inside the manifest's folder (``../../etc/passwd`` is refused, never opened).

    By default the check is on the written path (nothing is touched), so a symlink
    inside the folder may lead to data elsewhere, as data folders often do. With
    ``follow_links`` (text files, whose contents are copied into the manifest store)
    symlinks are resolved first, so a link may not lead out. Absolute paths are taken
    as the user wrote them.
    """
    root = os.path.realpath(base) if follow_links else os.path.abspath(base)
    inside = root.rstrip(os.sep) + os.sep
    for clip_id, value in zip(df["clip_id"], df[column]):
        if pd.isna(value) or os.path.isabs(str(value)):
            continue
        if is_url(str(value)):
            if column == "audio_path":  # decoded through fsspec
                continue
            raise ManifestError(
                f"{manifest}: {column} {value!r} of clip {clip_id!r} is a URL; text files must be local "
                "(put the text in the text column instead)"
            )
        joined = os.path.join(root, str(value))
        target = os.path.realpath(joined) if follow_links else os.path.normpath(joined)
        if not (target == root or target.startswith(inside)):
            raise ManifestError(
                f"{manifest}: {column} {value!r} of clip {clip_id!r} leaves the manifest's folder {base}; "
                "refused (use a path inside it, or an absolute path)"
            )


def _read_sidecar(path: Path, manifest: Path) -> str:
    if not path.is_file():
        raise ManifestError(f"{manifest}: text_path {path} not found (text paths are relative to the manifest)")
    return read_text_file(path)


def normalize_columns(df: pd.DataFrame) -> pd.DataFrame:
    """mmer's columns as pandas strings, blanks as missing; added when absent.

    Integral numbers stay integral (label ``3``, not ``3.0``), whatever the file type.
    """
    df = df.copy()
    for column in COLUMNS:
        if column not in df.columns:
            df[column] = pd.NA
        values = df[column]
        if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
            values = values.astype("Int64")
        values = values.astype("string").str.strip()
        df[column] = values.mask(values == "")
    return df


def validate_manifest(
    df: pd.DataFrame, n_folds: int, labels: list[str] | None = None, check_files: bool = True
) -> pd.DataFrame:
    """Check a manifest and return it with mmer's columns first, sorted by clip_id.

    A clip without text is fine (its text modality counts as missing). Raises
    :class:`ManifestError` for a missing column, blank/duplicate ids, a clip without
    label or audio path, labels outside (or declared but unused in)
    ``labels``, fewer than two classes, classes smaller than ``n_folds``, a group
    column filled for only some clips or with fewer groups than folds, and missing
    audio files. Runs before any heavy work.
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ManifestError(f"manifest: missing required column(s) {missing}")
    df = normalize_columns(df)
    if df.empty:
        raise ManifestError("manifest: no clips (the file has a header but no rows)")
    ids = df["clip_id"]
    if ids.isna().any():
        raise ManifestError(f"manifest: {int(ids.isna().sum())} row(s) have a blank clip_id (rows {_rows(ids.isna())})")
    dup = ids.duplicated(keep=False)
    if dup.any():
        dups = sorted(ids[dup].unique())
        raise ManifestError(
            f"manifest: duplicate clip_id(s) {dups[:5]}{' ...' if len(dups) > 5 else ''}; ids must be unique"
        )
    _require_values(df, "label", "have no label")
    has_audio = df["audio_path"].notna()
    if has_audio.any() and not has_audio.all():
        raise ManifestError(
            f"manifest: {int((~has_audio).sum())} of {len(df)} clips have no audio_path "
            f"(e.g. {df.loc[~has_audio, 'clip_id'].iloc[0]}); give every clip audio, or none (a text-only corpus)"
        )
    if not has_audio.any() and df["text"].isna().any():
        raise ManifestError(
            f"manifest: a text-only corpus (no audio_path), but {int(df['text'].isna().sum())} clip(s) have no "
            f"text either, e.g. {df.loc[df['text'].isna(), 'clip_id'].iloc[0]}"
        )
    counts = df["label"].value_counts()
    if labels is not None:
        unknown = sorted(set(counts.index) - set(labels))
        if unknown:
            raise ManifestError(f"manifest: unknown label(s) {unknown}; dataset.labels allows {labels}")
        unused = [lab for lab in labels if lab not in counts.index]
        if unused:
            raise ManifestError(f"manifest: dataset.labels declares {unused} but no clip has that label")
    if len(counts) < 2:
        raise ManifestError(f"manifest: only one class ({counts.index[0]!r}); classification needs at least two")
    small = counts[counts < n_folds]
    if len(small):
        detail = ", ".join(f"{lab!r} has {n}" for lab, n in small.items())
        raise ManifestError(f"manifest: class(es) with fewer clips than eval.n_folds={n_folds}: {detail}")
    groups = df["group"]
    if groups.notna().any():
        if groups.isna().any():
            raise ManifestError(
                f"manifest: {int(groups.isna().sum())} of {len(df)} clips have no group "
                f"(e.g. {df.loc[groups.isna(), 'clip_id'].iloc[0]}); folds are grouped by it, so give every clip "
                "a group (artist, speaker) or drop the column"
            )
        if groups.nunique() < n_folds:
            raise ManifestError(
                f"manifest: only {groups.nunique()} distinct groups for eval.n_folds={n_folds}; "
                "lower n_folds or check the group column"
            )
    if check_files:
        paths = df["audio_path"].dropna().tolist()
        urls = [p for p in paths if is_url(p)]
        found = dict(zip(urls, sources_exist(urls)))
        absent = [p for p in paths if not (found[p] if is_url(p) else os.path.isfile(p))]
        if absent:
            raise ManifestError(
                f"manifest: {len(absent)} audio file(s) not found, e.g. {absent[0]}; "
                "paths are relative to the manifest file's folder"
            )
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + extra].sort_values("clip_id", kind="stable").reset_index(drop=True)


def target_values(df: pd.DataFrame, targets: list[str]) -> np.ndarray:
    """The (clips, targets) float matrix of the ``dataset.targets`` columns; every value a finite number.

    Raises :class:`ManifestError` naming the column and the first offending clips.
    """
    missing = [t for t in targets if t not in df.columns]
    if missing:
        extra = [c for c in df.columns if c not in COLUMNS]
        raise ManifestError(
            f"manifest: dataset.targets {missing} not found; its extra columns are {extra} "
            "(rename yours with dataset.columns, e.g. {arousal: Arousal})"
        )
    values = np.empty((len(df), len(targets)))
    for k, target in enumerate(targets):
        column = pd.to_numeric(df[target], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(column)
        if bad.any():
            ids = df["clip_id"].to_numpy()[bad][:5].tolist()
            raise ManifestError(
                f"manifest: target {target!r} is missing or not a finite number for {int(bad.sum())} clip(s), "
                f"e.g. {ids}; fill them or leave those clips out of the manifest"
            )
        values[:, k] = column
    return values


def check_fixed_split(df: pd.DataFrame) -> None:
    """``eval.scheme: fixed`` needs a ``split`` column of train/validate/test with train and test clips."""
    from pipeline.evaluation import FIXED_SPLITS

    split = df["split"]
    if split.isna().any():
        raise ManifestError(
            f"manifest: eval.scheme 'fixed' needs a split (train/validate/test) for every clip; "
            f"{int(split.isna().sum())} have none, e.g. {df.loc[split.isna(), 'clip_id'].iloc[0]}"
        )
    unknown = sorted(set(split) - set(FIXED_SPLITS))
    if unknown:
        raise ManifestError(f"manifest: unknown split value(s) {unknown}; use {list(FIXED_SPLITS)}")
    for needed in ("train", "test"):
        if not (split == needed).any():
            raise ManifestError(f"manifest: eval.scheme 'fixed' needs clips with split '{needed}'")


def check_predefined_folds(df: pd.DataFrame) -> None:
    """``eval.scheme: predefined`` needs a ``fold`` column (e.g. UrbanSound8K's) with at least two folds."""
    if "fold" not in df.columns or df["fold"].isna().any():
        raise ManifestError(
            "manifest: eval.scheme 'predefined' needs a fold for every clip; map your column with "
            "dataset.columns: {fold: <your column>}"
        )
    if df["fold"].nunique() < 2:
        raise ManifestError(f"manifest: eval.scheme 'predefined' needs at least two folds, found {df['fold'].unique()}")


def _require_values(df: pd.DataFrame, column: str, problem: str) -> None:
    blank = df[column].isna()
    if blank.any():
        raise ManifestError(f"manifest: {int(blank.sum())} clip(s) {problem}, e.g. {df.loc[blank, 'clip_id'].iloc[0]}")


def _rows(mask: pd.Series) -> list[int]:
    return [int(i) for i in mask[mask].index[:5]]
