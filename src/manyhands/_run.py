"""What runs a map: the backends a call or a Pool has opened, and one map run on them.

Kept apart from ``Pool`` (a ``concurrent.futures.Executor``) so that a plain ``map`` does not
import ``concurrent.futures`` and, through it, ``logging``: a tiny first call pays for what it
uses only.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

from ._core._engine import execute, known_length
from ._core._events import Listener
from ._core._plan import Plan
from ._core._protocol import Backend
from ._core._task import Job
from ._errors import PoolClosedError
from ._options import RunOptions
from .backends import create

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any

    from ._core._task import Mode
    from ._journal import Journal

__all__ = [
    "Backends",
    "Target",
    "arun_chunks",
    "auto_target",
    "collect",
    "flatten",
    "run_chunks",
    "start_job",
]

#: What a job runs on: a backend, or (``backend="auto"``) the plan made for the job.
Target = Callable[[Job, "int | None"], "Backend | Plan"]


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
        where: dict[str, Any] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        on_open: Callable[[str], None] | None = None,
        settings: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """``where``: ``address=`` / ``client=`` of the Dask backend; ``settings``: more
        keywords for the backends of a kind (``{"process": {"max_tasks_per_child": 10}}``,
        from the drop-in executors)."""
        self._initializer = initializer
        self._initargs = initargs
        self._settings = {kind: dict(extra) for kind, extra in (settings or {}).items()}
        if where:
            self._settings.setdefault("dask", {}).update(where)
        self._loop = loop
        self._on_open = on_open
        self._lock = threading.Lock()
        self._opened: dict[tuple[str, int | None], Backend] = {}
        self._closed = False

    def open(self, kind: str, workers: int | None, *, eager: bool | None = None) -> Backend:
        """The backend ``kind`` with ``workers`` workers, started now if it is not open yet.

        ``eager``: start every worker now (default: for processes and Dask, whose start-up
        then overlaps the first items; threads start as work arrives).
        """
        with self._lock:
            if self._closed:
                raise PoolClosedError(
                    "this Pool has been shut down; create a new Pool, or do the work inside "
                    "its `with` block"
                )
            backend = self._opened.get((kind, workers))
            if backend is None:
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
                        **self._settings.get(kind, {}),
                    )
                self._opened[(kind, workers)] = backend
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


def auto_target(backends: Backends, workers: int | None) -> Target:
    """Each job of ``backend="auto"`` gets a planner that opens what it needs in ``backends``."""
    from ._core._auto import AutoPlan

    def plan(job: Job, total: int | None) -> Plan:
        return AutoPlan(job, total, backends.open, workers=workers)

    return plan


def run_chunks(
    target: Target,
    fn: Callable[..., Any],
    items: Iterable[Any],
    mode: Mode,
    options: RunOptions,
    *,
    listeners: Iterable[Listener] = (),
    stop: Callable[[], bool] | None = None,
) -> Iterator[list[Any]]:
    """One map on ``target``, a list of results at a time, with the options applied;
    ``stop``: see ``execute``."""
    job, where, listening, store = start_job(target, fn, items, mode, options, listeners)
    finished = False
    try:
        yield from execute(
            where, job, items, listeners=listening, store=store, stop=stop, **options.engine
        )
        finished = True
    finally:
        if store is not None:
            store.close(finished=finished)


async def arun_chunks(
    target: Target,
    fn: Callable[..., Any],
    items: Iterable[Any],
    mode: Mode,
    options: RunOptions,
) -> AsyncIterator[list[Any]]:
    """``run_chunks`` for async callers: the engine waits on the running event loop."""
    from ._core._engine_async import execute_async

    job, where, listening, store = start_job(target, fn, items, mode, options, ())
    finished = False
    try:
        async for results in execute_async(
            where, job, items, listeners=listening, store=store, **options.engine
        ):
            yield results
        finished = True
    finally:
        if store is not None:
            store.close(finished=finished)


def start_job(
    target: Target,
    fn: Callable[..., Any],
    items: Iterable[Any],
    mode: Mode,
    options: RunOptions,
    listeners: Iterable[Listener],
) -> tuple[Job, Backend | Plan, list[Listener], Journal | None]:
    """The job a map runs, what it runs on (auto: its own plan), who listens, and the
    journal it records into."""
    total = known_length(items)
    journal = None if options.journal is None else options.journal.open(fn, mode, total)
    listening = list(listeners)
    if options.progress:
        from ._progress import ProgressBar

        listening.append(ProgressBar.for_function(fn))
    job = options.job(fn, mode)
    return job, target(job, total), listening, journal


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
