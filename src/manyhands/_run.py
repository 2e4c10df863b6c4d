"""What runs a map: the backends a call or a Pool has opened (``Backends``), and the
``Runner`` that runs each of its maps on them.

Kept apart from ``Pool`` (a ``concurrent.futures.Executor``) so that a plain ``map`` does not
import ``concurrent.futures`` and, through it, ``logging``: a tiny first call pays for what it
uses only.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

from ._core._engine import Where, execute, known_length
from ._core._plan import Plan
from ._core._protocol import Backend
from ._core._task import Job
from ._errors import PoolClosedError
from ._options import RunOptions, default_workers
from .backends import create

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any, TypeAlias

    from ._core._events import Listener
    from ._core._task import Mode
    from ._journal import JournalFile

    #: One map, checked, in the order ``execute`` takes it: (fn, mode, items, options). A
    #: plain tuple: a record class costs a first call 0.08 ms to make.
    MapCall: TypeAlias = tuple[Callable[..., Any], Mode, Iterable[Any], RunOptions]

__all__ = [
    "Backends",
    "Runner",
    "Target",
    "auto_target",
    "collect",
    "flatten",
]

#: What a job runs on: a backend, or (``backend="auto"``) the plan made for the job.
Target = Where


class Backends:
    """The backends a call or a Pool has opened, by kind and worker count; shut down together.

    The auto planner opens what its decisions need through ``open``; a Pool keeps them warm
    for its next jobs, a one-shot call shuts them down when it returns.
    """

    def __init__(
        self,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        loop: asyncio.AbstractEventLoop | None = None,
        on_open: Callable[[str], None] | None = None,
        settings: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """``settings``: more keywords for the backends of a kind (a Dask's ``address`` or
        ``client``; ``{"process": {"max_tasks_per_child": 10}}`` from a drop-in executor)."""
        self._initializer = initializer
        self._initargs = initargs
        self._settings = settings or {}
        self._loop = loop
        self._on_open = on_open
        self._lock = threading.Lock()
        self._opened: dict[tuple[str, int | None, int], Backend] = {}
        self._closed = False

    def open(
        self, kind: str, workers: int | None, threads: int = 1, *, eager: bool | None = None
    ) -> Backend:
        """The backend ``kind`` with ``workers`` workers, started now if it is not open yet;
        ``threads``: processes that each run that many threads (auto's choice for waiting
        work that keeps one GIL busy).

        ``eager``: start every worker now (default: for processes and Dask, whose start-up
        then overlaps the first items; threads start as work arrives).
        """
        with self._lock:
            if self._closed:
                raise PoolClosedError(
                    "this Pool has been shut down; create a new Pool, or do the work inside "
                    "its `with` block"
                )
            backend = self._opened.get((kind, workers, threads))
            if backend is None:
                settings = dict(self._settings.get(kind, {}))
                if threads > 1:
                    settings["threads"] = threads
                if kind == "asyncio" and self._loop is not None:
                    from .backends.aio import AsyncioBackend

                    assert workers is not None
                    backend = AsyncioBackend(workers=workers, loop=self._loop)
                else:
                    backend = create(
                        kind,
                        workers=workers,
                        initializer=self._initializer,
                        initargs=self._initargs,
                        eager=kind in ("process", "dask") if eager is None else eager,
                        **settings,
                    )
                self._opened[(kind, workers, threads)] = backend
                if self._on_open is not None:
                    self._on_open(kind)
            return backend

    def shutdown(self, *, cancel: bool) -> None:
        """Stop every backend opened."""
        with self._lock:
            self._closed = True
            backends = list(self._opened.values())
        for backend in backends:
            backend.shutdown(cancel=cancel)


class Runner:
    """Where the jobs of a one-call function or of a Pool run, and how: the backends opened
    for them, and auto's planner or the backend named. Every map takes this path: a Pool
    holds one for its life; ``manyhands.map`` opens one for the call, as httpx's functions
    open a Client (not a Pool itself: a Pool is an ``Executor``, and importing
    ``concurrent.futures`` would cost every tiny first call 5 ms).

    ``one_call``: a backend named is sized to the job's input (no 32 threads for 3 items)
    and opened when the job starts; a Pool's are opened at once, of the default size.
    """

    def __init__(
        self,
        kind: str,
        *,
        workers: int | None,
        settings: dict[str, dict[str, Any]] | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        on_open: Callable[[str], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        one_call: bool = False,
    ) -> None:
        self.kind = kind
        self.workers = workers
        self.backends = Backends(
            initializer=initializer,
            initargs=initargs,
            settings=settings,
            on_open=on_open,
            loop=loop,
        )
        self._one_call = one_call
        self._spec = (settings, initializer, initargs, on_open)

    def on_loop(self, loop: asyncio.AbstractEventLoop) -> Runner:
        """A runner for one async call of a Pool's: the same settings, and its coroutines on
        the caller's loop (shut it down after the call)."""
        settings, initializer, initargs, on_open = self._spec
        return Runner(
            self.kind,
            workers=self.workers,
            settings=settings,
            initializer=initializer,
            initargs=initargs,
            on_open=on_open,
            loop=loop,
            one_call=True,
        )

    def warm(self) -> None:
        """Start the named backend now (a Pool's, before its first call)."""
        if self.kind != "auto":
            self.backend(self.kind)

    def backend(self, kind: str, items: Iterable[Any] | None = None) -> Backend:
        """The backend ``kind``: sized to ``items`` for one call; as many workers as given,
        else the default (Dask: as many as the cluster has)."""
        workers = self.workers
        if kind != "dask" and workers is None:
            workers = default_workers(kind)
        if items is not None and workers is not None:
            total = known_length(items)
            workers = workers if total is None else max(1, min(workers, total))  # none idle
        return self.backends.open(kind, workers)

    def target(self, items: Iterable[Any]) -> Target:
        """What a job over ``items`` runs on: auto's planner, or the backend named."""
        if self.kind == "auto":
            return auto_target(self.backends, self.workers)
        # Processes and Dask start every worker now: their start-up overlaps the pickling of
        # the function and first items. Threads start as chunks arrive: starting 1,000 before
        # the first chunk kept 1,000 sleeps of 50 ms waiting 0.23 s.
        backend = self.backend(self.kind, items if self._one_call else None)
        return lambda job, total: backend

    def chunks(
        self,
        call: MapCall,
        *,
        listeners: Iterable[Listener] = (),
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[list[Any]]:
        """One map, a list of results at a time, with the options applied (``stop``: see
        ``execute``); a one-call runner stops its backends at the end."""
        listening, store = self._extras(call, listeners)
        finished = False
        try:
            yield from execute(
                self.target(call[2]), *call, listeners=listening, store=store, stop=stop
            )
            # Stopped (a closed Executor.map, bench's budget) is not finished: the journal
            # says so, and a one-call runner stops what still runs.
            finished = stop is None or not stop()
        finally:
            self._end(store, finished)

    async def achunks(
        self, call: MapCall, *, listeners: Iterable[Listener] = ()
    ) -> AsyncIterator[list[Any]]:
        """``chunks`` for async callers: the engine waits on the running event loop."""
        from ._core._engine_async import execute_async

        listening, store = self._extras(call, listeners)
        finished = False
        try:
            async for results in execute_async(
                self.target(call[2]), *call, listeners=listening, store=store
            ):
                yield results
            finished = True
        finally:
            self._end(store, finished)

    @staticmethod
    def _extras(
        call: MapCall, listeners: Iterable[Listener]
    ) -> tuple[list[Listener], JournalFile | None]:
        """Who listens to the map (a progress bar too), and the journal it records into."""
        fn, mode, items, options = call
        journal = options.journal
        store = None if journal is None else journal.open(fn, mode, known_length(items))
        listening = list(listeners)
        if options.progress:
            from ._progress import ProgressBar

            listening.append(ProgressBar.for_function(fn))
        return listening, store

    def _end(self, store: JournalFile | None, finished: bool) -> None:
        try:
            if store is not None:
                store.close(finished=finished)
        finally:
            if self._one_call:
                # Done: stop the idle workers. Otherwise (an error, Ctrl-C, the consumer
                # stopped): drop the queued work and stop what runs where it can be stopped.
                self.backends.shutdown(cancel=not finished)

    def shutdown(self, *, cancel: bool) -> None:
        self.backends.shutdown(cancel=cancel)


def auto_target(backends: Backends, workers: int | None) -> Target:
    """Each job of ``backend="auto"`` gets a planner that opens what it needs in ``backends``."""
    from ._core._auto import AutoPlan

    def plan(job: Job, total: int | None) -> Plan:
        return AutoPlan(job, total, backends.open, workers=workers)

    return plan


def collect(chunks: Iterator[list[Any]]) -> list[Any]:
    results: list[Any] = []
    for chunk in chunks:
        results.extend(chunk)
    return results


def flatten(chunks: Iterator[list[Any]]) -> Iterator[Any]:
    # A generator, not itertools.chain: closing it (or dropping it) closes ``chunks``, which
    # cancels the work still outstanding.
    try:
        for chunk in chunks:
            yield from chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
