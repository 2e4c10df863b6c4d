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
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .._errors import RemoteError, RemoteTraceback, add_note, short_repr
from ._chunking import Chunker
from ._events import Listener
from ._protocol import Backend
from ._task import Chunk, ChunkOutcome, ItemError, Job

__all__ = ["execute", "item_exception", "known_length"]


def execute(
    backend: Backend,
    job: Job,
    items: Iterable[Any],
    *,
    ordered: bool,
    chunksize: int | None,
    listeners: Sequence[Listener] = (),
) -> Iterator[list[Any]]:
    """Run ``job`` over ``items`` on ``backend``; yield the results a chunk's list at a time."""
    capabilities = backend.capabilities
    workers = backend.workers
    # In the caller's thread a second outstanding chunk would only run early; elsewhere three
    # chunks per worker keep every worker fed while one result waits for its turn in order.
    window = 1 if capabilities.synchronous else max(4, 3 * workers)
    total = known_length(items)
    iterator = iter(items)
    chunker = Chunker(workers=workers, target=capabilities.chunk_target, fixed=chunksize)
    inbox: queue.SimpleQueue[tuple[Chunk, ChunkOutcome]] = queue.SimpleQueue()

    def report(chunk: Chunk, outcome: ChunkOutcome) -> None:
        inbox.put((chunk, outcome))

    outstanding: dict[int, Chunk] = {}
    arrived: dict[int, tuple[Chunk, ChunkOutcome]] = {}
    seqs = itertools.count()
    next_index = 0
    next_to_yield = 0
    exhausted = False
    failed = False
    for listener in listeners:
        listener.started(total)
    try:
        while True:
            while not exhausted and not failed and len(outstanding) < window:
                remaining = None if total is None else total - next_index
                size = chunker.next_size(remaining)
                batch = list(itertools.islice(iterator, size))
                if len(batch) < size:
                    exhausted = True
                if not batch:
                    break
                chunk = Chunk(
                    job,
                    next(seqs),
                    next_index,
                    batch,
                    report,
                    expected=chunker.expected_seconds(len(batch)),
                )
                next_index += len(batch)
                outstanding[chunk.seq] = chunk
                backend.submit(chunk)
            if not outstanding:
                return
            chunk, outcome = inbox.get()
            chunker.observe(outcome.ran, outcome.busy)
            if outcome.nbytes:
                chunker.observe_bytes(len(chunk.items), outcome.nbytes)
            for listener in listeners:
                listener.advanced(outcome)
            if outcome.errors and job.stop_on_error:
                failed = True
            if not ordered:
                del outstanding[chunk.seq]
                yield from _deliver(chunk, outcome, job)
                continue
            arrived[chunk.seq] = (chunk, outcome)
            while next_to_yield in arrived:
                chunk, outcome = arrived.pop(next_to_yield)
                del outstanding[next_to_yield]
                next_to_yield += 1
                yield from _deliver(chunk, outcome, job)
    finally:
        for pending in outstanding.values():
            pending.cancelled = True
        for listener in listeners:
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
