"""map / imap / starmap: open a backend for one call, run the engine, close the backend."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar, overload

from ._core._decision import Decision
from ._core._engine import known_length
from ._core._failure import Retry
from ._options import (
    RunOptions,
    check_backend,
    check_fn,
    check_items,
    check_positive_int,
    check_where,
    default_workers,
)
from ._pool import _flatten, arun_chunks, collect, run_chunks
from .backends import create

if TYPE_CHECKING:
    import asyncio

    from ._core._protocol import Backend
    from ._core._task import Mode

__all__ = ["aimap", "amap", "explain", "imap", "istarmap", "map", "starmap"]

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
    journal: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    journal_mismatch: str = "raise",
    address: str | None = None,
    client: Any = None,
) -> list[R]:
    """``[fn(item) for item in items]``, in parallel; results in input order.

    ``backend``: ``"auto"`` (the default: measures the first item and chooses), ``"serial"``,
    ``"thread"``, ``"process"``, ``"asyncio"`` or ``"dask"``: on the Dask cluster at
    ``address="tcp://host:8786"``, or through ``client=`` (a ``distributed.Client``), or else on
    a local cluster started for the call (``pip install 'manyhands[dask]'``). ``workers``: how
    many at once (default: the CPUs this process may use for processes, a few more for
    threads, adapted for auto's threads; the cluster's threads for dask).
    ``ordered=False``: completion order. ``chunksize``: items that travel together (default:
    measured). ``progress=True``: a progress bar.

    Failures: ``errors="raise"`` raises the first item that fails for good, as its own
    exception with a note naming the item, after stopping the rest; ``errors="return"`` puts
    a ``manyhands.Failure`` in its place. ``timeout``: seconds an item may run before it is
    stopped. ``retries``: more tries for a failed item (an int, or ``manyhands.Retry``).
    ``memory_floor``: bytes of available memory under which no new item starts.

    ``journal="run.db"``: record every finished item in that SQLite file; the same call again
    skips what it holds and returns the stored results in their places (failures too, unless
    ``retry_failed=True``). A journal of another function or other items is refused unless
    ``journal_mismatch="rerun"``. Results are pickled: a journal is trusted data.
    """
    call = _check(
        fn,
        items,
        backend=backend,
        workers=workers,
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
        address=address,
        client=client,
    )
    return collect(_one_call(call, "map"))


@overload
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
    journal: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    journal_mismatch: str = "raise",
    address: str | None = None,
    client: Any = None,
    indexed: Literal[False] = False,
) -> Iterator[R]: ...


@overload
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
    journal: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    journal_mismatch: str = "raise",
    address: str | None = None,
    client: Any = None,
    indexed: Literal[True],
) -> Iterator[tuple[int, R]]: ...


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
    journal: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    journal_mismatch: str = "raise",
    address: str | None = None,
    client: Any = None,
    indexed: bool = False,
) -> Iterator[R] | Iterator[tuple[int, R]]:
    """Lazily yield ``fn(item)`` for each item, with the options of ``map``.

    Items are pulled only as room frees in a bounded window, so an endless generator works
    and memory stays flat. Closing or dropping the iterator cancels the pending work and
    stops the workers. ``indexed=True`` yields ``(index, result)`` pairs: with
    ``ordered=False``, the index says which item a result belongs to.
    """
    call = _check(
        fn,
        items,
        backend=backend,
        workers=workers,
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
        address=address,
        client=client,
        indexed=indexed,
    )
    return _flatten(_one_call(call, "map"))


@overload
def istarmap(
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
    journal: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    journal_mismatch: str = "raise",
    address: str | None = None,
    client: Any = None,
    indexed: Literal[False] = False,
) -> Iterator[R]: ...


@overload
def istarmap(
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
    journal: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    journal_mismatch: str = "raise",
    address: str | None = None,
    client: Any = None,
    indexed: Literal[True],
) -> Iterator[tuple[int, R]]: ...


def istarmap(
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
    journal: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    journal_mismatch: str = "raise",
    address: str | None = None,
    client: Any = None,
    indexed: bool = False,
) -> Iterator[R] | Iterator[tuple[int, R]]:
    """Lazily yield ``fn(*args)`` for each tuple of arguments: ``starmap``, as ``imap`` is lazy."""
    call = _check(
        fn,
        items,
        backend=backend,
        workers=workers,
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
        address=address,
        client=client,
        indexed=indexed,
    )
    return _flatten(_one_call(call, "star"))


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
    journal: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    journal_mismatch: str = "raise",
    address: str | None = None,
    client: Any = None,
) -> list[R]:
    """``[fn(*args) for args in items]``, in parallel, with the options of ``map``."""
    call = _check(
        fn,
        items,
        backend=backend,
        workers=workers,
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
        address=address,
        client=client,
    )
    return collect(_one_call(call, "star"))


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
    journal: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    journal_mismatch: str = "raise",
    address: str | None = None,
    client: Any = None,
) -> list[Any]:
    """``await manyhands.amap(fn, items)``: ``map`` for async callers; never blocks the loop.

    An ``async def`` function runs on the caller's own event loop (so it may use the caller's
    sessions and connections), ``workers`` coroutines at a time; a plain function runs on
    threads or processes as with ``map``.
    """
    call = _check(
        fn,
        items,
        backend=backend,
        workers=workers,
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
        address=address,
        client=client,
    )
    results: list[Any] = []
    async for chunk in _one_call_async(call, "map"):
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
    journal: str | os.PathLike[str] | None = None,
    retry_failed: bool = False,
    journal_mismatch: str = "raise",
    address: str | None = None,
    client: Any = None,
) -> AsyncIterator[Any]:
    """``async for result in manyhands.aimap(fn, items)``: lazy ``amap``, as ``imap`` is lazy."""
    call = _check(
        fn,
        items,
        backend=backend,
        workers=workers,
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
        address=address,
        client=client,
    )
    return _aflatten(_one_call_async(call, "map"))


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
    from ._core._decision import decide
    from ._system import available_cpus
    from .backends.auto import evidence_from_probe, measured

    call = _check(
        fn,
        items,
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
    options = call.options
    if call.kind != "auto":
        chosen = _count(call.items, call.workers or default_workers(call.kind))
        reason = f"backend={call.kind!r} was given"
        return Decision(call.kind, chosen, options.chunksize or 1, (reason,))
    total = known_length(call.items)
    if inspect.iscoroutinefunction(call.fn):
        evidence = measured(call.fn, wall=0.0, cpu=0.0, items=total, coroutine=True)
    else:
        try:
            first = next(iter(call.items))
        except StopIteration:
            return Decision("serial", 1, 1, ("there are no items",))
        evidence, _ = evidence_from_probe(call.fn, first, "map", total, available_cpus())
    stoppable = options.policy.timeout is not None
    decision = decide(evidence, workers=call.workers, stoppable=stoppable)
    if options.chunksize is not None:
        decision = dataclasses.replace(decision, chunksize=options.chunksize)
    return decision


class _Call(NamedTuple):
    """One call's arguments, checked."""

    fn: Callable[..., Any]
    items: Iterable[Any]
    kind: str
    workers: int | None
    options: RunOptions
    #: Where a Dask backend runs: ``address=`` or ``client=`` (empty: a local cluster).
    where: dict[str, Any]


