"""The thread backend on its own: how many threads it starts, and when; what shutdown leaves.

Chunks here block on a barrier, so "these ran at once" is a fact the test waits for, not a
timing it hopes for. The ``no_leaks`` fixture (conftest) checks that no thread is left.
"""

from __future__ import annotations

import queue
import threading
import time

from manyhands._core._task import Chunk, ChunkOutcome, Job
from manyhands.backends.thread import ThreadBackend


def _submit(backend: ThreadBackend, job: Job, count: int) -> queue.SimpleQueue[ChunkOutcome]:
    outcomes: queue.SimpleQueue[ChunkOutcome] = queue.SimpleQueue()
    for seq in range(count):
        chunk = Chunk(job, seq, seq, [seq], report=lambda _c, outcome: outcomes.put(outcome))
        backend.submit(chunk)
    return outcomes


def test_a_thread_that_went_on_to_a_queued_chunk_is_not_counted_idle() -> None:
    # Three threads run three blocking chunks while three more wait in the queue. A thread
    # used to count itself idle after every chunk it finished, so six "idle" threads were
    # counted where three are, and later chunks found "idle" threads that were busy instead
    # of starting new ones (1,000 waiting items ran on 300 threads). White-box: the count of
    # idle threads is the backend's semaphore.
    gate = threading.Event()
    backend = ThreadBackend(workers=3)
    try:
        blocking = _submit(backend, Job(lambda x: gate.wait(30) and x, "map"), 3)
        queued = _submit(backend, Job(lambda x: x, "map"), 3)  # at the cap: they wait
        gate.set()
        for outcomes in (blocking, queued):
            for _ in range(3):
                assert not outcomes.get(timeout=30).errors
        deadline = time.monotonic() + 30
        while backend._idle._value < 3 and time.monotonic() < deadline:
            time.sleep(0.001)  # each thread counts itself just after its last outcome
        assert backend._idle._value == 3
    finally:
        backend.shutdown(cancel=False)


def test_no_thread_starts_before_work_arrives() -> None:
    before = threading.active_count()
    backend = ThreadBackend(workers=50)
    try:
        assert threading.active_count() == before
    finally:
        backend.shutdown(cancel=False)


def test_shutdown_while_threads_are_still_being_started_leaves_none() -> None:
    # The caller starts the first thread, each new thread the next: shutdown must wait for
    # the start in progress, and the chain must stop there.
    release = threading.Event()
    backend = ThreadBackend(workers=200)
    outcomes = _submit(backend, Job(lambda x: release.wait(30) and x, "map"), 200)
    release.set()
    backend.shutdown(cancel=False)
    assert not any(t.name.startswith("manyhands-thread") for t in threading.enumerate())
    done = 0
    while True:
        try:
            outcomes.get_nowait()
        except queue.Empty:
            break
        done += 1
    assert done == 200  # shutdown(cancel=False) runs what was submitted


def test_the_chain_starts_no_thread_for_chunks_that_threads_already_took() -> None:
    # A thread that finishes its chunk takes the next queued one at once; the thread the
    # chain would start for that chunk would find nothing to do (a start and a join spent
    # for nothing: 0.1-0.3 ms each here). White-box: the second thread's link is held
    # until the first thread has run both queued chunks.
    first = threading.Event()
    link_held = threading.Event()
    gate = threading.Event()
    backend = ThreadBackend(workers=4)
    real_spawn_next = backend._spawn_next
    links = 0

    def held_spawn_next() -> None:
        nonlocal links
        links += 1
        if links == 2:  # the link of the second chain's head thread
            link_held.set()
            assert gate.wait(30)
        real_spawn_next()

    backend._spawn_next = held_spawn_next  # type: ignore[method-assign]
    try:
        running = _submit(backend, Job(lambda x: first.wait(30) and x, "map"), 1)
        queued = _submit(backend, Job(lambda x: x, "map"), 2)  # a new chain: held, one wanted
        assert link_held.wait(30)
        first.set()  # the first thread finishes and runs both queued chunks
        assert not running.get(timeout=30).errors
        for _ in range(2):
            assert not queued.get(timeout=30).errors
        gate.set()
        with backend._lock:
            while backend._spawning:
                assert backend._spawned.wait(30)
            assert len(backend._threads) == 2  # the two heads; no third for an empty queue
    finally:
        gate.set()
        backend.shutdown(cancel=False)


def test_a_chunk_submitted_as_a_thread_hands_over_its_outcome_starts_no_thread() -> None:
    # The engine answers each outcome with the next chunk at once, while the thread that
    # made it is on its way back to the queue: neither idle nor running. A thread started
    # for each such chunk grew 2,000 HTTP requests kept 256 in flight to 800 threads. Here
    # each chunk's outcome submits the next from the report itself, inside that gap: one
    # thread must run all ten.
    backend = ThreadBackend(workers=8)
    job = Job(lambda _x: threading.current_thread().name, "map")
    outcomes: queue.SimpleQueue[ChunkOutcome] = queue.SimpleQueue()

    def report(chunk: Chunk, outcome: ChunkOutcome) -> None:
        outcomes.put(outcome)
        if chunk.seq < 9:
            nxt = chunk.seq + 1
            backend.submit(Chunk(job, nxt, nxt, [nxt], report=report))

    try:
        backend.submit(Chunk(job, 0, 0, [0], report=report))
        names = {outcomes.get(timeout=30).results[0] for _ in range(10)}
        assert len(names) == 1, names
        with backend._lock:
            assert len(backend._threads) == 1
    finally:
        backend.shutdown(cancel=False)


def test_a_chunk_behind_waiting_ones_is_not_reserved_for_a_thread_between_chunks() -> None:
    # One thread, busy; two chunks wait for it. The chunk submitted as it hands over its
    # outcome goes behind them: it is not the next one taken, so it is not running yet
    # (reserved), and cancelling its Future must still work.
    gate = threading.Event()
    backend = ThreadBackend(workers=1)
    job = Job(lambda x: x, "map")
    reserved: list[int] = []
    outcomes: queue.SimpleQueue[ChunkOutcome] = queue.SimpleQueue()

    def watched(seq: int) -> Chunk:
        def on_claim() -> bool:
            reserved.append(seq)
            return True

        return Chunk(job, seq, seq, [seq], report=report, on_claim=on_claim)

    def report(chunk: Chunk, outcome: ChunkOutcome) -> None:
        outcomes.put(outcome)
        if chunk.seq == 0:
            backend.submit(watched(3))
            reserved.append(-1)  # what was reserved by the time submit returned

    try:
        backend.submit(Chunk(Job(lambda x: gate.wait(30) and x, "map"), 0, 0, [0], report=report))
        backend.submit(watched(1))
        backend.submit(watched(2))  # both wait: the one thread is busy
        gate.set()
        for _ in range(4):
            assert not outcomes.get(timeout=30).errors
        assert reserved.index(-1) < reserved.index(3)  # reserved only when taken
    finally:
        backend.shutdown(cancel=False)
