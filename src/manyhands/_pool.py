"""Pool: owns warm backends and their defaults; a ``concurrent.futures.Executor``."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, Executor, Future, InvalidStateError
from typing import TYPE_CHECKING, Any, TypeVar

from ._core._engine import item_exception
from ._core._protocol import Backend
from ._core._task import Chunk, ChunkOutcome, Job, is_coroutine_function
from ._errors import ArgumentValueError, PoolClosedError
from ._executor_map import MapDriver, buffered, check_map_arguments, zipped
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
        kind = check_backend(backend)
        where = check_where(kind, address, client)
        self._start(
            kind,
            workers=check_positive_int("workers", workers, allow_none=True),
            initializer=initializer,
            initargs=initargs,
            settings={"dask": where} if where else {},
        )

    def _start(
        self,
        kind: str,
        *,
        workers: int | None,
        initializer: object,
        initargs: object,
        settings: dict[str, dict[str, Any]],
    ) -> None:
        """Set the Pool up (``settings``: backend keywords by kind, as ``Backends`` takes)."""
        self._kind = kind
        self._workers = workers
        self._initializer, self._initargs = check_initializer(initializer, initargs)
        self._lock = threading.Lock()
        self._stats = StatisticsRecorder()
        self._backends = Backends(
            initializer=self._initializer,
            initargs=self._initargs,
            settings=settings,
            on_open=self._stats.used,
        )
        self._futures: set[Future[Any]] = set()
        self._submit_keys: weakref.WeakKeyDictionary[Callable[..., Any], int] = (
            weakref.WeakKeyDictionary()
        )
        self._drivers: list[MapDriver] = []  # map() calls whose engine may still run
        #: Set when an initializer failed: every later submit raises it, as the standard
        #: library's pools do.
        self._broken: BrokenExecutor | None = None
        self._closed = False
        self._stopping: threading.Thread | None = None  # a shutdown(wait=False) under way
        if self._kind != "auto":
            self._backend(self._kind)  # warm before the first call

    # -- mapping -----------------------------------------------------------------------

    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
        progress: bool = False,
        errors: str = "raise",
        retries: int | Retry = 0,
        memory_floor: int | None = None,
        journal: str | os.PathLike[str] | None = None,
        retry_failed: bool = False,
        journal_mismatch: str = "raise",
    ) -> Iterator[R]:
        """``Executor.map``: an iterator over ``fn(*args)`` for the iterables zipped, in order.

        As in ``concurrent.futures``: the work starts now and the iterables are read now (with
        ``buffersize``, lazily: at most that many calls run ahead of what is yielded); each
        ``next()`` raises the item's exception at its place; ``timeout`` seconds, counted from
        this call, bound the wait for every result (then ``TimeoutError``). ``chunksize``: 1
        (the default) lets manyhands measure how many items travel together; more fixes it.

        The options of ``imap`` apply too (``errors="return"``, ``retries``, ``journal``...),
        but ``timeout`` keeps the Executor's meaning: for a limit per item use
        ``pool.imap(fn, items, timeout=...)``. ``list(pool.map(...))`` is the list.
        """
        check_fn(fn)
        limit, size, buffer = check_map_arguments(timeout, chunksize, buffersize)
        deadline = None if limit is None else time.monotonic() + limit
        inputs, star = zipped(iterables)
        options = RunOptions.checked(
            chunksize=size,
            progress=progress,
            errors=errors,
            retries=retries,
            memory_floor=memory_floor,
            journal=journal,
            retry_failed=retry_failed,
            journal_mismatch=journal_mismatch,
            backend=self._kind,
        )
        if buffer is not None:
            if options != RunOptions.checked(chunksize=size, backend=self._kind):
                raise ArgumentValueError(
                    f"buffersize={buffer} runs each call on its own, as submit() does, and the "
                    "manyhands options given (progress, errors, retries, memory_floor, "
                    "journal) apply to whole maps: drop buffersize= (pool.imap's memory is "
                    "bounded already), or drop those options"
                )
            self._check_open()
            return buffered(self.submit, fn, inputs, star, buffer, deadline)
        items = list(inputs)  # read now, as the standard library's map reads its iterables
        target = self._target()  # refuses a Pool that has been shut down
        mode: Mode = "star" if star else "map"

        def run(stop: Callable[[], bool]) -> Iterator[list[Any]]:
            return run_chunks(target, fn, items, mode, options, listeners=[self._stats], stop=stop)

        with self._lock:  # registered before it starts: its end removes it
            driver = MapDriver(run, deadline, self._driver_ended)
            self._drivers.append(driver)
        return driver.results()

    def _driver_ended(self, driver: MapDriver) -> None:
        with self._lock, contextlib.suppress(ValueError):  # shutdown took the list meanwhile
            self._drivers.remove(driver)

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
        broken = self._broken
        if broken is not None:  # as the standard library's pools, once an initializer failed
            raise type(broken)(str(broken)) from broken.__cause__
        kind = self._kind
        if kind == "auto":  # one call gives nothing to measure before it runs
            kind = "asyncio" if is_coroutine_function(fn) else "thread"
        backend = self._backend(kind)
        future: Future[R] = Future()

        def report(chunk: Chunk, outcome: ChunkOutcome) -> None:
            self._stats.record(outcome)
            with contextlib.suppress(InvalidStateError):  # abandoned at shutdown meanwhile
                if outcome.errors:
                    error = item_exception(outcome.errors[0], None, None)
                    if isinstance(error, BrokenExecutor):
                        self._broken = error
                    future.set_exception(error)
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
        """A job for one call; calls of one function share its key, so that a process worker
        unpickles the function once. Only the key is kept, weakly keyed by the function: a
        job kept would hold the function (and a bound method its object) for the Pool's
        life."""
        try:
            key = self._submit_keys.get(fn)
            if key is None:
                job = Job(fn, "call")
                self._submit_keys[fn] = job.key
                return job
            return Job(fn, "call", key=key)
        except TypeError:  # not weakly referenceable (some builtins), or not hashable
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
            closed = self._closed
            self._closed = True
            futures = list(self._futures)
            drivers = list(self._drivers)
            self._drivers.clear()
        if cancel_futures:
            for future in futures:
                future.cancel()  # refused by those already running: they complete
            for driver in drivers:
                driver.stop()  # map() calls: what has not started is cancelled
        if closed:  # again: as the standard library's, wait=True waits for the workers' end
            stopping = self._stopping
            if wait and stopping is not None and stopping is not threading.current_thread():
                stopping.join()
            return

        def finish() -> None:
            for driver in drivers:  # every map() call's items run, as if all were submitted
                driver.thread.join()
            self._backends.shutdown(cancel=False)

        if wait:
            finish()
        else:
            self._stopping = threading.Thread(target=finish, name="manyhands-shutdown", daemon=True)
            self._stopping.start()

    def _check_open(self) -> None:
        if self._closed:
            raise PoolClosedError(
                "this Pool has been shut down; create a new Pool, or do the work inside "
                "its `with` block"
            )

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
