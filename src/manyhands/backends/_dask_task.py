"""What runs on a Dask worker: one Dask task per chunk.

A task's arguments are a few bytes objects, never a list of items, so Dask ships each chunk as
one message and never walks it (a list argument is walked item by item, which measured 7x
slower). The function travels pickled with every task (or as one scattered object when it is
large) and is unpickled once per worker process, cached under its job's token. The
initializer, if any, runs once per worker process, before that process's first chunk.

Dask workers import this module by reference: manyhands must be installed where they run.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from typing import Any

from . import _output, _worker_logs
from ._worker import (
    FUNCTION_CACHE_SIZE,
    dumps,
    run_encoded,
    run_initializer,
    unpickle_function,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._core._task import Chunk, ChunkOutcome

__all__ = ["executing_keys", "replay", "run"]

_lock = threading.Lock()
_functions: OrderedDict[str, Any] = OrderedDict()
#: token -> None (initializer ran) or the pickled error it raised; kept for the process's life.
_initialized: dict[str, bytes | None] = {}
#: The log records made on this thread while it runs a chunk (pickled, in order).
_records = threading.local()
_forwarder: _worker_logs.Forwarder | None = None


def run(
    token: str,
    fn_payload: bytes,
    init: tuple[str, bytes] | None,
    mode: Any,
    stop_on_error: bool,
    timed: bool,
    body: bytes,
    said_how: tuple[Any, str, int],
) -> tuple[str, bytes, bytes, str, bytes]:
    """Run one chunk; returns ``("done", results, meta, worker, said)`` or
    ``("init_failed", ...)``.

    Nothing the user's code raises escapes: a failed item is reported in ``meta``, an
    initializer that raised in ``("init_failed", b"", wire error, worker, said)``.
    ``said_how``: the caller's logging levels, the job's ``output=`` and the chunk's first
    index; ``said``: the chunk's log records and lines, pickled, for ``replay`` in the caller.
    """
    levels, output, first = said_how
    worker = _worker_name()
    records: list[bytes] = []
    _records.current = records
    _logs(worker).apply(levels)
    made: list[Any] = []
    # The lines come back as written (mode "record"); the caller's ItemLines takes them.
    lines = _output.ItemLines("record") if output != "inherit" else None
    try:
        with _output.Running(first, made, worker, lines):
            if init is not None:
                failure = _initialize(*init)
                if failure is not None:
                    return ("init_failed", b"", failure, worker, _said(records, lines))
            results, meta = run_encoded(
                lambda: _function(token, fn_payload),
                mode,
                body,
                stop_on_error=stop_on_error,
                timed=timed,
                worker=worker,
                results=made,
            )
    finally:
        _records.current = None
    return ("done", results.data, meta, worker, _said(records, lines))


def _logs(worker: str) -> _worker_logs.Forwarder:
    global _forwarder
    with _lock:
        if _forwarder is None:
            _forwarder = _worker_logs.Forwarder(_keep_record, worker, shared=True)
        return _forwarder


def _keep_record(payload: bytes) -> None:
    records = getattr(_records, "current", None)
    if records is not None:
        records.append(payload)


def _said(records: list[bytes], lines: _output.ItemLines | None) -> bytes:
    if lines is None:
        return dumps((records, []))
    lines.flush()  # a partial last line
    return dumps((records, lines.recorded))


def replay(said: bytes, chunk: Chunk, outcome: ChunkOutcome) -> None:
    """In the caller: a chunk's records to the caller's loggers, its lines where the job's
    ``output=`` sends them, its failures' last lines on their errors."""
    import pickle

    records, recorded = pickle.loads(said)
    for payload in records:
        # A filter or handler of the caller's that raises: the next record still goes.
        with contextlib.suppress(Exception):
            _worker_logs.replay(pickle.loads(payload)[1])
    lines = _output.ItemLines(chunk.job.output)
    for stream, text, item in recorded:
        lines.lines(stream, text, item)
    lines.finish(outcome, chunk.start, len(chunk.items))


def _function(token: str, payload: bytes) -> Any:
    with _lock:
        fn = _functions.get(token)
        if fn is not None:
            _functions.move_to_end(token)
            return fn
    fn = unpickle_function(payload)
    with _lock:
        _functions[token] = fn
        if len(_functions) > FUNCTION_CACHE_SIZE:
            _functions.popitem(last=False)
    return fn


def _initialize(token: str, payload: bytes) -> bytes | None:
    # Under the lock: a worker with several threads runs the initializer once, and its other
    # threads wait for it rather than run items before it.
    with _lock:
        if token not in _initialized:
            failure = run_initializer(payload)
            _initialized[token] = None if failure is None else dumps(failure)
        return _initialized[token]


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return f"dask {get_worker().address}"
    except (ImportError, ValueError):
        return f"dask pid {os.getpid()}"


def executing_keys(dask_worker: Any) -> list[str]:
    """The keys a worker's threads run now, cancelled ones included (via ``Client.run``)."""
    state = dask_worker.state
    return [str(task.key) for task in (*state.executing, *state.long_running)]
