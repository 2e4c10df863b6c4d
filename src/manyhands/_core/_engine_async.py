"""The engine's driver for async callers: the same ``Run``, waiting on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from ._engine import Settings, Where, started
from ._events import Listener
from ._store import Store
from ._task import Chunk, ChunkOutcome

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._task import Mode

__all__ = ["execute_async"]


async def execute_async(
    where: Where,
    fn: Callable[..., Any],
    mode: Mode,
    items: Iterable[Any],
    options: Settings,
    *,
    listeners: Sequence[Listener] = (),
    store: Store | None = None,
) -> AsyncIterator[list[Any]]:
    """``execute`` for a coroutine caller: never blocks the loop while waiting for outcomes."""
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    inbox: asyncio.Queue[tuple[Chunk, ChunkOutcome]] = asyncio.Queue()

    def report(chunk: Chunk, outcome: ChunkOutcome) -> None:
        if threading.get_ident() == loop_thread:
            inbox.put_nowait((chunk, outcome))
            return
        # A closed loop raises RuntimeError: the caller went away and wants no more results.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(inbox.put_nowait, (chunk, outcome))

    run = started(where, fn, mode, items, options, report, listeners=listeners, store=store)
    try:
        while True:
            if run.fill():
                for results in run.due():
                    yield results
                continue
            if run.finished:
                return
            try:
                chunk, outcome = await asyncio.wait_for(inbox.get(), run.next_timer())
            except asyncio.TimeoutError:  # an alias of TimeoutError from 3.11
                for results in run.fire():
                    yield results
                continue
            for results in run.accept(chunk, outcome):
                yield results
            if run.next_timer() == 0.0:  # overdue: see _drive
                for results in run.fire():
                    yield results
    finally:
        run.close()
