"""One executor for per-clip work: parallel map, progress bar, error capture.

``map_clips(fn, items)`` runs ``fn(*args)`` for every ``(clip_id, args)`` item in
joblib worker processes (one BLAS/OpenMP thread each), shows a progress bar with
clips/s and ETA, and turns an exception on one clip into a :class:`ClipFailure`
instead of stopping the run. Results come back in input order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm


@dataclass(frozen=True)
class ClipFailure:
    """A clip that failed, with where and why."""

    clip_id: str
    stage: str
    error_type: str
    message: str


class StageFailed(RuntimeError):
    """Too many clips failed for the stage's result to be trusted."""


def resolve_n_jobs(n_jobs: int) -> int:
    """-1 means all cores; never more workers than cores."""
    cores = os.cpu_count() or 1
    return cores if n_jobs in (-1, 0) else max(1, min(n_jobs, cores))


def _guarded(fn: Callable, clip_id: str, stage: str, args: tuple) -> tuple[str, Any]:
    try:
        return clip_id, fn(*args)
    except Exception as exc:
        return clip_id, ClipFailure(clip_id, getattr(exc, "stage", stage), type(exc).__name__, str(exc))


def map_clips(
    fn: Callable,
    items: Sequence[tuple[str, tuple]],
    n_jobs: int = -1,
    stage: str = "extract",
    desc: str = "clips",
) -> tuple[dict[str, Any], list[ClipFailure]]:
    """Apply ``fn(*args)`` to each ``(clip_id, args)``; return (results by id, failures)."""
    workers = resolve_n_jobs(n_jobs)
    jobs = (delayed(_guarded)(fn, clip_id, stage, args) for clip_id, args in items)
    results: dict[str, Any] = {}
    failures: list[ClipFailure] = []
    progress = tqdm(total=len(items), desc=desc, unit="clip", disable=None, smoothing=0.1)
    with parallel_config(backend="loky", inner_max_num_threads=1):
        stream = (
            Parallel(n_jobs=workers, return_as="generator")(jobs)
            if workers > 1
            else (_guarded(fn, clip_id, stage, args) for clip_id, args in items)
        )
        for clip_id, outcome in stream:
            if isinstance(outcome, ClipFailure):
                failures.append(outcome)
            else:
                results[clip_id] = outcome
            progress.update(1)
    progress.close()
    return results, failures


def check_error_budget(
    n_failed: int, n_total: int, max_fraction: float, failures: Sequence[ClipFailure], what: str
) -> None:
    """Raise :class:`StageFailed` with a summary when too many clips failed."""
    if n_total and n_failed / n_total > max_fraction:
        kinds: dict[str, int] = {}
        for f in failures:
            kinds[f"{f.stage}/{f.error_type}"] = kinds.get(f"{f.stage}/{f.error_type}", 0) + 1
        top = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:5])
        example = failures[0] if failures else None
        raise StageFailed(
            f"{what}: {n_failed} of {n_total} clips failed ({n_failed / n_total:.1%} > max_error_fraction "
            f"{max_fraction:.1%}). Top errors: {top}. First: {example.clip_id}: {example.message}"
            if example
            else f"{what}: {n_failed} of {n_total} clips failed"
        )
