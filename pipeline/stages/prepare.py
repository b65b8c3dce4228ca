"""Stage ``prepare``: the selected corpus -> validated data/manifest.parquet."""

from __future__ import annotations

import pyarrow as pa

from pipeline.datasets.manifest import COLUMNS, check_fixed_split, read_manifest_file, validate_manifest
from pipeline.params import Params, as_dict
from pipeline.stages import DEMO_ROOT, MANIFEST
from pipeline.store import file_sha256, library_versions, manifest_schema, write_store


def run(params: Params) -> None:
    """Read the dataset through its adapter, validate it, and write the manifest store."""
    ds = params.dataset
    source = DEMO_ROOT / "manifest.csv" if ds.kind == "demo" else ds.manifest
    columns = {} if ds.kind == "demo" else ds.columns
    fixed = params.eval.scheme == "fixed"  # the manifest's split column decides; no folds to fill
    df = validate_manifest(read_manifest_file(source, columns), 1 if fixed else params.eval.n_folds, ds.labels)
    if fixed:
        check_fixed_split(df)
    extra = pa.Table.from_pandas(df[[c for c in df.columns if c not in COLUMNS]], preserve_index=False).schema
    meta = {
        "store": "manifest",
        "params": {"dataset": as_dict(ds)},
        "versions": library_versions(["mmer", "pandas", "pyarrow"]),
        "source_sha256": file_sha256(source),
        "n_clips": len(df),
        "label_counts": {k: int(v) for k, v in df["label"].value_counts().sort_index().items()},
        "classes": ds.labels or sorted(df["label"].unique()),
    }
    write_store(df, MANIFEST, manifest_schema(extra.remove_metadata()), meta)
    print(f"prepare: {len(df)} clips, classes {meta['label_counts']} -> {MANIFEST}")
