"""One executor for per-clip work: parallel map, progress bar, error capture, cache.

``iter_clips(fn, tasks)`` runs ``fn(*task.args)`` for every task in joblib worker
processes (one BLAS/OpenMP thread each) — or, with a :class:`DaskSettings`, on the
workers of a ``dask.distributed`` cluster — shows a progress bar with clips/s and ETA,
turns an exception on one clip into a :class:`ClipFailure` instead of stopping the
run, and yields results in input order as they arrive, so callers can stream them
to disk. With a :class:`ClipCache`, a task whose source file bytes and
configuration fingerprint were seen before is loaded instead of recomputed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import os
import shutil
import tempfile
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from joblib import Parallel, delayed, parallel_config
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from pipeline.sources import open_source, source_state
from pipeline.store import MAX_PARTS, MAX_ROWS_PER_PART, part_name


@dataclass(frozen=True)
class ClipTask:
    """One unit of per-clip work: ``fn(*args)``; ``source`` is the file the cache hashes."""

    clip_id: str
    args: tuple
    source: str | None = None


@dataclass(frozen=True)
class ClipFailure:
    """A clip that failed, with where and why."""

    clip_id: str
    stage: str
    error_type: str
    message: str


class StageFailed(RuntimeError):
    """Too many clips failed for the stage's result to be trusted."""


@dataclass(frozen=True)
class DaskSettings:
    """Where Dask runs per-clip work: ``address`` of a running ``dask.distributed``
    scheduler (``tcp://host:8786``), or ``local-cluster`` for a ``LocalCluster`` of
    ``workers`` single-threaded worker processes on this machine (loopback only).

    Workers must reach the audio paths (a shared filesystem) and the cache folder.
    """

    address: str = "local-cluster"
    workers: int = 2


@dataclass(frozen=True)
class ClipCache:
    """Content-addressed results: key = sha256(fingerprint, source file bytes).

    Values are dicts of numpy arrays stored as ``.npz`` (no pickle). Each entry is
    written to a temp file and renamed, so an interrupted run leaves only whole
    entries; an unreadable entry counts as a miss.
    """

    root: Path
    fingerprint: str

    def key(self, source: str) -> str:
        """Key of a file's bytes under this fingerprint."""
        digest = hashlib.sha256(self.fingerprint.encode())
        with open_source(source) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def key_of(self, data: bytes) -> str:
        """Key of in-memory content (e.g. a cleaned text) under this fingerprint."""
        return hashlib.sha256(self.fingerprint.encode() + b"\0" + data).hexdigest()

    def _path(self, key: str) -> Path:
        return Path(self.root) / key[:2] / f"{key}.npz"

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as entry:
                return {name: entry[name] for name in entry.files}
        except (FileNotFoundError, OSError, ValueError, zipfile.BadZipFile):
            return None

    def save(self, key: str, value: dict[str, np.ndarray]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".npz.tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **value)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def fingerprint(*parts: Any) -> str:
    """A stable hash of configuration parts (dicts, strings, file contents)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def clear_cache(root: str | Path) -> int:
    """Delete the cache folder; return how many entries it held."""
    root = Path(root)
    if not root.exists():
        return 0
    count = sum(1 for _ in root.rglob("*.npz"))
    shutil.rmtree(root)
    return count


def resolve_n_jobs(n_jobs: int) -> int:
    """-1 means all cores; never more workers than cores."""
    cores = os.cpu_count() or 1
    return cores if n_jobs in (-1, 0) else max(1, min(n_jobs, cores))


def _run_task(fn: Callable, task: ClipTask, stage: str, cache: ClipCache | None) -> tuple[str, Any, bool]:
    try:
        key = None
        if cache is not None and task.source:
            state = source_state(task.source)
            key = cache.key(task.source)
            hit = cache.load(key)
            if hit is not None:
                return task.clip_id, hit, True
        value = fn(*task.args)
        if key is not None and source_state(task.source) == state:  # never cache a file that changed meanwhile
            cache.save(key, value)
        return task.clip_id, value, False
    except Exception as exc:  # one bad clip must not end the run
        failure = ClipFailure(task.clip_id, getattr(exc, "stage", stage), type(exc).__name__, str(exc))
        return task.clip_id, failure, False


_WORKER_THREADS_LIMITED = False


def _one_thread_per_worker() -> None:
    """Limit a Dask worker's BLAS/OpenMP pools to one thread, once per process (like a joblib worker's)."""
    global _WORKER_THREADS_LIMITED
    if not _WORKER_THREADS_LIMITED:
        threadpool_limits(1)  # kept for the worker's life
        _WORKER_THREADS_LIMITED = True


def _run_task_one_thread(fn: Callable, task: ClipTask, stage: str, cache: ClipCache | None) -> tuple[str, Any, bool]:
    """:func:`_run_task` on a Dask worker."""
    _one_thread_per_worker()
    return _run_task(fn, task, stage, cache)


class PartSink(Protocol):
    """Writes a partition's results where they belong, on whichever process computed them (picklable)."""

    def write(self, batch: list[tuple[str, Any]], name: str) -> dict:
        """Write the successful ``(clip_id, result)`` pairs as part ``name``; return a small summary dict."""

    def discard(self, name: str) -> None:
        """Remove part ``name`` if it was written (its clips are about to be written again)."""


