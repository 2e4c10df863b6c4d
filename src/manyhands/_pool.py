"""Pool: warm workers for many calls, the whole mapping surface, and a real
``concurrent.futures.Executor``."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import BrokenExecutor, Executor, Future, InvalidStateError
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from ._core._decision import Decision
from ._core._engine import item_exception
from ._core._protocol import Backend
from ._core._task import Chunk, ChunkOutcome, Job, is_coroutine_function
from ._errors import ArgumentValueError, PoolClosedError
from ._executor_map import MapDriver, buffered, check_map_arguments, zipped
from ._options import (
    KEYWORDS,
    LAZY_NAMES,
    RunOptions,
    check_backend,
    check_fn,
    check_initializer,
    check_items,
    check_positive_int,
    check_runs_on,
    takes_options,
)
from ._run import Runner, collect, flatten
from ._stats import PoolStatistics, StatisticsRecorder

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._core._failure import Retry
    from ._core._task import Mode
    from ._keywords import MapKeywords
    from ._options import Dask, Journal, Processes
    from ._run import MapCall

__all__ = ["Pool"]

T = TypeVar("T")
R = TypeVar("R")


class Pool(Executor):
    """Warm workers for many calls: ``imap``, ``starmap``, ``istarmap``, ``amap``, ``aimap``
    and ``explain``, with the options of ``manyhands.map``; and a
    ``concurrent.futures.Executor``: ``submit`` returns a ``Future`` (``wait``,
    ``as_completed``, ``loop.run_in_executor``), and ``map`` is ``Executor.map`` (an iterator;
    ``list(pool.map(fn, items))`` is the list). Use it as a context manager, or call
    ``shutdown()``: workers stay up until then.

    ``backend``: as for ``manyhands.map`` (``manyhands.Dask(address=...)`` runs on a Dask
    cluster; ``"dask"``, on a local cluster the pool starts and stops with itself).
    ``initializer(*initargs)`` runs once in each worker before its first item.
    """

    def __init__(
        self,
        *,
        backend: str | Processes | Dask = "auto",
        workers: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        kind, settings = check_backend(backend)
        self._start(
            kind,
            workers=check_positive_int("workers", workers, allow_none=True),
            initializer=initializer,
            initargs=initargs,
            settings={kind: settings} if settings else {},
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
        initializer, initargs = check_initializer(initializer, initargs)
        self._lock = threading.Lock()
        self._stats = StatisticsRecorder()
        self._runner = Runner(
            kind,
            workers=workers,
            settings=settings,
            initializer=initializer,
            initargs=initargs,
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
        self._runner.warm()  # an explicit backend starts before the first call

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
        journal: str | os.PathLike[str] | Journal | None = None,
        output: str = "forward",
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
        extras = {
            "progress": progress,
            "errors": errors,
            "retries": retries,
            "memory_floor": memory_floor,
            "journal": journal,
            "output": output,
        }
        options = RunOptions.checked(
            {"chunksize": size, **extras}, entry="Pool.map()", backend=self._kind
        )
        if buffer is not None:
            given = [name for name, value in extras.items() if value != KEYWORDS[name]]
            if given:
                raise ArgumentValueError(
                    f"buffersize={buffer} runs each call on its own, as submit() does, and "
                    f"{', '.join(f'{name}=' for name in given)} apply to whole maps: drop "
                    "buffersize= (pool.imap's memory is bounded already), or drop those options"
                )
            self._check_open()
            return buffered(self.submit, fn, inputs, star, buffer, deadline)
        items = list(inputs)  # read now, as the standard library's map reads its iterables
        self._check_open()
        mode: Mode = "star" if star else "map"

        def run(stop: Callable[[], bool]) -> Iterator[list[Any]]:
            call = (fn, mode, items, options)
            return self._runner.chunks(call, listeners=[self._stats], stop=stop)

        with self._lock:  # registered before it starts: its end removes it
            driver = MapDriver(run, deadline, self._driver_ended)
            self._drivers.append(driver)
        return driver.results()

    def _driver_ended(self, driver: MapDriver) -> None:
        with self._lock, contextlib.suppress(ValueError):  # shutdown took the list meanwhile
            self._drivers.remove(driver)

    @overload
    def imap(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        /,
        *,
        indexed: Literal[False] = False,
        **options: Unpack[MapKeywords],
    ) -> Iterator[R]: ...

    @overload
    def imap(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        /,
        *,
        indexed: Literal[True],
        **options: Unpack[MapKeywords],
    ) -> Iterator[tuple[int, R]]: ...

    @takes_options(method=True, lazy=True)
    def imap(
        self, fn: Callable[[T], R], items: Iterable[T], /, **options: Any
    ) -> Iterator[R] | Iterator[tuple[int, R]]:
        """Lazily yield ``fn(item)`` for each item; see ``manyhands.imap``."""
        return flatten(self._chunks("imap()", fn, items, "map", options, lazy=True))

    @overload
    def istarmap(
        self,
        fn: Callable[..., R],
        items: Iterable[Iterable[Any]],
        /,
        *,
        indexed: Literal[False] = False,
        **options: Unpack[MapKeywords],
    ) -> Iterator[R]: ...

    @overload
    def istarmap(
        self,
        fn: Callable[..., R],
        items: Iterable[Iterable[Any]],
        /,
        *,
        indexed: Literal[True],
        **options: Unpack[MapKeywords],
    ) -> Iterator[tuple[int, R]]: ...

    @takes_options(method=True, lazy=True)
    def istarmap(
        self, fn: Callable[..., R], items: Iterable[Iterable[Any]], /, **options: Any
    ) -> Iterator[R] | Iterator[tuple[int, R]]:
        """Lazily yield ``fn(*args)`` for each tuple of arguments; see ``manyhands.istarmap``."""
        return flatten(self._chunks("istarmap()", fn, items, "star", options, lazy=True))

    @takes_options(method=True)
    def starmap(
        self,
        fn: Callable[..., R],
        items: Iterable[Iterable[Any]],
        /,
        **options: Unpack[MapKeywords],
    ) -> list[R]:
        """``[fn(*args) for args in items]``, run on the pool's workers."""
        return collect(self._chunks("starmap()", fn, items, "star", options))

    @takes_options(method=True)
    async def amap(
        self, fn: Callable[[T], Any], items: Iterable[T], /, **options: Unpack[MapKeywords]
    ) -> list[Any]:
        """``await pool.amap(fn, items)``: ``manyhands.amap`` on the pool's workers."""
        results: list[Any] = []
        async for chunk in self._achunks("amap()", fn, items, options):
            results.extend(chunk)
        return results

    @takes_options(method=True)
    def aimap(
        self, fn: Callable[[T], Any], items: Iterable[T], /, **options: Unpack[MapKeywords]
    ) -> AsyncIterator[Any]:
        """``async for result in pool.aimap(fn, items)``: lazy ``amap``."""
        from ._api import aflatten

        return aflatten(self._achunks("aimap()", fn, items, options))

    def explain(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        /,
        *,
        chunksize: int | None = None,
        timeout: float | None = None,
    ) -> Decision:
        """Where ``pool.imap(fn, items, ...)`` would run and why; see ``manyhands.explain``."""
        from ._api import decide

        options = RunOptions.checked(
            {"chunksize": chunksize, "timeout": timeout}, entry="explain()", backend=self._kind
        )
        return decide(self._kind, self._runner.workers, check_fn(fn), check_items(items), options)

    def _chunks(
        self,
        entry: str,
        fn: object,
        items: object,
        mode: Mode,
        options: Mapping[str, object],
        *,
        lazy: bool = False,
    ) -> Iterator[list[Any]]:
        """One map's results on the pool's workers, every argument checked now."""
        run = self._checked(entry, options, lazy)
        call, inputs = check_fn(fn), check_items(items)
        check_runs_on(call, self._kind)
        self._check_open()
        return self._runner.chunks((call, mode, inputs, run), listeners=[self._stats])

    async def _achunks(
        self, entry: str, fn: object, items: object, options: Mapping[str, object]
    ) -> AsyncIterator[list[Any]]:
        import asyncio

        run = self._checked(entry, options, False)
        call, inputs = check_fn(fn), check_items(items)
        check_runs_on(call, self._kind)
        self._check_open()
        runner = self._runner
        if is_coroutine_function(call) or self._kind == "asyncio":
            # Coroutines run on the caller's loop (its sessions work in them): backends of
            # this call's own there, stopped with it. Plain functions: the warm workers.
            runner = runner.on_loop(asyncio.get_running_loop())
        mapped: MapCall = (call, "map", inputs, run)
        async for results in runner.achunks(mapped, listeners=[self._stats]):
            yield results

    def _checked(self, entry: str, options: Mapping[str, object], lazy: bool) -> RunOptions:
        return RunOptions.checked(
            options, entry=entry, backend=self._kind, allowed=LAZY_NAMES if lazy else None
        )

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
        self._stop(wait=wait, cancel_futures=cancel_futures, kill=False)

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        """The ``with`` block's end: ``shutdown(wait=True)``, as any Executor's; but after
        Ctrl-C (or ``SystemExit``) nothing more is waited for: queued calls are cancelled and
        running ones stopped (process workers killed), so the program stops at once. The
        standard library's pools wait there for every running call."""
        interrupted = exc_type is not None and not issubclass(exc_type, Exception)
        self._stop(wait=True, cancel_futures=interrupted, kill=interrupted)

    def _stop(self, *, wait: bool, cancel_futures: bool, kill: bool) -> None:
        """``shutdown``; ``kill``: stop the running calls too, rather than wait for them."""
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
            if kill:
                self._runner.shutdown(cancel=True)
            for driver in drivers:  # every map() call's items run, as if all were submitted
                driver.thread.join()  # (after a kill: each notices its stop within STOP_POLL)
            if not kill:
                self._runner.shutdown(cancel=False)

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
        return self._runner.backend(kind)  # eager for processes and Dask only


def _abandon(future: Future[Any]) -> None:
    if not future.cancel():
        with contextlib.suppress(InvalidStateError):
            future.set_exception(
                PoolClosedError("the pool's workers were stopped before this call finished")
            )
