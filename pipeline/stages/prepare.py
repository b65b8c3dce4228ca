"""Stage ``prepare``: the selected corpus -> validated data/manifest.parquet."""

from __future__ import annotations

import hashlib

import pandas as pd
import pyarrow as pa

from pipeline.datasets.manifest import (
    COLUMNS,
    check_fixed_split,
    check_predefined_folds,
    read_manifest_file,
    target_values,
    validate_manifest,
)
from pipeline.params import Params, as_dict
from pipeline.stages import DEMO_ROOT, MANIFEST
from pipeline.store import file_sha256, library_versions, manifest_schema, write_store


def read_dataset(params: Params) -> tuple[pd.DataFrame, str]:
    """The corpus through its adapter (``dataset.kind``), and a description of its source for the metadata."""
    ds = params.dataset
    if ds.kind == "merge":
        from pipeline.datasets.merge import read_merge

        return read_merge(ds.root, ds.subset, ds.variant, ds.split), f"MERGE {ds.subset}/{ds.variant} in {ds.root}"
    if ds.kind == "folders":
        from pipeline.datasets.folders import read_folders

        return read_folders(ds.root, ds.group_regex), f"folders under {ds.root}"
    source = DEMO_ROOT / "manifest.csv" if ds.kind == "demo" else ds.manifest
    columns = {} if ds.kind == "demo" else ds.columns
    return read_manifest_file(source, columns), f"{source} (sha256 {file_sha256(source)})"


def run(params: Params) -> None:
    """Read the dataset through its adapter, validate it, and write the manifest store."""
    ds, scheme = params.dataset, params.eval.scheme
    raw, source = read_dataset(params)
    n_folds = params.eval.n_folds if scheme == "cv" else 1  # fixed/predefined: the manifest decides the folds
    df = validate_manifest(raw, n_folds, ds.labels)
    if scheme == "fixed":
        check_fixed_split(df)
    if scheme == "predefined":
        check_predefined_folds(df)
    if params.task == "regression":
        target_values(df, ds.targets)
    replaced = df.loc[df["text"].str.contains("\ufffd", regex=False, na=False), "clip_id"].tolist()
    if replaced:
        print(
            f"prepare: warning: {len(replaced)} text(s) had bytes that are not UTF-8 (replaced by U+FFFD), "
            f"e.g. {replaced[0]}; listed in the manifest's metadata (text_decoding_replaced)"
        )
    extra = pa.Table.from_pandas(df[[c for c in df.columns if c not in COLUMNS]], preserve_index=False).schema
    content = pd.util.hash_pandas_object(df.astype("string"), index=False).to_numpy().tobytes()
    meta = {
        "store": "manifest",
        # targets name columns the manifest keeps anyway: the train stage reads them, the store does not change
        "params": {"dataset": {k: v for k, v in as_dict(ds).items() if k not in ("targets", "target_center")}},
        "versions": library_versions(["mmer", "pandas", "pyarrow"]),
        "source": source,
        "content_sha256": hashlib.sha256(content).hexdigest(),
        "n_clips": len(df),
        "modalities": [m for m, col in (("audio", "audio_path"), ("text", "text")) if df[col].notna().any()],
        "label_counts": {k: int(v) for k, v in df["label"].value_counts().sort_index().items()},
        "classes": ds.labels or sorted(df["label"].unique()),
    }
    if replaced:
        meta["text_decoding_replaced"] = replaced
    write_store(df, MANIFEST, manifest_schema(extra.remove_metadata()), meta)
    print(f"prepare: {len(df)} clips ({' + '.join(meta['modalities'])}), classes {meta['label_counts']} -> {MANIFEST}")
