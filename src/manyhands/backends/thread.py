"""The thread backend: chunks run on a set of worker threads in this process.

Threads share memory, so nothing is pickled; they overlap waiting (I/O, sleeps, C code that
releases the GIL) but not pure-Python computation on a GIL build. Threads are started on
demand, up to ``workers``, and stay until shutdown.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from .._core._protocol import Capabilities
from .._core._task import Chunk, failed_outcome, run_chunk
from .._errors import PoolClosedError, add_note

__all__ = ["ThreadBackend"]

_STOP = None


class ThreadBackend:
    name = "thread"
    capabilities = Capabilities(synchronous=False, pickles=False, chunk_target=0.005)

    def __init__(
        self,
        *,
        workers: int,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        eager: bool = False,
    ) -> None:
        self._max_workers = workers
        self._initializer = initializer
        self._initargs = initargs
        self._queue: queue.SimpleQueue[Chunk | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Counts threads waiting for work: a new thread is started only when none is idle.
        self._idle = threading.Semaphore(0)
        self._closed = False
        if eager:
            with self._lock:
                while len(self._threads) < self._max_workers:
                    self._start_thread()

    @property
    def workers(self) -> int:
        return self._max_workers

    def submit(self, chunk: Chunk) -> None:
        with self._lock:
            if self._closed:
                raise PoolClosedError("cannot submit work: this thread pool has been shut down")
            self._queue.put(chunk)
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                self._start_thread()

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._work,
            name=f"manyhands-thread-{len(self._threads) + 1}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        name = threading.current_thread().name
        init_error: BaseException | None = None
        if self._initializer is not None:
            try:
                self._initializer(*self._initargs)
            except BaseException as exc:
                add_note(exc, f"manyhands: raised by the initializer in {name}")
                init_error = exc
        while True:
            chunk = self._queue.get()
            if chunk is _STOP:
                return
            if not chunk.claim():
                self._idle.release()
                continue
            job = chunk.job
            if init_error is not None:
                # Every chunk this thread takes fails with the initializer's error: the
                # caller sees it raised at once instead of items silently going elsewhere.
                outcome = failed_outcome(init_error, worker=name)
            else:
                outcome = run_chunk(
                    job.fn,
                    job.mode,
                    chunk.items,
                    stop_on_error=job.stop_on_error,
                    catch=BaseException,
                    worker=name,
                )
            chunk.complete(outcome)
            self._idle.release()

    def shutdown(self, *, cancel: bool) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel:
            _drain_cancelled(self._queue)
        for _ in threads:
            self._queue.put(_STOP)
        current = threading.current_thread()
        for thread in threads:
            if thread is not current:
                thread.join()


def _drain_cancelled(work: queue.SimpleQueue[Chunk | None]) -> None:
    while True:
        try:
            chunk = work.get_nowait()
        except queue.Empty:
            return
        if chunk is not None:
            chunk.cancel()
