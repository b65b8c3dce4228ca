"""``mmer inspect PATH``: what a store holds and how it was made."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.store import read_metadata


def column_group(name: str) -> str:
    """Feature family of a column: ``mfcc_03_mean`` -> ``mfcc``; ``spectral_centroid_std`` -> ``spectral_centroid``."""
    stem = re.sub(r"_(mean|std)$", "", name)
    return re.sub(r"_\d+$", "", stem)


def describe(path: str | Path) -> str:
    """A readable summary: rows, columns, null/NaN counts per column group, metadata."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such store")
    table = pq.read_table(path)
    groups: dict[str, list[int]] = {}
    for field, column in zip(table.schema, table.columns):
        nulls = column.null_count
        nans = 0
        if field.type in ("float", "double"):
            nans = int(pc.sum(pc.is_nan(column)).as_py() or 0)
        counts = groups.setdefault(column_group(field.name), [0, 0, 0])
        counts[0] += 1
        counts[1] += nulls
        counts[2] += nans
    lines = [
        f"{path}: {table.num_rows} rows x {table.num_columns} columns",
        "",
        "column group        columns  nulls  NaN",
    ]
    lines += [f"{g:<20}{c:>7}{n:>7}{x:>5}" for g, (c, n, x) in groups.items()]
    meta = read_metadata(path)
    if "feature_names" in meta:
        meta = {**meta, "feature_names": f"[{len(meta['feature_names'])} names: {meta['feature_names'][0]} ...]"}
    lines += ["", "metadata:", json.dumps(meta, indent=2, sort_keys=True) if meta else "(none: not written by mmer)"]
    return "\n".join(lines)
