"""map / imap / starmap / istarmap / amap / aimap / explain: one call, on workers of its own.

Each opens a ``Runner`` for the call (the same path a Pool's methods take), runs the engine,
and stops the runner's workers when the call ends. Their keyword options are declared once,
in ``_options.Keywords`` (with ``backend`` and ``workers``: ``CALL_KEYWORDS``), checked in
one place, ``RunOptions.checked``, and shown in each signature by ``takes_options``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping

from ._core._decision import Decision
from ._core._engine import known_length
from ._core._records import NamedTuple, overload
from ._options import (
    CALL_KEYWORDS,
    KEYWORDS,
    LAZY_NAMES,
    RunOptions,
    check_backend,
    check_fn,
    check_items,
    check_positive_int,
    check_runs_on,
    default_workers,
    takes_options,
)
from ._run import Runner, collect, flatten

TYPE_CHECKING = False  # typing stays off a first call's path: see _core/_records.py
if TYPE_CHECKING:
    from typing import Any, Literal, TypeVar

    from typing_extensions import Unpack

    from ._core._task import Mode
    from ._keywords import CallKeywords
    from ._options import Dask, Processes

    T = TypeVar("T")
    R = TypeVar("R")

__all__ = ["aimap", "amap", "explain", "imap", "istarmap", "map", "starmap"]


@takes_options(call=True)
def map(fn: Callable[[T], R], items: Iterable[T], /, **options: Unpack[CallKeywords]) -> list[R]:
    """``[fn(item) for item in items]``, in parallel; results in input order.

    ``backend``: ``"auto"`` (the default: measures the first item and chooses), ``"serial"``,
    ``"thread"``, ``"process"``, ``"asyncio"``, or ``"dask"``: a local Dask cluster started
    for the call, or ``manyhands.Dask(address="tcp://host:8786")`` / ``Dask(client=...)``
    (``pip install 'manyhands[dask]'``); ``manyhands.Processes(threads=32)``: processes
    that each run that many items at once on threads (waiting work that keeps a GIL busy).
    ``workers``: how many at once (default: the CPUs this process may use for processes, a
    few more for threads, adapted for auto's threads; the cluster's threads for dask; the
    processes for ``Processes``). ``ordered=False``: completion order. ``chunksize``:
    items that travel together (default: measured). ``progress=True``: a progress bar.

    Failures: ``errors="raise"`` raises the first item that fails for good, as its own
    exception with a note naming the item, after stopping the rest; ``errors="return"`` puts
    a ``manyhands.Failure`` in its place. ``timeout``: seconds an item may run before it is
    stopped. ``retries``: more tries for a failed item (an int, or ``manyhands.Retry``).
    ``memory_floor``: bytes of available memory under which no new item starts.

    What workers write (``print``, ``sys.stdout``/``sys.stderr``, and in worker processes the
    file descriptors 1 and 2) reaches your ``sys.stdout``/``sys.stderr`` whole lines at a time
    (``output="forward"``); ``output="tag"`` prefixes each line with its item's index and a
    tab; ``output="capture"`` keeps each item's output instead (in the journal, and on its
    Failure); ``output="inherit"`` leaves worker processes writing where they inherited. A
    failed item's last lines are its ``Failure.output``. Their ``logging`` records reach your
    loggers, with ``record.manyhands_item`` and ``record.manyhands_worker``.

    ``journal="run.db"``: record every finished item in that SQLite file; the same call again
    skips what it holds and returns the stored results in their places (failures too, unless
    ``journal=manyhands.Journal("run.db", retry_failed=True)``). A journal of another function
    or other items is refused unless ``Journal(..., mismatch="rerun")``. Results are pickled:
    a journal is trusted data.
    """
    return collect(_call("map()", fn, items, options).chunks("map"))


@overload
def imap(
    fn: Callable[[T], R],
    items: Iterable[T],
    /,
    *,
    indexed: Literal[False] = False,
    **options: Unpack[CallKeywords],
) -> Iterator[R]: ...


@overload
def imap(
    fn: Callable[[T], R],
    items: Iterable[T],
    /,
    *,
    indexed: Literal[True],
    **options: Unpack[CallKeywords],
) -> Iterator[tuple[int, R]]: ...


@takes_options(call=True, lazy=True)
def imap(
    fn: Callable[[T], R], items: Iterable[T], /, **options: Any
) -> Iterator[R] | Iterator[tuple[int, R]]:
    """Lazily yield ``fn(item)`` for each item, with the options of ``map``.

    Items are pulled only as room frees in a bounded window, so an endless generator works
    and memory stays flat. Closing or dropping the iterator cancels the pending work and
    stops the workers. ``indexed=True`` yields ``(index, result)`` pairs: with
    ``ordered=False``, the index says which item a result belongs to.
    """
    return flatten(_call("imap()", fn, items, options, lazy=True).chunks("map"))


@takes_options(call=True)
def starmap(
    fn: Callable[..., R], items: Iterable[Iterable[Any]], /, **options: Unpack[CallKeywords]
) -> list[R]:
    """``[fn(*args) for args in items]``, in parallel, with the options of ``map``."""
    return collect(_call("starmap()", fn, items, options).chunks("star"))


@overload
def istarmap(
    fn: Callable[..., R],
    items: Iterable[Iterable[Any]],
    /,
    *,
    indexed: Literal[False] = False,
    **options: Unpack[CallKeywords],
) -> Iterator[R]: ...


@overload
def istarmap(
    fn: Callable[..., R],
    items: Iterable[Iterable[Any]],
    /,
    *,
    indexed: Literal[True],
    **options: Unpack[CallKeywords],
) -> Iterator[tuple[int, R]]: ...


@takes_options(call=True, lazy=True)
def istarmap(
    fn: Callable[..., R], items: Iterable[Iterable[Any]], /, **options: Any
) -> Iterator[R] | Iterator[tuple[int, R]]:
    """Lazily yield ``fn(*args)`` for each tuple of arguments: ``starmap``, as ``imap`` is lazy."""
    return flatten(_call("istarmap()", fn, items, options, lazy=True).chunks("star"))


@takes_options(call=True)
async def amap(
    fn: Callable[[T], Any], items: Iterable[T], /, **options: Unpack[CallKeywords]
) -> list[Any]:
    """``await manyhands.amap(fn, items)``: ``map`` for async callers; never blocks the loop.

    An ``async def`` function runs on the caller's own event loop (so it may use the caller's
    sessions and connections), ``workers`` coroutines at a time; a plain function runs on
    threads or processes as with ``map``.
    """
    call = _call("amap()", fn, items, options)
    results: list[Any] = []
    async for chunk in call.achunks("map"):
        results.extend(chunk)
    return results


@takes_options(call=True)
def aimap(
    fn: Callable[[T], Any], items: Iterable[T], /, **options: Unpack[CallKeywords]
) -> AsyncIterator[Any]:
    """``async for result in manyhands.aimap(fn, items)``: lazy ``amap``, as ``imap`` is lazy."""
    call = _call("aimap()", fn, items, options)
    return aflatten(call.achunks("map"))


def explain(
    fn: Callable[..., Any],
    items: Iterable[Any],
    /,
    *,
    backend: str | Processes | Dask = "auto",
    workers: int | None = None,
    chunksize: int | None = None,
    timeout: float | None = None,
) -> Decision:
    """Where ``map(fn, items, ...)`` would run and why, as a ``Decision`` record.

    Runs auto's planner, as ``map`` would, until its first decision: the first item on a
    thread, measured (wall and CPU time, what a hand-off costs here), and for CPU-heavy work
    a short run on two threads (whether the GIL is held). The items it ran are consumed from
    an iterator and their results dropped. The record's ``reasons`` say why in sentences;
    ``evidence`` holds the numbers, this machine's measured figures among them. It takes
    what can change the decision: ``chunksize``, and ``timeout`` (a stoppable worker).
    """
    kind, _ = check_backend(backend)
    count = check_positive_int("workers", workers, allow_none=True)
    options = RunOptions.checked(
        {"chunksize": chunksize, "timeout": timeout}, entry="explain()", backend=kind
    )
    return decide(kind, count, check_fn(fn), check_items(items), options)


def decide(
    kind: str,
    workers: int | None,
    fn: Callable[..., Any],
    items: Iterable[Any],
    options: RunOptions,
) -> Decision:
    """``explain``'s decision, for a one-call function's or a Pool's backend and workers."""
    from ._core._engine import decide_only
    from ._run import Backends, auto_target

    if kind != "auto":
        total = known_length(items)
        chosen = workers or default_workers(kind)
        chosen = chosen if total is None else max(1, min(chosen, total))
        reasons: tuple[str, ...] = (f"backend={kind!r} was given",)
        if kind == "process":
            from ._core._decision import inner_threads_reason
            from ._system import available_cpus

            reasons += (inner_threads_reason(chosen, available_cpus()),)
        elif kind == "thread" and chosen > 1:
            from ._core._decision import thread_limit_reason
            from ._system import available_cpus, native_thread_limiter

            limited = native_thread_limiter()
            if limited is not None:
                reasons += (thread_limit_reason(chosen, available_cpus(), limited=limited),)
        return Decision(kind, chosen, options.chunksize or 1, reasons)
    backends = Backends()
    try:
        decision = decide_only(auto_target(backends, workers), fn, items, options)
    finally:
        backends.shutdown(cancel=True)
    if decision is None:
        return Decision("serial", 1, 1, ("there are no items",))
    if options.chunksize is not None:
        decision = decision._replace(chunksize=options.chunksize)
    return decision


