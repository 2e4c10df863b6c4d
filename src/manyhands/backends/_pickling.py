"""Pickling what a worker process needs: the function once per job, the items of each chunk.

Used by every backend whose workers are other processes (``process``, ``dask``). A failure is a
``SerializationError`` raised at once in the caller, naming the function or the item to blame.
"""

from __future__ import annotations

import pickle

from .._core._task import Chunk, ChunkOutcome, ItemError
from .._errors import SerializationError, callable_name, short_repr
from . import _shared, _worker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

__all__ = [
    "decode_outcome",
    "pickle_function",
    "pickle_items",
    "pickle_shared_function",
]


def pickle_function(obj: object, fn: object, *, what: str) -> bytes:
    """``obj`` (an initializer and its arguments) pickled as ``_shared.pickled`` does."""
    try:
        return _shared.pickled(obj)
    except Exception as exc:
        raise _unpicklable(fn, what, exc) from exc


def pickle_shared_function(
    fn: object, before_copy: Callable[[bytes], object] | None = None
) -> _shared.Payload:
    """``fn`` pickled for worker processes, its large buffers in shared memory (``_shared``);
    ``before_copy``: called before they are written (``_shared.dumps``)."""
    try:
        return _shared.dumps(fn, handles=True, before_copy=before_copy)
    except Exception as exc:
        raise _unpicklable(fn, "function", exc) from exc


def _unpicklable(fn: object, what: str, exc: Exception) -> SerializationError:
    return SerializationError(
        f"the {what} {callable_name(fn)} cannot be pickled to send it to worker processes: "
        f"{type(exc).__name__}: {exc}. It probably holds (or its closure or globals hold) "
        "a lock, an open file, a connection or a generator: create such objects inside the "
        "function or in initializer=, or use backend='thread'",
        what=what,
    )


def pickle_items(chunk: Chunk, *, share: bool = True) -> _shared.Payload:
    """The chunk's items pickled, the large buffers they hold in shared memory (not with
    ``share=False``: Dask's workers get no descriptors)."""
    try:
        return _shared.dumps(chunk.items, share=share)
    except Exception as exc:
        _blame_item(chunk, exc)


def _blame_item(chunk: Chunk, failure: Exception) -> NoReturn:
    """Raise a ``SerializationError`` that names the first item that cannot be pickled."""
    import cloudpickle

    for offset, item in enumerate(chunk.items):
        try:
            cloudpickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            index = chunk.start + offset
            raise SerializationError(
                f"item {index} ({short_repr(item)}) cannot be pickled to send it to a worker "
                f"process: {type(exc).__name__}: {exc}. Pass plain data (or objects that can "
                "be rebuilt in a worker), or use backend='thread'",
                what="item",
                index=index,
            ) from exc
    raise SerializationError(
        f"the items of a chunk cannot be pickled: {type(failure).__name__}: {failure}",
        what="item",
    ) from failure


def decode_outcome(
    chunk: Chunk,
    body: bytes | bytearray,
    meta: bytes | bytearray,
    worker: str,
    nbytes: int,
    shared: tuple[_shared.Spans, list[int]] = ((), []),
) -> ChunkOutcome:
    """The outcome of ``chunk`` from a worker's ``encode_outcome`` parts (results, meta);
    ``shared``: where the results' large buffers lie, and the descriptor of their file."""
    wire_errors, busy, cpu = pickle.loads(meta)
    errors = [_worker.read_error(wire) for wire in wire_errors]
    try:
        results = _shared.loads(body, *shared)
    except Exception as exc:
        results = [None] * len(chunk.items)
        errors = [_unpicklable_results(exc)]
    return ChunkOutcome(results, errors, busy, cpu, worker, nbytes)


def _unpicklable_results(exc: Exception) -> ItemError:
    problem = SerializationError(
        f"the results came back from the worker process but cannot be unpickled here: "
        f"{type(exc).__name__}: {exc}. Their classes must be importable in this process",
        what="result",
    )
    return ItemError(0, "error", problem, "SerializationError", str(problem))
