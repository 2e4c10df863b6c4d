"""``Executor.map`` as the standard library defines it, run by manyhands' engine.

    caller's thread                          the map's driver thread (the engine's)
    ---------------                          --------------------------------------
    Pool.map(...) ──starts──────────────────> Runner.chunks(...) ── chunks to the backends
      returns the iterator at once                │ each result list, in input order
    next(it) <── results.get(deadline) <──────────┘ put on ``results``; then the end,
      raises the item's exception at its          or the exception the run raised
      place, TimeoutError past the deadline
    it.close() / dropped ──stop──> the driver notices within STOP_POLL and cancels the rest

The work starts at the call, as the standard library's does (every call is submitted then),
and the timeout runs from the call. The input is read at the call too, as ``zip`` over the
iterables is consumed by the standard library's ``map``. ``buffersize`` (Python 3.14's
bound on results held) reads it lazily instead, one ``submit`` per item, as the standard
library does.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import TimeoutError as FuturesTimeout  # TimeoutError from 3.11 on
from typing import TYPE_CHECKING, Any

from ._errors import ArgumentTypeError, ArgumentValueError, short_repr

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["MapDriver", "buffered", "check_map_arguments", "zipped"]

#: (True, results) | (False, exception raised) | (None, None) at the end.
Message = tuple["bool | None", Any]


def check_map_arguments(
    timeout: object, chunksize: object, buffersize: object
) -> tuple[float | None, int | None, int | None]:
    """The checked ``timeout``, ``chunksize`` (None: measured) and ``buffersize``."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
        raise ArgumentTypeError(
            f"timeout must be seconds (a number) or None, got {short_repr(timeout)} "
            f"({type(timeout).__name__}); on Pool.map it bounds the whole call, from the call "
            "to the last result, as in concurrent.futures"
        )
    for name, value in (("chunksize", chunksize), ("buffersize", buffersize)):
        if value is None and name == "buffersize":
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ArgumentTypeError(
                f"{name} must be a whole number >= 1, got {short_repr(value)} "
                f"({type(value).__name__})"
            )
        if value < 1:
            raise ArgumentValueError(
                f"{name} must be >= 1, got {name}={value}"
                + (" (None: no bound)" if name == "buffersize" else "")
            )
    # 1 is the standard library's default: chunking changes no result, so manyhands measures.
    size = None if chunksize == 1 else chunksize
    return (None if timeout is None else float(timeout)), size, buffersize  # type: ignore[return-value]


def zipped(iterables: tuple[Iterable[Any], ...]) -> tuple[Iterator[Any], bool]:
    """The inputs of ``map(fn, *iterables)`` and whether they are argument tuples (star)."""
    for position, iterable in enumerate(iterables):
        try:
            iter(iterable)
        except TypeError:
            raise ArgumentTypeError(
                f"map's iterable number {position + 1} must be iterable (a list, range, "
                f"generator...), got {short_repr(iterable)} ({type(iterable).__name__})"
            ) from None
    if len(iterables) == 1:
        return iter(iterables[0]), False
    return zip(*iterables, strict=False), True  # the shortest ends it, as in Executor.map


class MapDriver:
    """One ``Pool.map`` call's engine run on a thread of its own; iterate ``results()``."""

    def __init__(
        self,
        run: Callable[[Callable[[], bool]], Iterator[list[Any]]],
        deadline: float | None,
        on_end: Callable[[MapDriver], None],
    ) -> None:
        self._run: Callable[[Callable[[], bool]], Iterator[list[Any]]] | None = run
        self._deadline = deadline
        self._on_end = on_end
        self._stopped = threading.Event()
        self._results: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._drive, name="manyhands-map", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Cancel what has not started (its results are no longer wanted)."""
        self._stopped.set()

    def _drive(self) -> None:
        run, self._run = self._run, None  # the function and items: held no longer than this
        assert run is not None
        chunks = run(self._stopped.is_set)
        del run
        try:
            for results in chunks:
                self._results.put((True, results))
                if self._stopped.is_set():
                    break
        except BaseException as exc:  # every failure reaches the caller's next()
            self._results.put((False, exc))
        else:
            self._results.put((None, None))
        finally:
            chunks.close()  # type: ignore[attr-defined]
            self._on_end(self)

    def results(self) -> Iterator[Any]:
        deadline = self._deadline
        take = self._results.get
        try:
            while True:
                if deadline is None:
                    ok, value = take()
                else:
                    try:
                        ok, value = take(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        raise FuturesTimeout() from None
                if ok is None or not ok:
                    self.thread.join()  # its last act: nothing of the call outlives it
                    if ok is None:
                        return
                    raise value
                yield from value
        finally:
            self._stopped.set()


def buffered(
    submit: Callable[..., Future[Any]],
    fn: Callable[..., Any],
    inputs: Iterator[Any],
    star: bool,
    buffersize: int,
    deadline: float | None,
) -> Iterator[Any]:
    """``map`` with at most ``buffersize`` calls submitted and not yet yielded, the input read
    one item ahead of what is yielded: the standard library's own scheme (Python 3.14)."""
    args = inputs if star else ((item,) for item in inputs)
    futures = deque(submit(fn, *each) for each in itertools.islice(args, buffersize))

    def results() -> Iterator[Any]:
        try:
            while futures:
                following = next(args, None)
                if following is not None:
                    futures.append(submit(fn, *following))
                future = futures.popleft()
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    yield future.result(wait)
                finally:
                    del future  # hold no finished call's result
        finally:
            for future in futures:
                future.cancel()

    return results()
