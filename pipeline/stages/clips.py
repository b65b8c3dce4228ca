"""What the per-clip audio stages share: tasks from the manifest, the cache, the output stores
(single files or parts written by the workers), the errors table."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pyarrow as pa

from pipeline.executor import ClipCache, ClipFailure, ClipTask, fingerprint, iter_clips, iter_partitions, partitions
from pipeline.params import Params
from pipeline.sources import is_url
from pipeline.stages import MANIFEST
from pipeline.store import (
    ERRORS_SCHEMA,
    DatasetWriter,
    PartFolder,
    StoreWriter,
    library_versions,
    part_name,
    read_store,
    write_store,
)

ROWS_PER_BATCH = 256  # clips buffered before a row group is written


def manifest_tasks(args_tail: tuple) -> tuple[pd.DataFrame, list[ClipTask]]:
    """One task per manifest row with audio: ``(absolute audio path, *args_tail)``.

    A text-only corpus has none, and the audio stages write empty stores. Local paths
    are made absolute here: worker processes are reused and keep the working directory
    they started in. URLs (``s3://...``) are passed on as they are.
    """
    manifest = read_store(MANIFEST, columns=["clip_id", "audio_path"]).dropna(subset=["audio_path"])
    paths = [path if is_url(path) else os.path.abspath(path) for path in manifest["audio_path"]]
    tasks = [ClipTask(cid, (path, *args_tail), source=path) for cid, path in zip(manifest["clip_id"], paths)]
    return manifest, tasks


def make_cache(
    params: Params, namespace: str, settings: dict, modules: Sequence[ModuleType], libraries: Sequence[str]
) -> ClipCache | None:
    """The stage's cache, keyed by its settings, the source of the modules that compute it and library versions.

    Pass every module whose code shapes a cached value (feature functions, decoding,
    the stage's job function); numpy, numba and mmer's version are always included.
    """
    if not params.cache.enabled:
        return None
    sources = [Path(inspect.getfile(m)).read_text() for m in modules]
    versions = library_versions(["mmer", "numpy", "numba", *libraries])
    key = fingerprint(namespace, settings, sources, versions)
    return ClipCache(Path(params.cache.dir).resolve() / namespace, key)  # absolute: workers keep their own cwd


def analysis_window(params: Params) -> tuple[tuple[float, float | None], dict[str, Any]]:
    """``(offset_s, seconds read)`` of every file — the window audio_features analyses, whose
    errors table lists the crops — and the ``audio`` settings that define it (for metadata)."""
    audio = params.audio
    settings = {k: getattr(audio, k) for k in ("offset_s", "duration_s", "max_duration_s")}
    return (audio.offset_s, audio.window_s), settings


Tabulate = Callable[[list[tuple[str, Any]]], tuple[list[pd.DataFrame], dict]]
"""``tabulate(batch) -> (one DataFrame per store, summary)``: a stage's rows for a batch of
``(clip_id, result)`` pairs, plus a small dict merged into :attr:`ClipStores.summary`. Must
be picklable (a module-level function or a ``functools.partial`` of one): with
``store.partitioned`` it runs on the workers."""


@dataclass(frozen=True)
class StoreSpec:
    """One output store of a per-clip stage: where, its schema and its metadata."""

    path: Path
    schema: pa.Schema
    meta: dict


@dataclass(frozen=True)
class TableSink:
    """Writes a partition's rows as one part file per store (see :class:`pipeline.executor.PartSink`)."""

    tabulate: Tabulate
    folders: tuple[PartFolder, ...]

    def write(self, batch: list[tuple[str, Any]], name: str) -> dict:
        frames, summary = self.tabulate(batch)
        for folder, frame in zip(self.folders, frames, strict=True):
            folder.write(frame, name)
        return summary

    def discard(self, name: str) -> None:
        for folder in self.folders:
            folder.discard(name)


class ClipStores:
    """The output stores of a per-clip stage, open while its clips are mapped.

    With ``store.partitioned`` false each store is one Parquet file whose row groups
    stream from this process; with it true each is a folder of part files written by
    the workers themselves, ``store.rows_per_part`` clips a part. Either way a store
    appears only when the ``with`` block ends without an error (the previous one stays
    otherwise).

    >>> with ClipStores(params, [StoreSpec(path, schema, meta)]) as out:
    ...     failures, n_cached = out.run(fn, tasks, tabulate, "features", "audio features", cache)
    ...     check_error_budget(...)   # raising here keeps the previous stores
    """

    def __init__(self, params: Params, stores: Sequence[StoreSpec]):
        self.params = params
        self.stores = list(stores)
        self.rows = 0
        self.summary: dict = {}

    def __enter__(self) -> ClipStores:
        self._stack = contextlib.ExitStack().__enter__()
        writer = DatasetWriter if self.params.store.partitioned else StoreWriter
        try:
            self.writers = [self._stack.enter_context(writer(s.path, s.schema, s.meta)) for s in self.stores]
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc_info) -> bool | None:
        for writer in self.writers:
            if isinstance(writer, DatasetWriter):  # the parts must hold every computed clip
                writer.expected_rows = self.rows
        return self._stack.__exit__(*exc_info)

    def run(
        self,
        fn: Callable,
        tasks: Sequence[ClipTask],
        tabulate: Tabulate,
        stage: str,
        desc: str,
        cache: ClipCache | None,
    ) -> tuple[list[ClipFailure], int]:
        """Map ``fn`` over ``tasks`` on the configured executor (``params.executor``: local
        processes or Dask) and write every result's rows; return the failures and how many
        results came from the cache."""
        ex = self.params.executor
        if not self.params.store.partitioned:

            def write_batch(batch: list[tuple[str, Any]]) -> None:
                frames, summary = tabulate(batch)
                self.summary.update(summary)
                for writer, frame in zip(self.writers, frames, strict=True):
                    writer.write(frame)
                self.rows += len(batch)

            outcomes = iter_clips(fn, tasks, ex.n_jobs, stage=stage, desc=desc, cache=cache, dask=ex.dask())
            return stream_batches(outcomes, write_batch)
        sink = TableSink(tabulate, tuple(writer.parts for writer in self.writers))
        parts = partitions(tasks, self.params.store.rows_per_part)
        failures: list[ClipFailure] = []
        n_cached = 0
        for outcomes, summary in iter_partitions(fn, parts, sink, ex.n_jobs, stage, desc, cache, ex.dask()):
            self.summary.update(summary)
            for _, failure, cached in outcomes:
                if failure is None:
                    self.rows += 1
                    n_cached += cached
                else:
                    failures.append(failure)
        return failures, n_cached


def write_feature_store(params: Params, df: pd.DataFrame, path: Path, schema: pa.Schema, meta: dict) -> None:
    """Write a store computed in this process: one file, or part files with ``store.partitioned``."""
    if not params.store.partitioned:
        write_store(df, path, schema, meta)
        return
    size = params.store.rows_per_part
    with DatasetWriter(path, schema, meta) as writer:
        writer.expected_rows = len(df)
        for start in range(0, len(df), size):
            writer.parts.write(df.iloc[start : start + size].reset_index(drop=True), part_name(start // size))


def stream_batches(
    outcomes: Iterable[tuple[str, Any, bool]], write_batch: Callable[[list[tuple[str, Any]]], None]
) -> tuple[list[ClipFailure], int]:
    """Hand successful ``(clip_id, result)`` pairs from :func:`iter_clips` to ``write_batch``,
    ``ROWS_PER_BATCH`` at a time; return the failures and how many results came from the cache."""
    failures: list[ClipFailure] = []
    n_cached = 0
    batch: list[tuple[str, Any]] = []
    for clip_id, outcome, cached in outcomes:
        if isinstance(outcome, ClipFailure):
            failures.append(outcome)
            continue
        n_cached += cached
        batch.append((clip_id, outcome))
        if len(batch) >= ROWS_PER_BATCH:
            write_batch(batch)
            batch = []
    if batch:
        write_batch(batch)
    return failures, n_cached


def write_errors(failures: list[ClipFailure], manifest: pd.DataFrame, path: Path, meta: dict) -> None:
    """The stage's errors table: clip_id, path, stage, error_type, message (empty when all went well)."""
    paths = dict(zip(manifest["clip_id"], manifest["audio_path"]))
    errors = pd.DataFrame(
        [{"path": paths[f.clip_id], **dataclasses.asdict(f)} for f in failures], columns=ERRORS_SCHEMA.names
    )
    write_store(errors, path, ERRORS_SCHEMA, meta)
