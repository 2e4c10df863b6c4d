"""Pool: owns warm backends and their defaults; a ``concurrent.futures.Executor``."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, InvalidStateError
from typing import TYPE_CHECKING, Any, TypeVar

from ._core._engine import execute, item_exception, known_length
from ._core._events import Listener
from ._core._failure import Retry
from ._core._protocol import Backend
from ._core._task import Chunk, ChunkOutcome, Job
from ._errors import PoolClosedError
from ._options import (
    RunOptions,
    check_backend,
    check_fn,
    check_initializer,
    check_items,
    check_positive_int,
    check_where,
    default_workers,
)
from ._progress import ProgressBar
from ._stats import PoolStatistics, StatisticsRecorder
from .backends import bind, create

if TYPE_CHECKING:
    from ._core._task import Mode
    from ._journal import Journal

__all__ = ["Pool", "arun_chunks", "collect", "run_chunks"]

T = TypeVar("T")
R = TypeVar("R")


class Pool(Executor):
    """Warm workers for many calls: ``map``, ``imap``, ``starmap`` and ``submit``.

    ``Pool`` is a ``concurrent.futures.Executor``: ``submit`` returns a ``Future``, so it works
    with ``as_completed``, ``wait`` and ``loop.run_in_executor``. Its ``map`` differs from
    ``Executor.map``: it takes one iterable, returns a list, and chunks automatically
    (``starmap(fn, zip(a, b))`` maps over several). Use it as a context manager, or call
    ``shutdown()``: workers stay up until then.

    ``initializer(*initargs)`` runs once in each worker before its first item.

    ``backend="dask"``: the pool's work runs on the Dask cluster at ``address=``, or through
    ``client=`` (a ``distributed.Client``), or else on a local cluster the pool starts and
    stops with itself.
    """

    def __init__(
        self,
        *,
        backend: str = "auto",
        workers: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        address: str | None = None,
        client: Any = None,
    ) -> None:
        self._kind = check_backend(backend)
        self._where = check_where(self._kind, address, client)
        self._workers = check_positive_int("workers", workers, allow_none=True)
        self._initializer, self._initargs = check_initializer(initializer, initargs)
        self._lock = threading.Lock()
        self._backends: dict[str, Backend] = {}
        self._futures: set[Future[Any]] = set()
        self._submit_jobs: weakref.WeakKeyDictionary[Callable[..., Any], Job] = (
            weakref.WeakKeyDictionary()
        )
        self._stats = StatisticsRecorder()
        self._closed = False
        if self._kind != "auto":
            self._backend(self._kind)  # warm before the first call

    # -- mapping -----------------------------------------------------------------------

    def map(  # type: ignore[override]
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        /,
        *,
        ordered: bool = True,
        chunksize: int | None = None,
        progress: bool = False,
        errors: str = "raise",
        timeout: float | None = None,
        retries: int | Retry = 0,
        memory_floor: int | None = None,
        journal: str | os.PathLike[str] | None = None,
        retry_failed: bool = False,
        journal_mismatch: str = "raise",
    ) -> list[R]:
        """``[fn(item) for item in items]``, run on the pool's workers."""
        options = RunOptions.checked(
            ordered=ordered,
            chunksize=chunksize,
            progress=progress,
            errors=errors,
            timeout=timeout,
            retries=retries,
            memory_floor=memory_floor,
            journal=journal,
            retry_failed=retry_failed,
            journal_mismatch=journal_mismatch,
            backend=self._kind,
        )
        return collect(self._chunks(check_fn(fn), check_items(items), "map", options))

    def imap(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        /,
        *,
        ordered: bool = True,
        chunksize: int | None = None,
        progress: bool = False,
        errors: str = "raise",
        timeout: float | None = None,
        retries: int | Retry = 0,
        memory_floor: int | None = None,
        journal: str | os.PathLike[str] | None = None,
        retry_failed: bool = False,
        journal_mismatch: str = "raise",
    ) -> Iterator[R]:
        """Lazily yield ``fn(item)`` for each item; see ``manyhands.imap``."""
        options = RunOptions.checked(
            ordered=ordered,
            chunksize=chunksize,
            progress=progress,
            errors=errors,
            timeout=timeout,
            retries=retries,
            memory_floor=memory_floor,
            journal=journal,
            retry_failed=retry_failed,
            journal_mismatch=journal_mismatch,
            backend=self._kind,
        )
        return _flatten(self._chunks(check_fn(fn), check_items(items), "map", options))

    def starmap(
        self,
        fn: Callable[..., R],
        items: Iterable[Iterable[Any]],
        /,
        *,
        ordered: bool = True,
        chunksize: int | None = None,
        progress: bool = False,
        errors: str = "raise",
        timeout: float | None = None,
        retries: int | Retry = 0,
        memory_floor: int | None = None,
        journal: str | os.PathLike[str] | None = None,
        retry_failed: bool = False,
        journal_mismatch: str = "raise",
    ) -> list[R]:
        """``[fn(*args) for args in items]``, run on the pool's workers."""
        options = RunOptions.checked(
            ordered=ordered,
            chunksize=chunksize,
            progress=progress,
            errors=errors,
            timeout=timeout,
            retries=retries,
            memory_floor=memory_floor,
            journal=journal,
            retry_failed=retry_failed,
            journal_mismatch=journal_mismatch,
            backend=self._kind,
        )
        return collect(self._chunks(check_fn(fn), check_items(items), "star", options))

    def _chunks(
        self, fn: Callable[..., Any], items: Iterable[Any], mode: Mode, options: RunOptions
    ) -> Iterator[list[Any]]:
        backend = self._backend(self._kind)
        yield from run_chunks(backend, fn, items, mode, options, listeners=[self._stats])

    # -- Executor ----------------------------------------------------------------------

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        """Schedule ``fn(*args, **kwargs)``; its ``Future`` holds the result or the exception."""
        check_fn(fn)
        backend = self._backend(self._kind)
        future: Future[R] = Future()

        def report(chunk: Chunk, outcome: ChunkOutcome) -> None:
            self._stats.record(outcome)
            with contextlib.suppress(InvalidStateError):  # abandoned at shutdown meanwhile
                if outcome.errors:
                    future.set_exception(item_exception(outcome.errors[0], None, None))
                else:
                    future.set_result(outcome.results[0])

        chunk = Chunk(
            self._submit_job(fn),
            0,
            0,
            [(args, kwargs)],
            report,
            on_claim=future.set_running_or_notify_cancel,
            on_cancel=lambda: _abandon(future),
        )
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        backend.submit(chunk)
        return future

    def _submit_job(self, fn: Callable[..., Any]) -> Job:
        # One Job per function, so a process worker unpickles a submitted function once.
        try:
            job = self._submit_jobs.get(fn)
            if job is None:
                job = self._submit_jobs[fn] = Job(fn, "call")
            return job
        except TypeError:  # not weakly referenceable (some builtins)
            return Job(fn, "call")

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers once the work already submitted is done.

        ``cancel_futures=True`` first cancels every submitted call that has not started.
        ``wait=False`` returns at once; the workers stop in the background.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            backends = list(self._backends.values())
            futures = list(self._futures)
        if cancel_futures:
            for future in futures:
                future.cancel()

        def stop() -> None:
            for backend in backends:
                backend.shutdown(cancel=False)

        if wait:
            stop()
        else:
            threading.Thread(target=stop, name="manyhands-shutdown", daemon=True).start()

    def statistics(self) -> PoolStatistics:
        """Items done and failed, busy seconds per worker, elapsed seconds, backends used."""
        return self._stats.snapshot()

    # -- backends ----------------------------------------------------------------------

    def _backend(self, kind: str) -> Backend:
        with self._lock:
            if self._closed:
                raise PoolClosedError(
                    "this Pool has been shut down; create a new Pool, or do the work inside "
                    "its `with` block"
                )
            backend = self._backends.get(kind)
            if backend is None:
                # auto chooses per job; dask takes the cluster's size
                chosen = kind in ("auto", "dask")
                backend = create(
                    kind,
                    workers=self._workers or (None if chosen else default_workers(kind)),
                    initializer=self._initializer,
                    initargs=self._initargs,
                    eager=True,
                    **self._where,
                )
                self._backends[kind] = backend
                self._stats.used(kind)
            return backend


