"""map / imap / starmap: open a backend for one call, run the engine, close the backend."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ._core._decision import Decision
from ._core._engine import known_length
from ._core._failure import Retry
from ._options import (
    RunOptions,
    check_backend,
    check_fn,
    check_items,
    check_positive_int,
    default_workers,
)
from ._pool import _flatten, collect, run_chunks
from ._progress import ProgressBar
from .backends import bind, create

if TYPE_CHECKING:
    import asyncio

    from ._core._protocol import Backend
    from ._core._task import Mode

__all__ = ["aimap", "amap", "explain", "imap", "map", "starmap"]

T = TypeVar("T")
R = TypeVar("R")


def map(
    fn: Callable[[T], R],
    items: Iterable[T],
    /,
    *,
    backend: str = "auto",
    workers: int | None = None,
    ordered: bool = True,
    chunksize: int | None = None,
    progress: bool = False,
    errors: str = "raise",
    timeout: float | None = None,
    retries: int | Retry = 0,
    memory_floor: int | None = None,
) -> list[R]:
    """``[fn(item) for item in items]``, in parallel; results in input order.

    ``backend`` is ``"auto"`` (the default), ``"serial"``, ``"thread"`` or ``"process"``;
    ``workers`` defaults to the CPUs this process may use (processes) or a few more (threads).
    ``ordered=False`` returns results in completion order. ``chunksize`` fixes how many items
    travel together (default: measured). ``progress=True`` shows a progress bar.

    The first item that fails raises its own exception, with a note naming the item; the
    remaining work is cancelled and the workers stopped first.
    """
    return collect(
        _prepare(
            fn,
            items,
            "map",
            backend=backend,
            workers=workers,
            ordered=ordered,
            chunksize=chunksize,
            progress=progress,
            errors=errors,
            timeout=timeout,
            retries=retries,
            memory_floor=memory_floor,
        )
    )


def imap(
    fn: Callable[[T], R],
    items: Iterable[T],
    /,
    *,
    backend: str = "auto",
    workers: int | None = None,
    ordered: bool = True,
    chunksize: int | None = None,
    progress: bool = False,
    errors: str = "raise",
    timeout: float | None = None,
    retries: int | Retry = 0,
    memory_floor: int | None = None,
) -> Iterator[R]:
    """Lazily yield ``fn(item)`` for each item, with the options of ``map``.

    Items are pulled only as room frees in a bounded window, so an endless generator works
    and memory stays flat. Closing or dropping the iterator cancels the pending work and
    stops the workers.
    """
    return _flatten(
        _prepare(
            fn,
            items,
            "map",
            backend=backend,
            workers=workers,
            ordered=ordered,
            chunksize=chunksize,
            progress=progress,
            errors=errors,
            timeout=timeout,
            retries=retries,
            memory_floor=memory_floor,
        )
    )


def starmap(
    fn: Callable[..., R],
    items: Iterable[Iterable[Any]],
    /,
    *,
    backend: str = "auto",
    workers: int | None = None,
    ordered: bool = True,
    chunksize: int | None = None,
    progress: bool = False,
    errors: str = "raise",
    timeout: float | None = None,
    retries: int | Retry = 0,
    memory_floor: int | None = None,
) -> list[R]:
    """``[fn(*args) for args in items]``, in parallel, with the options of ``map``."""
    return collect(
        _prepare(
            fn,
            items,
            "star",
            backend=backend,
            workers=workers,
            ordered=ordered,
            chunksize=chunksize,
            progress=progress,
            errors=errors,
            timeout=timeout,
            retries=retries,
            memory_floor=memory_floor,
        )
    )


def _prepare(
    fn: object,
    items: object,
    mode: Mode,
    *,
    backend: object,
    workers: object,
    **options: object,
) -> Iterator[list[Any]]:
    """Check every argument now, in the caller's frame; start workers only when iterated."""
    function = check_fn(fn)
    inputs = check_items(items)
    kind = check_backend(backend)
    count = check_positive_int("workers", workers, allow_none=True)
    checked = RunOptions.checked(backend=kind, **options)
    return _one_call(function, inputs, mode, kind, count, checked)


def _one_call(
    fn: Callable[..., Any],
    items: Iterable[Any],
    mode: Mode,
    kind: str,
    workers: int | None,
    options: RunOptions,
) -> Iterator[list[Any]]:
    backend = _open_backend(fn, items, kind, workers)
    finished = False
    try:
        yield from run_chunks(backend, fn, items, mode, options)
        finished = True
    finally:
        # Done: stop the idle workers. Otherwise (an error, Ctrl-C, the consumer stopped):
        # drop the queued work and stop the running work where it can be stopped.
        backend.shutdown(cancel=not finished)