class _Call(NamedTuple):
    """One call's arguments, checked, and the runner it opens."""

    fn: Callable[..., Any]
    items: Iterable[Any]
    options: RunOptions
    runner: Runner

    def chunks(self, mode: Mode) -> Iterator[list[Any]]:
        return self.runner.chunks((self.fn, mode, self.items, self.options))

    def achunks(self, mode: Mode) -> AsyncIterator[list[Any]]:
        return _achunks(self, mode)


async def _achunks(call: _Call, mode: Mode) -> AsyncIterator[list[Any]]:
    import asyncio  # here: synchronous callers never pay for importing it

    # Coroutines run on the caller's own loop, so they can use its sessions and connections.
    runner = call.runner.on_loop(asyncio.get_running_loop())
    async for results in runner.achunks((call.fn, mode, call.items, call.options)):
        yield results


def _call(
    entry: str,
    fn: object,
    items: object,
    given: Mapping[str, object],
    *,
    lazy: bool = False,
) -> _Call:
    """Check every argument now, in the caller's frame, before any work starts."""
    options = dict(given)
    kind, settings = check_backend(options.pop("backend", CALL_KEYWORDS["backend"]))
    workers = check_positive_int("workers", options.pop("workers", None), allow_none=True)
    # backend and workers are taken already: allowed here too, for the message's list
    # (and its "did you mean workers=?").
    allowed = (LAZY_NAMES if lazy else _NAMES) | frozenset(CALL_KEYWORDS)
    run = RunOptions.checked(options, entry=entry, backend=kind, allowed=allowed)
    call = check_fn(fn)
    check_runs_on(call, kind)
    return _Call(
        call,
        check_items(items),
        run,
        Runner(kind, workers=workers, settings={kind: settings}, one_call=True),
    )


_NAMES = frozenset(KEYWORDS)


async def aflatten(chunks: AsyncIterator[list[Any]]) -> AsyncIterator[Any]:
    try:
        async for chunk in chunks:
            for result in chunk:
                yield result
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
