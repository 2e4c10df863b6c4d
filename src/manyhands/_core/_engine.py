"""The engine: drives one job over a backend, lazily, in order, exactly once.

    caller's thread (the engine)                         backend (any threads or processes)
    ----------------------------                         ----------------------------------
    items ──islice(next_size)──> Chunk(seq, start) ──submit──> run_chunk(fn, items) in a worker
      ^                                                                 │
      │ pulls more only while fewer than `window`                       │ chunk.complete(outcome)
      │ chunks are outstanding (submitted, not yet yielded)             v
    yield results <── reorder by seq (ordered) <── inbox.get() <── SimpleQueue (thread-safe)
                      or as they come (unordered)

Everything that is policy lives here once, for every backend: the bounded window (memory stays
flat however long the input), chunk sizing (``Chunker``), ordering, the first-error rule, and
events for listeners. Backends report into a queue that only this thread reads, so the state
below needs no lock.

Errors (``errors="raise"``): once any item fails, no new chunk is submitted. With ordered
results, the results before the failing item are still delivered and the error is raised in its
place; since every earlier item runs to the end, the error raised is that of the lowest failing
index. Unordered, the first failure to arrive is raised at once. Either way the outstanding
chunks are cancelled before the exception leaves the generator.
"""

from __future__ import annotations

import itertools
import queue
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .._errors import RemoteError, RemoteTraceback, add_note, short_repr
from ._chunking import Chunker
from ._events import Listener
from ._protocol import Backend
from ._task import Chunk, ChunkOutcome, ItemError, Job

__all__ = ["Run", "execute", "item_exception", "known_length"]


def execute(
    backend: Backend,
    job: Job,
    items: Iterable[Any],
    *,
    ordered: bool,
    chunksize: int | None,
    listeners: Sequence[Listener] = (),
) -> Iterator[list[Any]]:
    """Run ``job`` over ``items`` on ``backend``; yield the results a chunk's list at a time.

    The driver for synchronous callers: it waits for outcomes on a thread-safe queue. The
    async driver (``_engine_async``) runs the same ``Run`` and waits on the event loop.
    """
    inbox: queue.SimpleQueue[tuple[Chunk, ChunkOutcome]] = queue.SimpleQueue()

    def report(chunk: Chunk, outcome: ChunkOutcome) -> None:
        inbox.put((chunk, outcome))

    run = Run(backend, job, items, ordered=ordered, chunksize=chunksize, listeners=listeners)
    try:
        while True:
            run.fill(report)
            if run.finished:
                return
            yield from run.accept(*inbox.get())
    finally:
        run.close()


