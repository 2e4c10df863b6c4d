"""Task records shared by the engine and every backend, and ``run_chunk``, which runs them.

A *job* is one call of the user's function over many items (one ``map``) or one ``submit``.
The engine cuts a job's items into *chunks* of consecutive items and hands them to a backend;
the backend runs each chunk with ``run_chunk`` (in the caller's thread, a worker thread, or a
worker process) and reports a ``ChunkOutcome`` back through ``Chunk.complete``.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from types import FunctionType

# Plain slotted classes rather than dataclasses, and typing only for type checkers: every
# worker process imports this module, and dataclasses + typing would add ~15 ms to its start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, Literal, TypeAlias

    #: How a chunk's items are passed to the function: ``fn(item)``, ``fn(*item)``, or, for
    #: ``submit``, ``fn(*args, **kwargs)`` with each item an ``(args, kwargs)`` pair.
    Mode: TypeAlias = Literal["map", "star", "call"]

__all__ = [
    "Chunk",
    "ChunkOutcome",
    "ItemError",
    "Job",
    "failed_outcome",
    "is_coroutine_function",
    "item_error",
    "qualified_name",
    "run_chunk",
    "str_or_repr",
]

#: Whether a Python loop calls a Python function faster than ``map`` does (``run_chunk``;
#: measured on 3.10 to 3.13).
_LOOP_CALLS_FASTER = sys.version_info >= (3, 12)

_job_keys = itertools.count(1)


class Job:
    """What every chunk of one call shares: the function, how to call it, when to stop.

    ``stop_on_error``: stop running a chunk at its first failed item (``errors="raise"``),
    since the rest of the chunk would be thrown away. ``key`` names the function in this
    process: unique, or shared by jobs of the same function.
    """

    __slots__ = (
        "__weakref__",
        "fn",
        "key",
        "levels",
        "mode",
        "output",
        "stop_on_error",
        "timed",
        "timeout",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        mode: Mode,
        *,
        stop_on_error: bool = True,
        timed: bool = False,
        timeout: float | None = None,
        key: int | None = None,
        output: str = "forward",
    ) -> None:
        self.fn = fn
        self.mode = mode
        #: What becomes of what the items write (``output=``: ``backends._output``).
        self.output = output
        #: The caller's logging levels at the job's start, taken by a backend whose workers
        #: are elsewhere when it first sees the job (``backends._worker_logs.levels``).
        self.levels: Any = None
        self.stop_on_error = stop_on_error
        #: Measure each item's duration (for ``Failure.duration``), not only each chunk's.
        self.timed = timed
        #: Seconds an item may run (None: unbounded); backends then queue no second chunk
        #: behind a running one, so that a chunk's start is when it is handed over.
        self.timeout = timeout
        #: Jobs of one function may share a key (``Pool.submit``): a worker process then
        #: unpickles the function once for all of them.
        self.key = next(_job_keys) if key is None else key


class ItemError:
    """One failed item of a chunk: where it stands in the chunk, what kind, the exception.

    ``kind`` is ``"error"`` (the function raised, or its result could not travel),
    ``"timeout"`` or ``"crash"`` (the worker process died). ``exception`` is None only when
    the worker's exception could not be sent back; ``type_name``, ``message`` and
    ``traceback`` always describe it. ``remote`` is True when the exception was raised in
    another process: its traceback then lives only in the ``traceback`` text.
    """

    __slots__ = (
        "duration",
        "exception",
        "kind",
        "message",
        "offset",
        "output",
        "remote",
        "traceback",
        "type_name",
    )

    def __init__(
        self,
        offset: int,
        kind: str,
        exception: BaseException | None,
        type_name: str = "",
        message: str = "",
        traceback: str = "",
        remote: bool = False,
        duration: float | None = None,
        output: str = "",
    ) -> None:
        self.offset = offset
        self.duration = duration
        #: The last lines the item wrote before it failed (``Failure.output``).
        self.output = output
        self.kind = kind
        self.exception = exception
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        self.remote = remote

    def __repr__(self) -> str:
        return f"ItemError({self.offset}, {self.kind!r}, {self.type_name}: {self.message})"


class ChunkOutcome:
    """What running a chunk produced.

    ``results`` holds one entry for each item that ran, in order; a failed item's entry is
    None and its ``ItemError`` says so. When the chunk stopped at its first error, ``results``
    is shorter than the chunk. ``busy`` is the wall time spent running the chunk, ``cpu`` the
    CPU time of the thread that ran it, ``nbytes`` the pickled size of its items where a
    backend pickles them (else 0). ``outputs``: what each item wrote, by offset, when the
    job keeps it (``output="capture"``), else None.
    """

    __slots__ = ("busy", "cpu", "errors", "nbytes", "outputs", "results", "worker")

    def __init__(
        self,
        results: list[Any],
        errors: list[ItemError],
        busy: float,
        cpu: float,
        worker: str,
        nbytes: int = 0,
    ) -> None:
        self.results = results
        self.errors = errors
        self.busy = busy
        self.cpu = cpu
        self.worker = worker
        self.nbytes = nbytes
        self.outputs: dict[int, str] | None = None

    @property
    def ran(self) -> int:
        """How many items ran, failed ones included."""
        if self.errors:
            return max(len(self.results), self.errors[-1].offset + 1)
        return len(self.results)


class Chunk:
    """A run of consecutive items of one job, as the engine hands it to a backend.

    A backend calls ``complete`` exactly once with the outcome, from any thread, unless
    ``claim()`` returned False (the chunk was cancelled before it started).
    """

    __slots__ = (
        "_report",
        "cancelled",
        "expected",
        "finished",
        "items",
        "job",
        "on_cancel",
        "on_claim",
        "seq",
        "start",
        "started_at",
        "thread",
        "thread_cpu",
    )

    def __init__(
        self,
        job: Job,
        seq: int,
        start: int,
        items: list[Any],
        report: Callable[[Chunk, ChunkOutcome], None],
        *,
        expected: float | None = None,
        on_claim: Callable[[], bool] | None = None,
        on_cancel: Callable[[], object] | None = None,
    ) -> None:
        self.job = job
        self.seq = seq
        self.start = start
        self.items = items
        self._report = report
        #: Seconds the chunk is expected to take, from measurements so far (None: unknown).
        self.expected = expected
        self.on_claim = on_claim
        self.on_cancel = on_cancel
        self.cancelled = False
        #: ``time.monotonic()`` when a backend claimed it to run (None: not yet).
        self.started_at: float | None = None
        #: The thread that claimed it, and that thread's CPU clock then: a planner reads a
        #: running chunk's CPU use from them (meaningful where the claiming thread runs it).
        self.thread: int | None = None
        self.thread_cpu = 0.0
        #: Its outcome is on its way to the engine (set by the thread that ran it).
        self.finished = False

    def cancel(self) -> None:
        """Mark the chunk as not wanted any more; a backend that drops it calls this."""
        self.cancelled = True
        if self.on_cancel is not None:
            self.on_cancel()

    def reserve(self) -> None:
        """Called by a backend that has a worker for the chunk before it is handed over: a
        ``submit()``ed call's Future is running from now on, so cancelling can no longer
        stop it (a thread pool whose threads were about to take their calls had them all
        cancelled by ``shutdown(cancel_futures=True)``). Once, before ``claim``."""
        on_claim, self.on_claim = self.on_claim, None
        if on_claim is not None and not on_claim():
            self.cancelled = True  # cancelled before it was submitted

    def claim(self) -> bool:
        """Called by a backend just before it runs the chunk; False means skip it."""
        if self.cancelled:
            return False
        # Once: a chunk sent again (its worker died before it ran) is claimed again.
        on_claim, self.on_claim = self.on_claim, None
        if on_claim is not None and not on_claim():
            return False
        self.started_at = time.monotonic()
        self.thread = threading.get_ident()
        self.thread_cpu = time.thread_time()
        return True

    def complete(self, outcome: ChunkOutcome) -> None:
        """Hand the outcome to whoever waits for this chunk (the engine or a Future)."""
        self.finished = True
        self._report(self, outcome)


def run_chunk(
    fn: Callable[..., Any],
    mode: Mode,
    items: Sequence[Any],
    *,
    stop_on_error: bool,
    catch: type[BaseException],
    worker: str,
    timed: bool = False,
    results: list[Any] | None = None,
) -> ChunkOutcome:
    """Run ``fn`` over ``items``: the only place where the user's function is called.

    ``catch`` is ``Exception`` in the caller's thread, where Ctrl-C and ``sys.exit`` must
    propagate as in a plain loop, and ``BaseException`` in workers, where nothing may escape
    unreported (a lost report is a hang). ``timed`` measures each failed item's duration.
    ``results``: an empty list to fill, one result per item as it is made, so that its length
    is the running item's offset (a worker's log records say which item made them).
    """
    if results is None:
        results = []
    errors: list[ItemError] = []
    append = results.append
    started = time.perf_counter()
    cpu_started = time.thread_time()
    # One loop per mode keeps the per-item cost to a call and an append; the timed loop
    # (failures are being kept or retried) also reads the clock around each call.
    if timed:
        for item in items:
            mark = time.perf_counter()
            try:
                if mode == "map":
                    append(fn(item))
                elif mode == "star":
                    append(fn(*item))
                else:
                    append(fn(*item[0], **item[1]))
            except catch as exc:
                error = item_error(len(results), exc)
                error.duration = time.perf_counter() - mark
                errors.append(error)
                if stop_on_error:
                    break
                append(None)
    elif mode == "map" and _LOOP_CALLS_FASTER and type(fn) is FunctionType:
        # A Python function from Python code: 3.12 and later call it from a loop without a
        # C frame of their own, which ``map`` cannot (an append loop here is 3-6% faster than
        # extend over map on 200,000 x ``x*x`` on 3.12 and 3.13, and 5-7% slower on 3.11,
        # in 30 interleaved runs each). One iterator across failures: the loop goes on with
        # the item after the one that raised.
        rest = iter(items)
        while True:
            try:
                for item in rest:
                    append(fn(item))
                break
            except catch as exc:
                errors.append(item_error(len(results), exc))
                if stop_on_error:
                    break
                append(None)
    elif mode == "map" or mode == "star":
        # ``list.extend`` over ``map`` runs the calls in C: for a built-in function (and on
        # 3.10) faster than a loop; when a call raises, extend has kept every result before
        # it, so the failing item is at ``len(results)`` and the rest of the chunk goes on
        # after it.
        mapper = map if mode == "map" else itertools.starmap
        total = len(items)
        while True:
            done = len(results)
            try:
                results.extend(mapper(fn, items[done:] if done else items))
                break
            except catch as exc:
                errors.append(item_error(len(results), exc))
                if stop_on_error or len(results) + 1 >= total:
                    if not stop_on_error:
                        append(None)
                    break
                append(None)
    else:
        for args, kwargs in items:
            try:
                append(fn(*args, **kwargs))
            except catch as exc:
                errors.append(item_error(len(results), exc))
                if stop_on_error:
                    break
                append(None)
    return ChunkOutcome(
        results=results,
        errors=errors,
        busy=time.perf_counter() - started,
        cpu=time.thread_time() - cpu_started,
        worker=worker,
    )


def failed_outcome(exc: BaseException, *, worker: str) -> ChunkOutcome:
    """The outcome of a chunk that could not run at all: its first item carries ``exc``."""
    return ChunkOutcome(results=[], errors=[item_error(0, exc)], busy=0.0, cpu=0.0, worker=worker)


def item_error(offset: int, exc: BaseException) -> ItemError:
    """The ``ItemError`` for ``exc`` raised by the item at ``offset`` of its chunk."""
    # Drop run_chunk's own frame: the traceback should start in the user's function.
    tb = exc.__traceback__
    if tb is not None and tb.tb_next is not None:
        exc.__traceback__ = tb.tb_next
    return ItemError(
        offset=offset,
        kind="error",
        exception=exc,
        type_name=qualified_name(type(exc)),
        message=str_or_repr(exc),
    )


def qualified_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def str_or_repr(exc: BaseException) -> str:
    """``str(exc)``, falling back to its repr (or a placeholder) when ``__str__`` fails."""
    try:
        return str(exc)
    except Exception:
        try:
            return repr(exc)
        except Exception:
            return f"<{type(exc).__qualname__}>"


_FUNCTION = type(str_or_repr)
#: ``inspect.CO_COROUTINE``: the flag of an ``async def`` function's code.
_CO_COROUTINE = 0x80


def is_coroutine_function(fn: object) -> bool:
    """``inspect.iscoroutinefunction(fn)``, without importing ``inspect`` (17 ms here) for
    the usual case: a plain function, read from its code flags, or a builtin."""
    if type(fn) is _FUNCTION and not hasattr(fn, "_is_coroutine_marker"):  # 3.12's marker
        return bool(fn.__code__.co_flags & _CO_COROUTINE)
    if type(fn) is type(len):
        return False
    import inspect

    return inspect.iscoroutinefunction(fn)