@dataclass(frozen=True)
class Partition:
    """Clips whose results are written together as one part file named ``name``."""

    index: int
    tasks: tuple[ClipTask, ...]
    sub: int | None = None  # a clip of a part rerun one clip per part

    @property
    def name(self) -> str:
        return part_name(self.index, self.sub)


def _run_partition(
    fn: Callable, part: Partition, stage: str, cache: ClipCache | None, sink: PartSink, on_dask: bool = False
) -> tuple[list[tuple[str, ClipFailure | None, bool]], dict]:
    """Run a partition's clips, write the successful results with ``sink``; return only
    ``(clip_id, failure or None, from_cache)`` per clip and the part's summary — no feature rows."""
    if on_dask:
        _one_thread_per_worker()
    outcomes = [_run_task(fn, task, stage, cache) for task in part.tasks]
    done = [(clip_id, value) for clip_id, value, _ in outcomes if not isinstance(value, ClipFailure)]
    summary = sink.write(done, part.name) if done else {}
    return [(cid, value if isinstance(value, ClipFailure) else None, hit) for cid, value, hit in outcomes], summary


LOCAL_TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def _dask_client(settings: DaskSettings):
    """A client of the configured cluster (and the LocalCluster it owns, for ``local-cluster``)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise RuntimeError(
            "executor.kind: dask needs dask.distributed: pip install 'mmer[cluster]' (or dask[distributed])"
        ) from exc
    if settings.address != "local-cluster":
        client = Client(settings.address, set_as_default=False, timeout="30s")
        try:
            client.wait_for_workers(1, timeout=120)
        except Exception as exc:
            client.close()
            raise RuntimeError(f"executor.address {settings.address}: no Dask worker joined within 120 s") from exc
        return client, None
    import dask

    # Dask's default MALLOC_TRIM_THRESHOLD_=65536 makes glibc hand every large transient
    # array back to the OS (spectrogram work ran 2.7x slower with it); the nannies also
    # write their worker environment into this process's, which is restored afterwards.
    environ = dict(os.environ)
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    try:
        with dask.config.set({LOCAL_TRIM_KEY: None}):
            cluster = LocalCluster(
                n_workers=settings.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
    finally:
        os.environ.clear()
        os.environ.update(environ)
    try:
        return Client(cluster, set_as_default=False), cluster
    except Exception:
        cluster.close()
        raise


def _dask_ordered(
    client,
    calls: Iterable[tuple[str, tuple]],
    func: Callable,
    on_killed: Callable,
    window: int | None = None,
    retry_alone: bool = False,
) -> Iterator[Any]:
    """``func(*args)`` for each ``(key, args)`` on the cluster, submitted ``window`` tasks ahead of
    the results (default: enough for every worker thread), yielded in input order.

    A task whose workers keep dying ends as ``on_killed(args, exc)``. Dask charges a worker's
    death to every task assigned to it, not only to the one that crashed it, so with
    ``retry_alone`` such a task runs once more, with no new submissions meanwhile, before its
    verdict: a good clip that only sat beside a crashing one then succeeds, since the crashing
    one has by then used up its own tries.
    """
    from collections import deque

    from distributed import KilledWorker

    if window is None:
        window = max(64, 4 * sum(client.nthreads().values()))
    pending: deque = deque()
    todo = iter(calls)

    def submit(key: str, args: tuple):
        return client.submit(func, *args, key=f"{key}-{uuid.uuid4().hex[:8]}", pure=False)

    def result(key: str, args: tuple, future, retries: int) -> Any:
        try:
            return future.result()
        except KilledWorker as exc:
            if retries == 0:
                return on_killed(args, exc)
            return result(key, args, submit(key, args), retries - 1)
        finally:
            future.release()

    for key, args in itertools.islice(todo, window):
        pending.append((key, args, submit(key, args)))
    while pending:
        key, args, future = pending.popleft()
        outcome = result(key, args, future, 1 if retry_alone else 0)
        for more_key, more in itertools.islice(todo, 1):  # keep the window full
            pending.append((more_key, more, submit(more_key, more)))
        yield outcome


@contextlib.contextmanager
def _dask_session(settings: DaskSettings):
    """A client of the configured cluster, closed (with the LocalCluster it owns) on exit."""
    client, cluster = _dask_client(settings)
    try:
        yield client
    finally:
        try:
            client.close()
        finally:
            if cluster is not None:
                cluster.close()


def _killed_clip(args: tuple, exc: Exception) -> tuple[str, ClipFailure, bool]:
    """The outcome of a clip that kept killing its workers (a crash inside a decoder)."""
    _, task, stage, _ = args
    return task.clip_id, ClipFailure(task.clip_id, stage, "KilledWorker", str(exc)), False


def _dask_outcomes(
    fn: Callable, tasks: Sequence[ClipTask], stage: str, cache: ClipCache | None, settings: DaskSettings
) -> Iterator[tuple[str, Any, bool]]:
    """Per-clip outcomes from the cluster, in input order; Dask reruns the tasks of a worker that
    dies, and a clip that keeps killing workers becomes a :class:`ClipFailure` like any other error."""
    with _dask_session(settings) as client:
        calls = ((f"{stage}-{task.clip_id}", (fn, task, stage, cache)) for task in tasks)
        yield from _dask_ordered(client, calls, _run_task_one_thread, _killed_clip, retry_alone=True)


def _dask_partitions(
    fn: Callable,
    parts: Sequence[Partition],
    stage: str,
    cache: ClipCache | None,
    sink: PartSink,
    settings: DaskSettings,
) -> Iterator[tuple[list, dict]]:
    """Partition outcomes from the cluster, in order. A partition whose workers keep dying is
    discarded and run again one clip per part (``<name>-000000`` ...), so only the clip that kills
    its worker is lost, as a ``KilledWorker`` failure.

    The single-clip parts run one after another: Dask charges a worker's death to every task
    assigned to it, so good clips queued beside the bad one would be recorded as killers too."""
    with _dask_session(settings) as client:

        def split(args: tuple, exc: Exception) -> tuple[list, dict]:
            part = args[1]
            sink.discard(part.name)  # in case it was written just before its worker died
            singles = [Partition(part.index, (task,), i) for i, task in enumerate(part.tasks)]
            calls = ((f"{stage}-{p.tasks[0].clip_id}", (fn, p, stage, cache, sink, True)) for p in singles)

            def killed(single_args: tuple, single_exc: Exception) -> tuple[list, dict]:
                (task,) = single_args[1].tasks
                return [_killed_clip((fn, task, stage, cache), single_exc)], {}

            outcomes, summary = [], {}
            for part_outcomes, part_summary in _dask_ordered(
                client, calls, _run_partition, killed, window=1, retry_alone=True
            ):
                outcomes += part_outcomes
                summary.update(part_summary)
            return outcomes, summary

        calls = ((f"{stage}-{p.name}", (fn, p, stage, cache, sink, True)) for p in parts)
        yield from _dask_ordered(client, calls, _run_partition, split)


def _mapped(
    job: Callable, items: Sequence, n_jobs: int, on_dask: Callable[[], Iterator] | None, pre_dispatch: str
) -> Iterator:
    """``job(item)`` for every item, in input order: on Dask (``on_dask()``), in this process
    (one worker), or in joblib worker processes — each with one BLAS/OpenMP thread."""
    workers = resolve_n_jobs(n_jobs)
    if on_dask is not None and items:
        yield from on_dask()
        return
    if workers == 1:
        with threadpool_limits(1):
            yield from (job(item) for item in items)
        return
    with parallel_config(backend="loky", inner_max_num_threads=1):
        parallel = Parallel(n_jobs=workers, return_as="generator", pre_dispatch=pre_dispatch)
        with contextlib.closing(parallel(delayed(job)(item) for item in items)) as results:
            yield from results


def iter_clips(
    fn: Callable,
    tasks: Sequence[ClipTask],
    n_jobs: int = -1,
    stage: str = "extract",
    desc: str = "clips",
    cache: ClipCache | None = None,
    dask: DaskSettings | None = None,
) -> Iterator[tuple[str, Any, bool]]:
    """Yield ``(clip_id, result or ClipFailure, from_cache)`` in input order.

    With ``dask``, the same tasks run on a Dask cluster instead of local processes.
    """
    on_dask = None if dask is None else functools.partial(_dask_outcomes, fn, tasks, stage, cache, dask)
    job = functools.partial(_run_task, fn, stage=stage, cache=cache)
    with tqdm(total=len(tasks), desc=desc, unit="clip", disable=None, smoothing=0.1) as progress:
        with contextlib.closing(_mapped(job, tasks, n_jobs, on_dask, "4*n_jobs")) as results:
            for outcome in results:  # an early exit (closing) shuts a Dask cluster down at once
                progress.update(1)
                yield outcome


def map_clips(
    fn: Callable,
    tasks: Sequence[ClipTask],
    n_jobs: int = -1,
    stage: str = "extract",
    desc: str = "clips",
    cache: ClipCache | None = None,
    dask: DaskSettings | None = None,
) -> tuple[dict[str, Any], list[ClipFailure]]:
    """Collect :func:`iter_clips` into (results by clip_id in input order, failures)."""
    results: dict[str, Any] = {}
    failures: list[ClipFailure] = []
    for clip_id, outcome, _ in iter_clips(fn, tasks, n_jobs, stage, desc, cache, dask):
        if isinstance(outcome, ClipFailure):
            failures.append(outcome)
        else:
            results[clip_id] = outcome
    return results, failures


def partitions(tasks: Sequence[ClipTask], size: int) -> list[Partition]:
    """Consecutive tasks, ``size`` at a time, named ``part-00000``, ``part-00001``, ... (input order)."""
    if not 1 <= size <= MAX_ROWS_PER_PART:
        raise ValueError(f"partition size must be in [1, {MAX_ROWS_PER_PART}], got {size}")
    if -(-len(tasks) // size) > MAX_PARTS:
        raise ValueError(f"{len(tasks)} clips in parts of {size} exceed {MAX_PARTS} parts; raise store.rows_per_part")
    return [Partition(i // size, tuple(tasks[i : i + size])) for i in range(0, len(tasks), size)]


def iter_partitions(
    fn: Callable,
    parts: Sequence[Partition],
    sink: PartSink,
    n_jobs: int = -1,
    stage: str = "extract",
    desc: str = "clips",
    cache: ClipCache | None = None,
    dask: DaskSettings | None = None,
) -> Iterator[tuple[list[tuple[str, ClipFailure | None, bool]], dict]]:
    """Run whole partitions on the workers, which write their own part files through ``sink``.

    Yields, per partition in input order, ``([(clip_id, failure or None, from_cache)], summary)``:
    feature rows never travel back to this process. Same processes, thread limits,
    error capture and cache as :func:`iter_clips`; the progress bar counts clips.
    """
    on_dask = None if dask is None else functools.partial(_dask_partitions, fn, parts, stage, cache, sink, dask)
    job = functools.partial(_run_partition, fn, stage=stage, cache=cache, sink=sink)
    total = sum(len(part.tasks) for part in parts)
    with tqdm(total=total, desc=desc, unit="clip", disable=None, smoothing=0.1) as progress:
        with contextlib.closing(_mapped(job, parts, n_jobs, on_dask, "2*n_jobs")) as results:
            for part_outcomes, summary in results:
                progress.update(len(part_outcomes))
                yield part_outcomes, summary


def check_error_budget(
    n_failed: int, n_total: int, max_fraction: float, failures: Sequence[ClipFailure], what: str
) -> None:
    """Raise :class:`StageFailed` with a summary of the top error kinds when too many clips failed."""
    if not n_total or n_failed / n_total <= max_fraction:
        return
    kinds = Counter(f"{f.stage}/{f.error_type}" for f in failures)
    top = ", ".join(f"{k}: {v}" for k, v in kinds.most_common(5))
    first = f" First: {failures[0].clip_id}: {failures[0].message}" if failures else ""
    raise StageFailed(
        f"{what}: {n_failed} of {n_total} clips failed ({n_failed / n_total:.1%} > max_error_fraction "
        f"{max_fraction:.1%}). Top errors: {top}.{first}"
    )
