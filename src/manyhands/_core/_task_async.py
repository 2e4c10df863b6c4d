"""``run_chunk`` for coroutine functions: the same contract, awaited on an event loop."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._task import ChunkOutcome, ItemError, item_error

__all__ = ["run_chunk_async"]


async def run_chunk_async(
    fn: Callable[..., Any],
    mode: str,
    items: Sequence[Any],
    *,
    stop_on_error: bool,
    worker: str,
    results: list[Any] | None = None,
) -> ChunkOutcome:
    """Await ``fn`` over ``items`` one after another; a plain function's result is used as is.

    Cancellation of the task propagates (it is how a chunk is stopped); every other exception,
    however raised, fails its item alone. ``results``: the list to fill (as ``run_chunk``'s).
    """
    if results is None:
        results = []
    errors: list[ItemError] = []
    started = time.perf_counter()
    cpu_started = time.thread_time()
    for item in items:
        mark = time.perf_counter()
        try:
            if mode == "map":
                value = fn(item)
            elif mode == "star":
                value = fn(*item)
            else:
                args, kwargs = item
                value = fn(*args, **kwargs)
            if inspect.isawaitable(value):
                value = await value
            results.append(value)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            error = item_error(len(results), exc)
            error.duration = time.perf_counter() - mark
            errors.append(error)
            if stop_on_error:
                break
            results.append(None)
    # The loop's thread interleaves many chunks, so its CPU time is an upper bound here.
    return ChunkOutcome(
        results=results,
        errors=errors,
        busy=time.perf_counter() - started,
        cpu=time.thread_time() - cpu_started,
        worker=worker,
    )