class Run:
    """One job's way through the engine: which chunk to submit next, which results are due.

    It never waits: a driver calls ``fill`` to submit while there is room, then waits for an
    outcome its own way and hands it to ``accept``, which yields the result lists now due.
    """

    def __init__(
        self,
        backend: Backend,
        job: Job,
        items: Iterable[Any],
        *,
        ordered: bool,
        chunksize: int | None,
        listeners: Sequence[Listener] = (),
    ) -> None:
        self._backend = backend
        self._job = job
        self._ordered = ordered
        self._listeners = listeners
        self._total = known_length(items)
        self._iterator = iter(items)
        self._chunker = Chunker(
            workers=backend.workers, target=backend.capabilities.chunk_target, fixed=chunksize
        )
        self._outstanding: dict[int, Chunk] = {}
        self._arrived: dict[int, tuple[Chunk, ChunkOutcome]] = {}
        self._seqs = itertools.count()
        self._next_index = 0
        self._next_to_yield = 0
        self._exhausted = False
        self._failed = False
        self._closed = False
        self._decisions_told = 0
        for listener in listeners:
            listener.started(self._total)

    @property
    def finished(self) -> bool:
        """Nothing is outstanding and nothing more will be submitted."""
        return not self._outstanding

    def fill(self, report: Callable[[Chunk, ChunkOutcome], None]) -> None:
        """Submit chunks while fewer than the window are outstanding and input remains."""
        backend = self._backend
        # Read each time: a composite backend (auto) may change what it runs on mid-job.
        capabilities = backend.capabilities
        workers = backend.workers
        self._chunker.retarget(workers=workers, target=capabilities.chunk_target)
        # In the caller's thread a second outstanding chunk would only run early; elsewhere
        # three chunks per worker keep every worker fed while one result waits its turn.
        window = 1 if capabilities.synchronous else max(4, 3 * workers)
        while not self._exhausted and not self._failed and len(self._outstanding) < window:
            remaining = None if self._total is None else self._total - self._next_index
            size = self._chunker.next_size(remaining)
            batch = list(itertools.islice(self._iterator, size))
            if len(batch) < size:
                self._exhausted = True
            if not batch:
                return
            chunk = Chunk(
                self._job,
                next(self._seqs),
                self._next_index,
                batch,
                report,
                expected=self._chunker.expected_seconds(len(batch)),
            )
            self._next_index += len(batch)
            self._outstanding[chunk.seq] = chunk
            backend.submit(chunk)

    def accept(self, chunk: Chunk, outcome: ChunkOutcome) -> Iterator[list[Any]]:
        """Take one outcome; yield the result lists now due, in order when ordered."""
        decisions = getattr(self._backend, "decisions", ())  # a router's (auto) choices
        for decision in decisions[self._decisions_told :]:
            for listener in self._listeners:
                listener.decided(decision)
        self._decisions_told = len(decisions)
        self._chunker.observe(outcome.ran, outcome.busy)
        if outcome.nbytes:
            self._chunker.observe_bytes(len(chunk.items), outcome.nbytes)
        for listener in self._listeners:
            listener.advanced(outcome)
        if outcome.errors and self._job.stop_on_error:
            self._failed = True
        if not self._ordered:
            del self._outstanding[chunk.seq]
            yield from _deliver(chunk, outcome, self._job)
            return
        self._arrived[chunk.seq] = (chunk, outcome)
        while self._next_to_yield in self._arrived:
            chunk, outcome = self._arrived.pop(self._next_to_yield)
            del self._outstanding[self._next_to_yield]
            self._next_to_yield += 1
            yield from _deliver(chunk, outcome, self._job)

    def close(self) -> None:
        """Cancel what is still outstanding and tell the listeners; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for pending in self._outstanding.values():
            pending.cancelled = True
        for listener in self._listeners:
            listener.finished()


def _deliver(chunk: Chunk, outcome: ChunkOutcome, job: Job) -> Iterator[list[Any]]:
    """Yield the chunk's results; raise the first failure in its place when errors raise."""
    if outcome.errors and job.stop_on_error:
        error = outcome.errors[0]
        if error.offset:
            yield outcome.results[: error.offset]
        raise item_exception(error, chunk.start + error.offset, chunk.items[error.offset])
    yield outcome.results


def item_exception(error: ItemError, index: int | None, item: Any) -> BaseException:
    """The exception to raise for a failed item: the user's own, with its evidence attached.

    ``index`` is None for a ``submit()``ed call, which has no place in an input.
    """
    exc = error.exception
    if exc is None:
        exc = RemoteError(
            f"{error.type_name}: {error.message} (raised in a worker process; the exception "
            "object could not be pickled back, so it is shown here by type name, message and "
            "traceback: make the exception class picklable to receive it as itself)",
            type_name=error.type_name,
        )
    if error.remote and error.traceback:
        exc.__cause__ = RemoteTraceback(error.traceback)
    if index is not None:
        add_note(exc, f"manyhands: raised for item {index}: {short_repr(item)}")
    return exc


def known_length(items: Iterable[Any]) -> int | None:
    """``len(items)`` for sized inputs (lists, ranges...), None for iterators and generators."""
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None
