"""map / imap / starmap: open a backend for one call, run the engine, close the backend."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

from ._core._decision import Decision
from ._core._engine import known_length
from ._core._records import NamedTuple, overload
from ._options import (
    RunOptions,
    check_backend,
    check_fn,
    check_items,
    check_positive_int,
    check_where,
    default_workers,
)
from ._run import Backends, Target, arun_chunks, auto_target, collect, flatten, run_chunks

TYPE_CHECKING = False  # typing stays off a first call's path: see _core/_records.py
if TYPE_CHECKING:
    from typing import Any, Literal, TypeVar

    from ._core._failure import Retry
    from ._core._task import Mode

    T = TypeVar("T")
    R = TypeVar("R")

__all__ = ["aimap", "amap", "explain", "imap", "istarmap", "map", "starmap"]


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
    return flatten(_one_call(call, "map"))


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
    return flatten(_one_call(call, "star"))


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

    Runs auto's planner, as ``map`` would, until its first decision: the first item on a
    thread, measured (wall and CPU time, what a hand-off costs here), and for CPU-heavy work
    a short run on two threads (whether the GIL is held). The items it ran are consumed from
    an iterator and their results dropped. The record's ``reasons`` say why in sentences;
    ``evidence`` holds the numbers, this machine's measured figures among them.
    """
    from ._core._auto import AutoPlan
    from ._core._engine import decide_only

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
    backends = Backends()
    try:
        job = options.job(call.fn, "map")
        plan = AutoPlan(job, known_length(call.items), backends.open, workers=call.workers)
        decision = decide_only(
            plan, job, call.items, chunksize=options.chunksize, policy=options.policy
        )
    finally:
        backends.shutdown(cancel=True)
    if decision is None:
        return Decision("serial", 1, 1, ("there are no items",))
    if options.chunksize is not None:
        decision = decision._replace(chunksize=options.chunksize)
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
    """Run one call on backends of its own (started when first iterated), then stop them."""
    backends = Backends(where=call.where)
    finished = False
    try:
        yield from run_chunks(_target(call, backends), call.fn, call.items, mode, call.options)
        finished = True
    finally:
        # Done: stop the idle workers. Otherwise (an error, Ctrl-C, the consumer stopped):
        # drop the queued work and stop the running work where it can be stopped.
        backends.shutdown(cancel=not finished)


async def _one_call_async(call: _Call, mode: Mode) -> AsyncIterator[list[Any]]:
    import asyncio  # here: synchronous callers never pay for importing it

    # Coroutines run on the caller's own loop, so they can use its sessions and connections.
    backends = Backends(where=call.where, loop=asyncio.get_running_loop())
    finished = False
    try:
        target = _target(call, backends)
        async for results in arun_chunks(target, call.fn, call.items, mode, call.options):
            yield results
        finished = True
    finally:
        backends.shutdown(cancel=not finished)


def _target(call: _Call, backends: Backends) -> Target:
    """What one call's job runs on: auto's planner, or the backend named, sized to the input."""
    kind = call.kind
    if kind == "auto":
        return auto_target(backends, call.workers)
    if kind == "dask":  # without workers=, as many as the cluster has
        workers = call.workers
    else:
        workers = _count(call.items, call.workers or default_workers(kind))
    # Processes and Dask start every worker now: their start-up overlaps the pickling of the
    # function and first items. Threads start as chunks arrive: starting 1,000 before the
    # first chunk kept 1,000 sleeps of 50 ms waiting 0.23 s.
    backend = backends.open(kind, workers)
    return lambda job, total: backend


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
