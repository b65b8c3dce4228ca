"""Parquet feature stores: one schema per store, self-describing, written atomically.

Every store carries a JSON document under the Parquet schema metadata key ``mmer``:
the store name, the extraction params, library versions, the ordered feature names
and the SHA-256 of the manifest it was computed from. Read it back with
:func:`read_metadata` or ``mmer inspect PATH``.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = b"mmer"
_UMASK = os.umask(0)
os.umask(_UMASK)
ROW_GROUP_SIZE = 10_000

# --- the schemas, defined once ---------------------------------------------------

MANIFEST_SCHEMA = pa.schema(  # extra adapter columns (e.g. valence, speaker) may follow
    [
        ("clip_id", pa.string()),
        ("audio_path", pa.string()),
        ("text", pa.string()),
        ("label", pa.string()),
        ("group", pa.string()),
        ("split", pa.string()),
    ]
)

ERRORS_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("path", pa.string()),
        ("stage", pa.string()),
        ("error_type", pa.string()),
        ("message", pa.string()),
    ]
)


def manifest_schema(extra: pa.Schema | None = None) -> pa.Schema:
    """``data/manifest.parquet``: the six mmer columns, then any extra columns kept."""
    return MANIFEST_SCHEMA if extra is None else pa.schema(list(MANIFEST_SCHEMA) + list(extra))


def audio_schema(feature_names: Iterable[str]) -> pa.Schema:
    """``features/audio.parquet``: clip_id plus one float32 column per descriptor."""
    return pa.schema([("clip_id", pa.string())] + [(name, pa.float32()) for name in feature_names])


def melspec_schema(n_mels: int, n_frames: int) -> pa.Schema:
    """``features/melspec.parquet``: clip_id, valid frame count and a (n_mels, n_frames) float32 tensor."""
    return pa.schema(
        [
            ("clip_id", pa.string()),
            ("n_valid_frames", pa.int32()),
            ("melspec", pa.fixed_shape_tensor(pa.float32(), [n_mels, n_frames])),
        ]
    )


def music_schema(feature_names: Iterable[str]) -> pa.Schema:
    """``features/essentia.parquet``: clip_id, key and scale names, float32 descriptors."""
    return pa.schema(
        [("clip_id", pa.string()), ("key", pa.string()), ("scale", pa.string())]
        + [(name, pa.float32()) for name in feature_names]
    )


def musicnn_schema(feature_names: Iterable[str]) -> pa.Schema:
    """``features/musicnn.parquet``: clip_id, patch count, float32 pooled / penultimate / tag columns."""
    return pa.schema(
        [("clip_id", pa.string()), ("n_patches", pa.int32())] + [(name, pa.float32()) for name in feature_names]
    )


def encoder_schema(feature_names: Iterable[str]) -> pa.Schema:
    """``features/enc_<name>.parquet``: clip_id, window count, float32 ``L<k>_<stat>_<i>`` (and CLAP ``emb_<i>``)."""
    return pa.schema(
        [("clip_id", pa.string()), ("n_windows", pa.int32())] + [(name, pa.float32()) for name in feature_names]
    )


def text_schema(dim: int) -> pa.Schema:
    """``features/text.parquet``: clip_id, has_text, token and window counts, embedding (null without text)."""
    return pa.schema(
        [
            ("clip_id", pa.string()),
            ("has_text", pa.bool_()),
            ("n_tokens", pa.int32()),
            ("n_chunks", pa.int32()),
            ("embedding", pa.list_(pa.float32(), dim)),
        ]
    )


def oof_schema(classes: Iterable[str]) -> pa.Schema:
    """``models/<variant>/oof.parquet``: out-of-fold class probabilities per clip and repeat."""
    return pa.schema(
        [
            ("clip_id", pa.string()),
            ("repeat", pa.int32()),
            ("fold", pa.int32()),
            ("label", pa.string()),
            ("predicted", pa.string()),
        ]
        + [(f"proba_{c}", pa.float64()) for c in classes]
    )


# --- writing and reading ---------------------------------------------------------


class DiskFullError(RuntimeError):
    """An output could not be written for lack of space (the previous version is untouched)."""


@contextmanager
def atomic_path(path: str | Path, replace_folder: bool = False, make_parent: bool = True):
    """Yield a temp path beside ``path``; rename it onto ``path`` only on success.

    A successful write also removes temp files of ``path`` left behind by a killed run.
    ``replace_folder`` lets the file replace a folder at ``path`` (a partitioned store
    becoming a single file); ``make_parent`` false requires the folder to exist.
    """
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual permissions
        move_into_place(Path(tmp), path, replace_folder)
    except OSError as exc:
        _raise_disk_full(exc, path)
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temps(path: Path) -> None:
    """Remove the temp files and folders of ``path`` that a killed run left beside it."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _raise_disk_full(exc: OSError, path: Path) -> None:
    """Turn an out-of-space error into :class:`DiskFullError` naming ``path`` (other errors pass)."""
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
        kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
        raise DiskFullError(f"{path}: no space left on the device while writing; {kept}. Free space and rerun") from exc