def run_chunks(
    backend: Backend,
    fn: Callable[..., Any],
    items: Iterable[Any],
    mode: Mode,
    options: RunOptions,
    *,
    listeners: Iterable[Listener] = (),
) -> Iterator[list[Any]]:
    """One map over ``backend``, a list of results at a time, with the options applied."""
    job, target, listening, store = start_job(backend, fn, items, mode, options, listeners)
    finished = False
    try:
        yield from execute(target, job, items, listeners=listening, store=store, **options.engine)
        finished = True
    finally:
        end_job(backend, target, store, finished=finished)


async def arun_chunks(
    backend: Backend,
    fn: Callable[..., Any],
    items: Iterable[Any],
    mode: Mode,
    options: RunOptions,
) -> AsyncIterator[list[Any]]:
    """``run_chunks`` for async callers: the engine waits on the running event loop."""
    from ._core._engine_async import execute_async

    job, target, listening, store = start_job(backend, fn, items, mode, options, ())
    finished = False
    try:
        async for results in execute_async(
            target, job, items, listeners=listening, store=store, **options.engine
        ):
            yield results
        finished = True
    finally:
        end_job(backend, target, store, finished=finished)


def start_job(
    backend: Backend,
    fn: Callable[..., Any],
    items: Iterable[Any],
    mode: Mode,
    options: RunOptions,
    listeners: Iterable[Listener],
) -> tuple[Job, Backend, list[Listener], Journal | None]:
    """The job a map runs, the backend it runs on (auto: its own router), who listens, and
    the journal it records into."""
    total = known_length(items)
    journal = None if options.journal is None else options.journal.open(fn, mode, total)
    listening = list(listeners)
    if options.progress:
        listening.append(ProgressBar.for_function(fn))
    job = options.job(fn, mode)
    return job, bind(backend, job, total), listening, journal


def end_job(backend: Backend, target: Backend, journal: Journal | None, *, finished: bool) -> None:
    try:
        if target is not backend:  # auto's router for this job; the backends behind it stay
            target.shutdown(cancel=not finished)
    finally:
        if journal is not None:
            journal.close(finished=finished)


def collect(chunks: Iterator[list[Any]]) -> list[Any]:
    results: list[Any] = []
    for chunk in chunks:
        results.extend(chunk)
    return results


def _flatten(chunks: Iterator[list[Any]]) -> Iterator[Any]:
    # A generator, not itertools.chain: closing it (or dropping it) closes ``chunks``, which
    # cancels the work still outstanding.
    try:
        for chunk in chunks:
            yield from chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _abandon(future: Future[Any]) -> None:
    if not future.cancel():
        with contextlib.suppress(InvalidStateError):
            future.set_exception(
                PoolClosedError("the pool's workers were stopped before this call finished")
            )
