"""What runs on a Dask worker: one Dask task per chunk.

A task's arguments are a few bytes objects, never a list of items, so Dask ships each chunk as
one message and never walks it (a list argument is walked item by item, which measured 7x
slower). The function travels pickled with every task (or as one scattered object when it is
large) and is unpickled once per worker process, cached under its job's token. The
initializer, if any, runs once per worker process, before that process's first chunk.

Dask workers import this module by reference: manyhands must be installed where they run.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

from ._worker import (
    FUNCTION_CACHE_SIZE,
    dumps,
    run_encoded,
    run_initializer,
    unpickle_function,
)

__all__ = ["executing_keys", "run"]

_lock = threading.Lock()
_functions: OrderedDict[str, Any] = OrderedDict()
#: token -> None (initializer ran) or the pickled error it raised; kept for the process's life.
_initialized: dict[str, bytes | None] = {}


def run(
    token: str,
    fn_payload: bytes,
    init: tuple[str, bytes] | None,
    mode: Any,
    stop_on_error: bool,
    timed: bool,
    body: bytes,
) -> tuple[str, bytes, bytes, str]:
    """Run one chunk; returns ``("done", results, meta, worker)`` or ``("init_failed", ...)``.

    Nothing the user's code raises escapes: a failed item is reported in ``meta``, an
    initializer that raised in ``("init_failed", b"", wire error, worker)``.
    """
    worker = _worker_name()
    if init is not None:
        failure = _initialize(*init)
        if failure is not None:
            return ("init_failed", b"", failure, worker)
    results, meta = run_encoded(
        lambda: _function(token, fn_payload),
        mode,
        body,
        stop_on_error=stop_on_error,
        timed=timed,
        worker=worker,
    )
    return ("done", results, meta, worker)


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