def with_store_metadata(schema: pa.Schema, meta: dict[str, Any]) -> pa.Schema:
    """``schema`` carrying the store's metadata document under the ``mmer`` key."""
    return schema.with_metadata({METADATA_KEY: json.dumps(meta, sort_keys=True, default=str)})


class StoreWriter:
    """Stream row groups into a store; the file appears (atomically) only on success.

    >>> with StoreWriter(path, schema, meta) as writer:
    ...     for batch in batches:
    ...         writer.write(batch)          # a DataFrame holding the schema's columns
    """

    def __init__(self, path: str | Path, schema: pa.Schema, meta: dict[str, Any]):
        self.path = Path(path)
        self.schema = with_store_metadata(schema, meta)
        self.rows = 0

    def __enter__(self) -> StoreWriter:
        self._atomic = atomic_path(self.path, replace_folder=True)  # a store may change layout
        tmp = self._atomic.__enter__()
        self._writer = pq.ParquetWriter(tmp, self.schema)
        return self

    def write(self, df: pd.DataFrame) -> None:
        """Append ``df`` (one row group)."""
        self._writer.write_table(table_of(df, self.schema, self.path), row_group_size=ROW_GROUP_SIZE)
        self.rows += len(df)

    def __exit__(self, *exc_info) -> None:
        try:
            self._writer.close()
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())  # removes the temp file, then re-raises
            raise
        self._atomic.__exit__(*exc_info)


def write_store(df: pd.DataFrame, path: str | Path, schema: pa.Schema, meta: dict[str, Any]) -> None:
    """Write ``df`` with exactly ``schema`` and ``meta`` as one Parquet file, atomically."""
    with StoreWriter(path, schema, meta) as writer:
        writer.write(df)


def table_of(df: pd.DataFrame, schema: pa.Schema, path: str | Path = "store") -> pa.Table:
    """``df``'s columns as an Arrow table of exactly ``schema`` (extra columns are left out)."""
    missing = [name for name in schema.names if name not in df.columns]
    if missing:
        raise ValueError(f"{path}: rows lack columns {missing[:5]} required by the store schema")
    return pa.Table.from_arrays([_to_arrow(df[f.name], f.type) for f in schema], schema=schema)


# --- partitioned stores: a folder of part files ------------------------------------

PART_PATTERN = "part-*.parquet"
COMMON_METADATA = "_common_metadata"


@dataclass(frozen=True)
class PartFolder:
    """Where the part files of a partitioned store being written go (picklable: workers write them).

    Each part is written atomically under its own name, so a part written twice (a
    retried task) replaces itself instead of duplicating rows.
    """

    folder: str
    schema: pa.Schema

    def write(self, df: pd.DataFrame, name: str) -> int:
        """Write ``df`` as ``<folder>/<name>.parquet``; return its row count.

        The folder is never created here: a worker that cannot see it (no shared
        filesystem, or the run was cleaned up meanwhile) raises instead of writing parts
        nobody will read.
        """
        folder = Path(self.folder)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder}: the temp folder of a partitioned store is not visible on {socket.gethostname()}; "
                "workers must share the client's features/ folder (or set store.partitioned: false)"
            )
        path = folder / f"{name}.parquet"
        with atomic_path(path, make_parent=False) as tmp:
            pq.write_table(table_of(df, self.schema, path), tmp, row_group_size=ROW_GROUP_SIZE)
        return len(df)

    def discard(self, name: str) -> None:
        """Remove part ``name`` if it exists (before its rows are written again in smaller parts)."""
        (Path(self.folder) / f"{name}.parquet").unlink(missing_ok=True)