def _open_backend(
    fn: Callable[..., Any],
    items: Iterable[Any],
    kind: str,
    workers: int | None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Backend:
    """Start the backend for one call; with ``loop``, coroutines run on that (the caller's)."""
    coroutine = loop is not None and kind == "auto" and inspect.iscoroutinefunction(fn)
    if (kind == "asyncio" and loop is not None) or coroutine:
        from .backends.aio import AsyncioBackend

        return AsyncioBackend(workers=_count(items, workers or 1024), loop=loop)
    if kind == "auto":
        return create("auto", workers=workers, initializer=None, initargs=(), eager=False)
    # Eager: the workers' start-up overlaps the pickling of the function and first items.
    count = _count(items, workers or default_workers(kind))
    return create(kind, workers=count, initializer=None, initargs=(), eager=True)


def _count(items: Iterable[Any], workers: int) -> int:
    total = known_length(items)
    return workers if total is None else max(1, min(workers, total))  # none idle


async def amap(
    fn: Callable[[T], Any],
    items: Iterable[T],
    /,
    *,
    backend: str = "auto",
    workers: int | None = None,
    ordered: bool = True,
    chunksize: int | None = None,
    progress: bool = False,
    errors: str = "raise",
    timeout: float | None = None,
    retries: int | Retry = 0,
    memory_floor: int | None = None,
) -> list[Any]:
    """``await manyhands.amap(fn, items)``: ``map`` for async callers; never blocks the loop.

    An ``async def`` function runs on the caller's own event loop (so it may use the caller's
    sessions and connections), ``workers`` coroutines at a time; a plain function runs on
    threads or processes as with ``map``.
    """
    chunks = _prepare_async(
        fn,
        items,
        "map",
        backend=backend,
        workers=workers,
        ordered=ordered,
        chunksize=chunksize,
        progress=progress,
        errors=errors,
        timeout=timeout,
        retries=retries,
        memory_floor=memory_floor,
    )
    results: list[Any] = []
    async for chunk in chunks:
        results.extend(chunk)
    return results


def aimap(
    fn: Callable[[T], Any],
    items: Iterable[T],
    /,
    *,
    backend: str = "auto",
    workers: int | None = None,
    ordered: bool = True,
    chunksize: int | None = None,
    progress: bool = False,
    errors: str = "raise",
    timeout: float | None = None,
    retries: int | Retry = 0,
    memory_floor: int | None = None,
) -> AsyncIterator[Any]:
    """``async for result in manyhands.aimap(fn, items)``: lazy ``amap``, as ``imap`` is lazy."""
    return _aflatten(
        _prepare_async(
            fn,
            items,
            "map",
            backend=backend,
            workers=workers,
            ordered=ordered,
            chunksize=chunksize,
            progress=progress,
            errors=errors,
            timeout=timeout,
            retries=retries,
            memory_floor=memory_floor,
        )
    )


def _prepare_async(
    fn: object,
    items: object,
    mode: Mode,
    *,
    backend: object,
    workers: object,
    **options: object,
) -> AsyncIterator[list[Any]]:
    function = check_fn(fn)
    inputs = check_items(items)
    kind = check_backend(backend)
    count = check_positive_int("workers", workers, allow_none=True)
    checked = RunOptions.checked(backend=kind, **options)
    return _one_call_async(function, inputs, mode, kind, count, checked)


async def _one_call_async(
    fn: Callable[..., Any],
    items: Iterable[Any],
    mode: Mode,
    kind: str,
    workers: int | None,
    options: RunOptions,
) -> AsyncIterator[list[Any]]:
    import asyncio  # here: synchronous callers never pay for importing it

    from ._core._engine_async import execute_async

    backend = _open_backend(fn, items, kind, workers, loop=asyncio.get_running_loop())
    listeners = [ProgressBar.for_function(fn)] if options.progress else []
    job = options.job(fn, mode)
    target = bind(backend, job, known_length(items))
    finished = False
    try:
        async for results in execute_async(
            target,
            job,
            items,
            ordered=options.ordered,
            chunksize=options.chunksize,
            listeners=listeners,
            policy=options.policy,
        ):
            yield results
        finished = True
    finally:
        backend.shutdown(cancel=not finished)  # a router is shut down with its backend


async def _aflatten(chunks: AsyncIterator[list[Any]]) -> AsyncIterator[Any]:
    try:
        async for chunk in chunks:
            for result in chunk:
                yield result
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def explain(
    fn: Callable[..., Any],
    items: Iterable[Any],
    /,
    *,
    backend: str = "auto",
    workers: int | None = None,
    ordered: bool = True,
    chunksize: int | None = None,
    progress: bool = False,
    errors: str = "raise",
    timeout: float | None = None,
    retries: int | Retry = 0,
    memory_floor: int | None = None,
) -> Decision:
    """Where ``map(fn, items, ...)`` would run and why, as a ``Decision`` record.

    Runs the probe that ``backend="auto"`` runs: the first item, in this thread, measured
    (wall and CPU time, pickled sizes). That item is consumed from an iterator. The record's
    ``reasons`` say why in sentences; ``evidence`` holds the numbers.
    """
    from ._core._decision import Evidence, decide
    from ._system import available_cpus, gil_enabled
    from .backends.auto import evidence_from_probe

    function = check_fn(fn)
    inputs = check_items(items)
    kind = check_backend(backend)
    count = check_positive_int("workers", workers, allow_none=True)
    options = RunOptions.checked(
        ordered=ordered,
        chunksize=chunksize,
        progress=progress,
        errors=errors,
        timeout=timeout,
        retries=retries,
        memory_floor=memory_floor,
        backend=kind,
    )
    total = known_length(inputs)
    if kind != "auto":
        chosen = _count(inputs, count or default_workers(kind))
        return Decision(kind, chosen, options.chunksize or 1, (f"backend={kind!r} was given",))
    cpus = available_cpus()
    if inspect.iscoroutinefunction(function):
        evidence = Evidence(True, 0.0, 0.0, 0, 0, True, total, cpus, gil_enabled())
    else:
        iterator = iter(inputs)
        try:
            first = next(iterator)
        except StopIteration:
            return Decision("serial", 1, 1, ("there are no items",))
        evidence, _ = evidence_from_probe(function, first, "map", total, cpus)
    decision = decide(evidence, workers=count, stoppable=options.policy.timeout is not None)
    if options.chunksize is not None:
        decision = dataclasses.replace(decision, chunksize=options.chunksize)
    return decision
