"""What the per-clip audio stages share: tasks from the manifest, the cache, the errors table."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from pipeline.executor import ClipCache, ClipFailure, ClipTask, fingerprint, iter_clips
from pipeline.params import Params
from pipeline.stages import MANIFEST
from pipeline.store import ERRORS_SCHEMA, library_versions, read_store, write_store

ROWS_PER_BATCH = 256  # clips buffered before a row group is written


def manifest_tasks(args_tail: tuple) -> tuple[pd.DataFrame, list[ClipTask]]:
    """One task per manifest row with audio: ``(absolute audio path, *args_tail)``.

    A text-only corpus has none, and the audio stages write empty stores. Paths are
    made absolute here: worker processes are reused and keep the working directory
    they started in.
    """
    manifest = read_store(MANIFEST, columns=["clip_id", "audio_path"]).dropna(subset=["audio_path"])
    tasks = [
        ClipTask(cid, (os.path.abspath(path), *args_tail), source=os.path.abspath(path))
        for cid, path in zip(manifest["clip_id"], manifest["audio_path"])
    ]
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


def run_clips(
    fn: Callable,
    tasks: Sequence[ClipTask],
    params: Params,
    write_batch: Callable[[list[tuple[str, Any]]], None],
    stage: str,
    desc: str,
    cache: ClipCache | None,
) -> tuple[list[ClipFailure], int]:
    """Map ``fn`` over ``tasks`` on the configured executor (``params.executor``: local
    processes or Dask) and stream the results to ``write_batch``; see :func:`stream_batches`."""
    ex = params.executor
    outcomes = iter_clips(fn, tasks, ex.n_jobs, stage=stage, desc=desc, cache=cache, dask=ex.dask())
    return stream_batches(outcomes, write_batch)


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
