"""The asyncio backend: coroutine functions run as tasks on an event loop, ``workers`` at once.

With no loop given, the backend runs a private loop in a thread of its own, so it works from
plain code and from inside a running loop (a Jupyter cell) alike. ``amap``/``aimap`` pass the
caller's running loop instead, so coroutines run where the caller's resources (sessions,
connections) live.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Callable
from typing import Any

from .._core._protocol import Capabilities
from .._core._task import Chunk, failed_outcome
from .._core._task_async import run_chunk_async
from .._errors import PoolClosedError, add_note, broken_pool
from . import _output

__all__ = ["AsyncioBackend"]


class AsyncioBackend:
    name = "asyncio"
    capabilities = Capabilities(synchronous=False, pickles=False, chunk_target=0.005)

    def __init__(
        self,
        *,
        workers: int,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        eager: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        del eager
        self._workers = workers
        self._tasks: set[asyncio.Task[None]] = set()
        self._task_of: dict[Chunk, asyncio.Task[None]] = {}  # touched on the loop only
        self._closed = False
        self._init_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=loop.run_forever, name="manyhands-asyncio", daemon=True
            )
            self._thread.start()
        self._loop = loop
        # Created on the loop (a semaphore belongs to the loop that first uses it).
        self._slots: asyncio.Semaphore | None = None
        self._initializer = initializer
        self._initargs = initargs
        self._initialized: asyncio.Future[None] | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, chunk: Chunk) -> None:
        if self._closed:
            raise PoolClosedError("cannot submit work: this asyncio backend has been shut down")
        if self._in_loop_thread():
            self._start(chunk)
        else:
            self._loop.call_soon_threadsafe(self._start, chunk)

    def _in_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _start(self, chunk: Chunk) -> None:
        task = self._loop.create_task(self._run(chunk))
        self._tasks.add(task)
        self._task_of[chunk] = task
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._task_of.pop(chunk, None))

    def stop(self, chunk: Chunk) -> None:
        """Cancel the task running ``chunk`` (it ran past its deadline)."""
        if self._in_loop_thread():
            self._cancel(chunk)
        else:
            self._loop.call_soon_threadsafe(self._cancel, chunk)

    def _cancel(self, chunk: Chunk) -> None:
        task = self._task_of.pop(chunk, None)
        if task is not None:
            task.cancel()

    async def _run(self, chunk: Chunk) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._workers)
        async with self._slots:
            await self._initialize()
            if not chunk.claim():
                return
            job = chunk.job
            if self._init_error is not None:
                outcome = failed_outcome(self._init_error, worker="asyncio")
            else:
                # Each chunk is a task of its own, with its own context: the records and lines
                # its items make are its own.
                results: list[Any] = []
                lines = _output.lines_for(job.output)
                with _output.Running(chunk.start, results, "asyncio", lines) as running:
                    outcome = await run_chunk_async(
                        job.fn,
                        job.mode,
                        chunk.items,
                        stop_on_error=job.stop_on_error,
                        worker="asyncio",
                        results=results,
                    )
                running.finish(outcome, len(chunk.items))
        chunk.complete(outcome)

    async def _initialize(self) -> None:
        """Run the initializer once, on the loop, before the first chunk (every chunk waits)."""
        if self._initializer is None:
            return
        if self._initialized is None:
            self._initialized = self._loop.create_future()
            try:
                value = self._initializer(*self._initargs)
                if inspect.isawaitable(value):
                    await value
            except BaseException as exc:
                add_note(exc, "manyhands: raised by the initializer (asyncio backend)")
                self._init_error = broken_pool(
                    "asyncio", exc, "the event loop", f"{type(exc).__name__}: {exc}"
                )
            self._initialized.set_result(None)
        else:
            await self._initialized

    def shutdown(self, *, cancel: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is None:
            # The caller's loop: this runs on it, so it cannot wait. Cancelled tasks end when
            # the loop next runs; after a normal end no task is left.
            if cancel:
                for task in list(self._tasks):
                    task.cancel()
            return
        finished = asyncio.run_coroutine_threadsafe(self._drain(cancel), self._loop)
        finished.result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        with contextlib.suppress(RuntimeError):
            self._loop.close()

    async def _drain(self, cancel: bool) -> None:
        tasks = list(self._tasks)
        if cancel:
            for task in tasks:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Let the loop finish async generators and executors it started for the user.
        await self._loop.shutdown_asyncgens()
