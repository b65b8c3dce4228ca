"""MERGE, the bimodal music-emotion dataset (Louro et al. 2024, Zenodo record 13939205), as an mmer manifest.

``dataset.root`` is the folder the release archives were unpacked into (or one
``MERGE_<Subset>_<Variant>`` folder itself). Each archive holds one folder, e.g.
``MERGE_Bimodal_Balanced/``::

    merge_bimodal_balanced_metadata.csv     Audio_Song, Lyric_Song, Quadrant, Artist, Title, ...
    merge_bimodal_balanced_av_values.csv    Audio_Song, Lyric_Song, Arousal, Valence
    audio/Q1..Q4/<Audio_Song>.mp3
    lyrics/Q1..Q4/<Lyric_Song>.txt
    tvt_dataframes/tvt_70_15_15/tvt_70_15_15_{train,validate,test}_bimodal_balanced.csv   (Song, Quadrant)
    tvt_dataframes/tvt_40_30_30/...

The audio-only and lyrics-only folders (``MERGE_Audio_*``, ``MERGE_Lyrics_*``) key
their CSVs by ``Song`` and keep files directly under ``Q1..Q4/`` (``.mp3`` / ``.txt``).
Labels are the quadrants; arousal and valence are kept as extra columns, the artist is
the ``group`` (no artist in both training and test folds) and the official split
files fill ``split`` (``eval.scheme: fixed`` uses them, as the MERGE paper does).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.datasets.manifest import ManifestError, read_text_file

SUBSETS = {"audio": "Audio", "lyrics": "Lyrics", "bimodal": "Bimodal"}
VARIANTS = {"balanced": "Balanced", "complete": "Complete"}
SPLITS = ("70_15_15", "40_30_30", "none")
SPLIT_NAMES = ("train", "validate", "test")


def release_folder(root: str | Path, subset: str, variant: str) -> Path:
    """The ``MERGE_<Subset>_<Variant>`` folder under ``root`` (or ``root`` itself)."""
    root = Path(root)
    name = f"MERGE_{SUBSETS[subset]}_{VARIANTS[variant]}"
    metadata = f"merge_{subset}_{variant}_metadata.csv"
    for folder in (root / name, root):
        if (folder / metadata).is_file():
            return folder
    raise ManifestError(
        f"{root / name / metadata}: not found. dataset.root must be the folder the MERGE release was unpacked "
        f"into (holding {name}/); download it with `mmer fetch merge --dest {root}`"
    )


def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise ManifestError(f"{path}: not found; is the MERGE release complete (unpacked from its zip archive)?")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    return table


def read_merge(root: str | Path, subset: str = "bimodal", variant: str = "balanced", split: str = "70_15_15"):
    """The manifest of one MERGE subset and variant: clip_id, audio_path, text, label, group, split + extras.

    Lyrics are read into ``text`` (``lyrics`` and ``bimodal`` subsets); ``audio_path`` is
    empty for the ``lyrics`` subset and ``text`` for the ``audio`` subset. Raises
    :class:`ManifestError` naming the first expected file that is missing.
    """
    if subset not in SUBSETS or variant not in VARIANTS or split not in SPLITS:
        raise ManifestError(
            f"MERGE: dataset.subset must be one of {list(SUBSETS)}, dataset.variant one of {list(VARIANTS)}, "
            f"dataset.split one of {list(SPLITS)}; got {subset!r}, {variant!r}, {split!r}"
        )
    folder = release_folder(root, subset, variant)
    stem = f"merge_{subset}_{variant}"
    key = "Audio_Song" if subset == "bimodal" else "Song"
    lyric_key = "Lyric_Song" if subset == "bimodal" else "Song"
    metadata = _read_csv(
        folder / f"{stem}_metadata.csv", [key, "Quadrant"] + (["Lyric_Song"] if subset == "bimodal" else [])
    )
    av = _read_csv(folder / f"{stem}_av_values.csv", [key, "Arousal", "Valence"])
    for name, frame in (("metadata", metadata), ("av_values", av)):
        repeated = frame[key][frame[key].duplicated()]
        if len(repeated):
            raise ManifestError(f"{folder / f'{stem}_{name}.csv'}: {key} {repeated.iloc[0]!r} appears more than once")
    table = metadata.merge(av[[key, "Arousal", "Valence"]], on=key, how="left")
    quadrant = table["Quadrant"].str.strip()
    df = pd.DataFrame(
        {
            "clip_id": table[key].str.strip(),
            "label": quadrant,
            "group": table["Artist"].str.strip() if "Artist" in table else pd.NA,
            "arousal": pd.to_numeric(table["Arousal"], errors="coerce"),
            "valence": pd.to_numeric(table["Valence"], errors="coerce"),
        }
    )
    if "Title" in table:
        df["title"] = table["Title"]
    audio_dir = folder / "audio" if subset == "bimodal" else folder
    lyrics_dir = folder / "lyrics" if subset == "bimodal" else folder
    df["audio_path"] = None
    if subset != "lyrics":
        df["audio_path"] = [str(audio_dir / q / f"{song}.mp3") for q, song in zip(quadrant, df["clip_id"])]
        _require_files(df["audio_path"])
    df["text"] = None
    if subset != "audio":
        lyric_ids = table[lyric_key].str.strip()
        paths = [lyrics_dir / q / f"{song}.txt" for q, song in zip(quadrant, lyric_ids)]
        _require_files([str(p) for p in paths])
        df["text"] = [read_text_file(p) for p in paths]
        if subset == "bimodal":
            df["lyric_id"] = lyric_ids
    df["split"] = None
    if split != "none":
        assignment = read_split(folder, split, subset, variant)
        tvt = folder / "tvt_dataframes" / f"tvt_{split}"
        unassigned = df.loc[~df["clip_id"].isin(assignment.index), "clip_id"]
        unknown = assignment.index[~assignment.index.isin(df["clip_id"])]
        if len(unassigned) or len(unknown):
            example = f"{unassigned.iloc[0]!r} is in no split file" if len(unassigned) else f"{unknown[0]!r} is unknown"
            raise ManifestError(
                f"MERGE split files in {tvt} do not match {stem}_metadata.csv ({key}): {len(unassigned)} song(s) "
                f"without a split, {len(unknown)} song(s) not in the metadata; e.g. {example}"
            )
        df["split"] = assignment.reindex(df["clip_id"]).to_numpy()
    return df


def read_split(folder: Path, split: str, subset: str, variant: str) -> pd.Series:
    """``Song -> train/validate/test`` from the official ``tvt_dataframes`` CSVs."""
    parts = []
    for name in SPLIT_NAMES:
        path = folder / "tvt_dataframes" / f"tvt_{split}" / f"tvt_{split}_{name}_{subset}_{variant}.csv"
        songs = _read_csv(path, ["Song"])["Song"].str.strip()
        parts.append(pd.Series(name, index=songs))
    assignment = pd.concat(parts)
    twice = assignment.index[assignment.index.duplicated()]
    if len(twice):
        raise ManifestError(f"MERGE split {split}: song {twice[0]} is in more than one of {SPLIT_NAMES}")
    return assignment


def _require_files(paths) -> None:
    absent = [p for p in paths if not Path(p).is_file()]
    if absent:
        raise ManifestError(f"MERGE: {len(absent)} file(s) named by the metadata are missing, e.g. {absent[0]}")
