"""The thread backend: chunks run on a set of worker threads in this process.

Threads share memory, so nothing is pickled; they overlap waiting (I/O, sleeps, C code that
releases the GIL) but not pure-Python computation on a GIL build. Threads are started on
demand, up to ``workers``, and stay until shutdown.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from .._core import _log
from .._core._protocol import Capabilities
from .._core._task import Chunk, failed_outcome, run_chunk
from .._errors import PoolClosedError, add_note, broken_pool
from .._system import Empty, SimpleQueue
from . import _output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ThreadBackend"]

_STOP = None
#: Seconds threads get to finish their current call when the work is cancelled.
_CANCEL_GRACE = 0.25


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
        thread_name_prefix: str = "",
    ) -> None:
        """``thread_name_prefix``: threads are named ``{prefix}_0``, ``{prefix}_1``... as
        ``ThreadPoolExecutor`` names its own; without it ``manyhands-thread-1``..."""
        self._max_workers = workers
        self._prefix = thread_name_prefix
        self._initializer = initializer
        self._initargs = initargs
        self._queue: SimpleQueue[Chunk | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Not len(_threads): abandoned threads leave it.
        self._names = itertools.count(0 if thread_name_prefix else 1)
        # Counts threads waiting for work: a new thread is started only when none is idle.
        # A thread counts itself only when it finds the queue empty, not after each chunk: a
        # thread that goes straight on to a queued chunk is not idle, and counting it so kept
        # 1,000 waiting items on 300 threads when the window allowed 1,000.
        self._idle = threading.Semaphore(0)
        # Threads between two chunks: their outcome handed over, not back at the queue yet,
        # neither idle nor running. A chunk submitted then goes to one of them (the engine
        # answers an outcome with the next chunk at once): starting a thread for each grew
        # 2,000 HTTP requests kept 256 in flight to 800 threads, whose starts took the one
        # CPU the requests needed. Counted in a pool: a thread back at the queue takes one
        # back, whichever, so that a count never outlives the threads it stands for.
        self._between = 0
        self._closed = False
        # Threads beyond the first are started by the thread started before them, not by the
        # caller: starting one costs 0.2-0.3 ms here, and a caller that started 500 at once
        # could not take their results meanwhile. ``_wanted`` counts the threads still to
        # start; ``_spawning`` is True while the chain runs (shutdown waits for its link).
        self._wanted = 0
        self._spawning = False
        self._spawned = threading.Condition(self._lock)
        # A thread cannot be killed: one running a chunk past its deadline is abandoned (its
        # result will be ignored; it exits when the call returns) and replaced.
        self._running: dict[Chunk, tuple[threading.Thread, _output.ItemLines | None]] = {}
        self._abandoned: set[threading.Thread] = set()
        self._warned_at = 0
        #: Whether this backend holds a limit on the process's BLAS and OpenMP threads.
        self._limited = False
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
            if self._idle.acquire(blocking=False):
                chunk.reserve()  # an idle thread takes it
                self._queue.put(chunk)
                return
            active = len(self._threads) - len(self._abandoned)
            # Only onto an empty queue: behind chunks waiting for a thread, this one would not
            # be the next taken, nor running (a Future must stay cancellable while it waits).
            if self._between > 0 and self._queue.empty():
                self._between -= 1
                chunk.reserve()  # a thread on its way back to the queue takes it
                self._queue.put(chunk)
                return
            if active + self._wanted >= self._max_workers:
                self._queue.put(chunk)  # it waits for a thread to finish
                return
            self._limit_locked(active + self._wanted + 1)
            chunk.reserve()  # a thread starts for it
            self._queue.put(chunk)
            if self._spawning:
                self._wanted += 1  # the thread being started starts it
                return
            self._spawning = True
            head = self._new_thread(link=True)
            try:
                head.start()
            except BaseException:
                self._threads.remove(head)
                self._spawning = False  # or shutdown would wait for a chain that never ran
                raise

    def _start_thread(self) -> None:
        self._limit_locked(len(self._threads) - len(self._abandoned) + 1)
        self._new_thread(link=False).start()

    def _limit_locked(self, threads: int) -> None:
        """``threads`` are about to run: from the second on, native libraries' threads
        compete with ours, so the process's BLAS and OpenMP get a limit (not before: numpy
        may load with any job, and a job's first item alone, auto's probe, needs none).
        Taken here, in the thread that hands work over, not in a thread of the chain that
        starts ours: OpenBLAS ignores a size set from any thread but the main one once the
        main thread has set one."""
        if threads >= 2 and not self._limited:
            from . import _limits  # not for a job's probe alone: 0.2 ms of a first call

            self._limited = _limits.hold_thread_limit(self._max_workers)

    def _new_thread(self, *, link: bool) -> threading.Thread:
        """A worker thread, counted among ours; the caller starts it (under the lock or
        after it: shutdown joins only once the chain that may be starting one is over).
        ``link``: it first starts the next wanted thread."""
        thread = threading.Thread(
            target=self._work,
            args=(link,),
            name=(
                f"{self._prefix}_{next(self._names)}"
                if self._prefix
                else f"manyhands-thread-{next(self._names)}"
            ),
            daemon=True,
        )
        self._threads.append(thread)
        return thread

    def _spawn_next(self) -> None:
        """The chain's next link: start the next wanted thread, or end the chain (also when
        the queue is empty: threads that finished their chunks took the chunks it was for)."""
        with self._lock:
            if self._wanted == 0 or self._closed or self._queue.empty():
                self._wanted = 0
                self._spawning = False
                self._spawned.notify_all()
                return
            self._wanted -= 1
            thread = self._new_thread(link=True)
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread": a limit of the system
            with self._lock:
                self._threads.remove(thread)
                self._wanted = 0
                self._spawning = False
                self._spawned.notify_all()
            _log.warning(
                "manyhands: could not start another worker thread (%s); going on with %d",
                exc,
                len(self._threads),
            )

    def _work(self, link: bool) -> None:
        if link:
            self._spawn_next()
        name = threading.current_thread().name
        init_error: BaseException | None = None
        if self._initializer is not None:
            try:
                self._initializer(*self._initargs)
            except BaseException as exc:
                add_note(exc, f"manyhands: raised by the initializer in {name}")
                init_error = broken_pool("thread", exc, name, f"{type(exc).__name__}: {exc}")
        between = False  # this thread counts among ``_between``
        while True:
            if between:
                between = False
                if self._between:  # else a submit took it: no lock to take
                    with self._lock:
                        if self._between:
                            self._between -= 1
            try:
                chunk = self._queue.get_nowait()
            except Empty:
                self._idle.release()
                chunk = self._queue.get()
            if chunk is _STOP:
                return
            if not chunk.claim():
                continue
            me = threading.current_thread()
            job = chunk.job
            results: list[Any] = []
            running = _output.Running(chunk.start, results, name, _output.lines_for(job.output))
            with self._lock:
                self._running[chunk] = (me, running.lines)
            if init_error is not None:
                # Every chunk this thread takes fails, as BrokenThreadPool with the
                # initializer's error as its cause: the caller sees it at once instead of
                # items silently going elsewhere.
                outcome = failed_outcome(init_error, worker=name)
            else:
                with running:  # run_chunk catches whatever the function raises
                    outcome = run_chunk(
                        job.fn,
                        job.mode,
                        chunk.items,
                        stop_on_error=job.stop_on_error,
                        catch=BaseException,
                        worker=name,
                        timed=job.timed,
                        results=results,
                    )
                running.finish(outcome, len(chunk.items))
            del results, running
            with self._lock:
                self._running.pop(chunk, None)
                abandoned = me in self._abandoned
                if abandoned:
                    self._abandoned.discard(me)
                    self._threads.remove(me)
                else:
                    between = True  # before the outcome: the engine answers it at once
                    self._between += 1
            if abandoned:
                return  # its chunk timed out long ago: nobody waits for this outcome
            chunk.complete(outcome)
            # Hold nothing of a finished call while waiting for the next: a long-lived Pool
            # would keep its function, arguments and result alive (one per thread).
            del chunk, job, outcome

    def stop(self, chunk: Chunk) -> str | None:
        """Abandon the thread running ``chunk`` and start another in its place; return what
        its item wrote so far."""
        with self._lock:
            held = self._running.pop(chunk, None)
            if held is None or self._closed:
                return None
            thread, lines = held
            self._abandoned.add(thread)
            self._start_thread()
            stuck = len(self._abandoned)
            if stuck >= max(4, self._max_workers) and stuck >= 2 * self._warned_at:
                self._warned_at = stuck
                _log.warning(
                    "manyhands: %d threads are still running items that timed out; a thread "
                    "cannot be killed, so each holds its memory until its call returns. For "
                    "calls that hang, use backend='process', whose workers can be killed",
                    stuck,
                )
        return None if lines is None else lines.output_of(lines.last_item)

    def shutdown(self, *, cancel: bool) -> None:
        with self._lock:
            self._closed = True
            while self._spawning:  # the chain's last link sees closed and ends it
                self._spawned.wait()
            threads = list(self._threads)
            abandoned = set(self._abandoned)
        if cancel:
            _drain_cancelled(self._queue)
        for _ in threads:
            self._queue.put(_STOP)
        current = threading.current_thread()
        # Cancelling (an error, Ctrl-C): threads get a moment to finish their calls; one
        # still running after that is left behind (a daemon: it cannot block the exit).
        deadline = time.monotonic() + _CANCEL_GRACE if cancel else None
        for thread in threads:
            if thread is current or thread in abandoned:
                continue
            if deadline is None:
                thread.join()
            else:
                thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            limited, self._limited = self._limited, False
        if limited:
            from . import _limits

            _limits.release_thread_limit()


def _drain_cancelled(work: SimpleQueue[Chunk | None]) -> None:
    while True:
        try:
            chunk = work.get_nowait()
        except Empty:
            return
        if chunk is not None:
            chunk.cancel()
