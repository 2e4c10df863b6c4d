"""Pool: owns warm backends and their defaults; a ``concurrent.futures.Executor``."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, InvalidStateError
from typing import TYPE_CHECKING, Any, TypeVar

from ._core._engine import item_exception
from ._core._protocol import Backend
from ._core._task import Chunk, ChunkOutcome, Job, is_coroutine_function
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
from ._run import Backends, Target, auto_target, collect, flatten, run_chunks
from ._stats import PoolStatistics, StatisticsRecorder

if TYPE_CHECKING:
    from ._core._failure import Retry
    from ._core._task import Mode

__all__ = ["Pool"]

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
        self._stats = StatisticsRecorder()
        self._backends = Backends(
            initializer=self._initializer,
            initargs=self._initargs,
            where=self._where,
            on_open=self._stats.used,
        )
        self._futures: set[Future[Any]] = set()
        self._submit_jobs: weakref.WeakKeyDictionary[Callable[..., Any], Job] = (
            weakref.WeakKeyDictionary()
        )
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
        return flatten(self._chunks(check_fn(fn), check_items(items), "map", options))

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
        yield from run_chunks(self._target(), fn, items, mode, options, listeners=[self._stats])

    def _target(self) -> Target:
        if self._kind == "auto":
            return auto_target(self._backends, self._workers)
        backend = self._backend(self._kind)
        return lambda job, total: backend

    # -- Executor ----------------------------------------------------------------------

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        """Schedule ``fn(*args, **kwargs)``; its ``Future`` holds the result or the exception."""
        check_fn(fn)
        kind = self._kind
        if kind == "auto":  # one call gives nothing to measure before it runs
            kind = "asyncio" if is_coroutine_function(fn) else "thread"
        backend = self._backend(kind)
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
            futures = list(self._futures)
        if cancel_futures:
            for future in futures:
                future.cancel()
        self._backends.shutdown(cancel=False, wait=wait)

    def statistics(self) -> PoolStatistics:
        """Items done and failed, busy seconds per worker, elapsed seconds, backends used."""
        return self._stats.snapshot()

    # -- backends ----------------------------------------------------------------------

    def _backend(self, kind: str) -> Backend:
        """The Pool's backend ``kind`` (``Backends.open`` refuses once the Pool is shut down)."""
        # dask takes the cluster's size when workers= is not given
        workers = self._workers or (None if kind == "dask" else default_workers(kind))
        return self._backends.open(kind, workers)  # eager for processes and Dask only


def _abandon(future: Future[Any]) -> None:
    if not future.cancel():
        with contextlib.suppress(InvalidStateError):
            future.set_exception(
                PoolClosedError("the pool's workers were stopped before this call finished")
            )