def _check(
    fn: object,
    items: object,
    *,
    backend: object,
    workers: object,
    address: object = None,
    client: object = None,
    **options: object,
) -> _Call:
    """Check every argument now, in the caller's frame, before any work starts."""
    kind = check_backend(backend)
    return _Call(
        check_fn(fn),
        check_items(items),
        kind,
        check_positive_int("workers", workers, allow_none=True),
        RunOptions.checked(backend=kind, **options),
        check_where(kind, address, client),
    )


def _one_call(call: _Call, mode: Mode) -> Iterator[list[Any]]:
    """Run one call on a backend of its own (started when first iterated), then stop it."""
    backend = _open_backend(call)
    finished = False
    try:
        yield from run_chunks(backend, call.fn, call.items, mode, call.options)
        finished = True
    finally:
        # Done: stop the idle workers. Otherwise (an error, Ctrl-C, the consumer stopped):
        # drop the queued work and stop the running work where it can be stopped.
        backend.shutdown(cancel=not finished)


async def _one_call_async(call: _Call, mode: Mode) -> AsyncIterator[list[Any]]:
    import asyncio  # here: synchronous callers never pay for importing it

    backend = _open_backend(call, loop=asyncio.get_running_loop())
    finished = False
    try:
        async for results in arun_chunks(backend, call.fn, call.items, mode, call.options):
            yield results
        finished = True
    finally:
        backend.shutdown(cancel=not finished)


def _open_backend(call: _Call, *, loop: asyncio.AbstractEventLoop | None = None) -> Backend:
    """Start the backend for one call; with ``loop``, coroutines run on that (the caller's)."""
    kind = call.kind
    coroutine = kind == "auto" and inspect.iscoroutinefunction(call.fn)
    if loop is not None and (kind == "asyncio" or coroutine):
        from .backends.aio import AsyncioBackend

        count = _count(call.items, call.workers or default_workers("asyncio"))
        return AsyncioBackend(workers=count, loop=loop)
    if kind == "auto":
        return create("auto", workers=call.workers, initializer=None, initargs=(), eager=False)
    if kind == "dask":  # without workers=, as many as the cluster has
        return create(
            "dask", workers=call.workers, initializer=None, initargs=(), eager=True, **call.where
        )
    # Eager: the workers' start-up overlaps the pickling of the function and first items.
    count = _count(call.items, call.workers or default_workers(kind))
    return create(kind, workers=count, initializer=None, initargs=(), eager=True)


def _count(items: Iterable[Any], workers: int) -> int:
    total = known_length(items)
    return workers if total is None else max(1, min(workers, total))  # none idle


async def _aflatten(chunks: AsyncIterator[list[Any]]) -> AsyncIterator[Any]:
    try:
        async for chunk in chunks:
            for result in chunk:
                yield result
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