class DatasetWriter:
    """A partitioned store: part files (``part-00000.parquet`` ...) in a folder at ``path``.

    Parts are written into a temp folder beside ``path`` — by this process or by
    workers, through :attr:`parts` — and rows come back in part-name order. On
    success the folder gets ``_common_metadata`` (the schema with the store's
    metadata, also carried by every part) and replaces ``path``; on failure it is
    removed and the previous store stays. pandas, pyarrow, DuckDB
    (``'path/*.parquet'``), Dask and Spark read the folder directly.
    """

    def __init__(self, path: str | Path, schema: pa.Schema, meta: dict[str, Any]):
        self.path = Path(path).absolute()  # workers keep their own working directory
        self.schema = with_store_metadata(schema, meta)
        self.expected_rows: int | None = None  # set by the caller: checked against the parts before the swap

    def __enter__(self) -> DatasetWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.parts = PartFolder(
            tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent), self.schema
        )
        return self

    def __exit__(self, exc_type, *_) -> None:
        folder = Path(self.parts.folder)
        try:
            if exc_type is None:
                os.chmod(folder, 0o777 & ~_UMASK)
                parts = sorted(folder.glob(PART_PATTERN))
                rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
                if self.expected_rows is not None and rows != self.expected_rows:
                    raise RuntimeError(
                        f"{self.path}: the part files hold {rows} rows, {self.expected_rows} clips were computed; "
                        "parts were lost (a worker wrote elsewhere, or another run removed them). Nothing was "
                        "replaced; rerun the stage"
                    )
                if not parts:  # no rows: one empty part keeps the schema readable
                    self.parts.write(pd.DataFrame({name: [] for name in self.schema.names}), part_name(0))
                pq.write_metadata(self.schema, folder / COMMON_METADATA)
                move_into_place(folder, self.path)
        except OSError as exc:
            _raise_disk_full(exc, self.path)
            raise
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def move_into_place(source: Path, path: Path, replace_folder: bool = True) -> None:
    """Rename ``source`` (a file or a folder) onto ``path``, replacing the file or folder there.

    A file replaces a file atomically. A folder on either side cannot be swapped in one
    rename: the old store is renamed aside first and removed after (put back if the
    second rename fails), so ``path`` holds one whole store or, for that instant, none.
    A file replaces a folder only with ``replace_folder``.
    """
    if path.is_dir() and not path.is_symlink() and not replace_folder:
        raise IsADirectoryError(f"{path}: a folder is in the way of the file being written; remove it and rerun")
    aside = None
    if (path.is_dir() and not path.is_symlink()) or (source.is_dir() and (path.exists() or path.is_symlink())):
        aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)) / path.name
        os.replace(path, aside)
    try:
        os.replace(source, path)
    except BaseException:
        if aside is not None:
            os.replace(aside, path)
        raise
    if aside is not None:
        shutil.rmtree(aside.parent, ignore_errors=True)
    remove_stale_temps(path)


MAX_PARTS = 100_000
MAX_ROWS_PER_PART = 1_000_000


def part_name(index: int, sub: int | None = None) -> str:
    """``part-00012``, or ``part-00012-000003`` for a part rerun one clip per part: names sort in
    row order for up to ``MAX_PARTS`` parts of up to ``MAX_ROWS_PER_PART`` clips."""
    return f"part-{index:05d}" if sub is None else f"part-{index:05d}-{sub:06d}"


