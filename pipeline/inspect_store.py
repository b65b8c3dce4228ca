"""``mmer inspect PATH``: what a store holds and how it was made."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.features.audio import ALL_STATS
from pipeline.store import read_metadata, store_files

_STAT_SUFFIX = re.compile(rf"_({'|'.join(ALL_STATS)})$")


def column_group(name: str) -> str:
    """Feature family of a column: ``mfcc_03_p90`` -> ``mfcc``; ``spectral_centroid_std`` -> ``spectral_centroid``."""
    return re.sub(r"_\d+$", "", _STAT_SUFFIX.sub("", name))


def _nan_count(column) -> int:
    """NaNs in a float column, or inside a list/tensor column's values."""
    import pyarrow as pa

    data = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    if isinstance(data.type, pa.ExtensionType):
        data = data.storage
    while pa.types.is_list(data.type) or pa.types.is_fixed_size_list(data.type):
        data = data.flatten()
    if not pa.types.is_floating(data.type):
        return 0
    return int(pc.sum(pc.is_nan(data)).as_py() or 0)


def describe(path: str | Path) -> str:
    """A readable summary: rows, columns, null/NaN counts per column group, metadata."""
    path = Path(path)
    files = store_files(path)
    table = pq.read_table(files)
    groups: dict[str, list[int]] = {}
    for field, column in zip(table.schema, table.columns):
        nulls = column.null_count
        nans = _nan_count(column)
        counts = groups.setdefault(column_group(field.name), [0, 0, 0])
        counts[0] += 1
        counts[1] += nulls
        counts[2] += nans
    layout = f" in {len(files)} part files (a partitioned store)" if isinstance(files, list) else ""
    lines = [
        f"{path}: {table.num_rows} rows x {table.num_columns} columns{layout}",
        "",
        "column group        columns  nulls  NaN",
    ]
    lines += [f"{g:<20}{c:>7}{n:>7}{x:>5}" for g, (c, n, x) in groups.items()]
    meta = read_metadata(path)
    if "feature_names" in meta:
        meta = {**meta, "feature_names": f"[{len(meta['feature_names'])} names: {meta['feature_names'][0]} ...]"}
    lines += ["", "metadata:", json.dumps(meta, indent=2, sort_keys=True) if meta else "(none: not written by mmer)"]
    return "\n".join(lines)