def store_files(path: str | Path) -> Path | list[str]:
    """What pyarrow should read for a store: the file, or a partitioned store's part files in order."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: store not found; run `dvc repro` to build it")
    if not path.is_dir():
        return path
    parts = sorted(str(p) for p in path.glob(PART_PATTERN))
    if not parts:
        raise FileNotFoundError(f"{path}: a folder without {PART_PATTERN} files, not a store; rerun its stage")
    return parts


def _to_arrow(column: pd.Series, type_: pa.DataType) -> pa.Array:
    if isinstance(type_, pa.FixedShapeTensorType):
        stacked = np.stack(column.to_numpy()) if len(column) else np.zeros((0, *type_.shape))
        return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(stacked, dtype=np.float32))
    if pa.types.is_fixed_size_list(type_):  # rows of arrays; None for a null row
        missing = np.array([v is None for v in column], dtype=bool)
        rows = [np.zeros(type_.list_size) if v is None else v for v in column]
        flat = np.asarray(np.stack(rows), dtype=np.float32).reshape(-1) if len(rows) else []
        values = pa.array(flat, type=type_.value_type)
        return pa.FixedSizeListArray.from_arrays(
            values, type_.list_size, mask=pa.array(missing) if missing.any() else None
        )
    values = column.to_numpy(dtype=object) if pa.types.is_string(type_) else column.to_numpy()
    return pa.array(values, type=type_, from_pandas=True)


def read_store(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a store into pandas (fixed-size list columns become lists of arrays)."""
    return pq.read_table(store_files(path), columns=columns).to_pandas()


def read_matrix(path: str | Path, column: str = "embedding") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clip_ids, (N, dim) float32 matrix, present mask) from a fixed-size list column.

    Null rows come back as zeros with ``present`` False; no Python loops.
    """
    table = pq.read_table(store_files(path), columns=["clip_id", column])
    values = table.column(column).combine_chunks()
    present = values.is_valid().to_numpy(zero_copy_only=False)
    dim = values.type.list_size
    matrix = np.zeros((len(values), dim), dtype=np.float32)
    if present.any():
        matrix[present] = values.drop_null().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return table.column("clip_id").to_numpy(zero_copy_only=False).astype(str), matrix, present


def read_tensor(path: str | Path, column: str = "melspec") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clip_ids, (N, *shape) float32 array, n_valid_frames) from a tensor store, without Python loops."""
    table = pq.read_table(store_files(path), columns=["clip_id", "n_valid_frames", column])
    tensors = table.column(column).combine_chunks().to_numpy_ndarray()
    return (
        table.column("clip_id").to_numpy(zero_copy_only=False).astype(str),
        tensors,
        table.column("n_valid_frames").to_numpy(),
    )


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``mmer`` metadata document of a store ({} for a foreign Parquet file)."""
    files = store_files(path)
    common = Path(path) / COMMON_METADATA
    raw = pq.read_schema(common if common.is_file() else files if isinstance(files, Path) else files[0]).metadata or {}
    return json.loads(raw[METADATA_KEY]) if METADATA_KEY in raw else {}


def write_text(text: str, path: str | Path) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically, keys sorted, so identical results give identical bytes."""
    write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", path)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the named distributions ('missing' when absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


# Environment variables that change which floating-point kernels numpy, OpenBLAS, MKL, oneDNN or torch run.
KERNEL_ENV = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "NPY_DISABLE_CPU_FEATURES",
    "OPENBLAS_CORETYPE",
    "OMP_NUM_THREADS",
)


def cpu_signature() -> dict[str, Any]:
    """The machine facts besides library versions that decide a float's last bits.

    The CPU model, the SIMD features numpy detects at run time (``AVX2``, ``FMA3``,
    ``AVX512F``, ...; the BLAS, FFT and torch kernels are picked by the same
    instruction sets) and any :data:`KERNEL_ENV` variable that overrides that choice.
    """
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "machine": platform.machine(),
        "model": model,
        "simd": sorted(name for name, present in __cpu_features__.items() if present),
        "kernel_env": {name: os.environ[name] for name in KERNEL_ENV if name in os.environ},
    }


def store_metadata(store: str, params: dict, libraries: Iterable[str], manifest_path: str | Path, **extra: Any) -> dict:
    """The metadata document every store carries (``cpu``: see :func:`cpu_signature`)."""
    return {
        "store": store,
        "params": params,
        "versions": library_versions(["mmer", "numpy", "pyarrow", *libraries]),
        "cpu": cpu_signature(),
        "manifest_sha256": file_sha256(manifest_path),
        **extra,
    }
