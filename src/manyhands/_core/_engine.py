"""The engine: drives one job over a backend, lazily, in order, each item exactly once.

    caller's thread (the engine)                         backend (any threads or processes)
    ----------------------------                         ----------------------------------
    items ──islice(next_size)──> Slot + Chunk ──submit──> run_chunk(fn, items) in a worker
      ^                          (retries and single                    │
      │ pulls more only while     items of a crashed     chunk.complete(outcome)
      │ fewer than `window`       chunk: one-item chunks                │
      │ slots are undelivered     into the same slot)                   v
    yield results <── reorder slots by seq <── accept / fire <── inbox.get(timeout=next timer)
                      (or as they complete)       │
                                                  └ timers: retry delays, per-item deadlines

Everything that is policy lives here once, for every backend: the bounded window (memory stays
flat however long the input), chunk sizing (``Chunker``), ordering, errors, retries, deadlines,
crash isolation, and events for listeners. Backends report into a queue that only this thread
reads, so the state below needs no lock; timers are a heap the driver waits on, not a poll.

A *slot* holds one chunk's worth of results. Each item in it becomes final on its own: a
result, or, after its retries, a failure. A chunk whose worker process died is re-run one item
at a time, so the item that kills its worker is found and every other item completes.

Errors raise (``errors="raise"``): once an item fails for good, no new slot is started. In
order, the results before it are still delivered and its exception is raised in its place;
every earlier item runs to the end, so the error raised is that of the lowest failing index.
Unordered, the first final failure is raised at once. Either way what is outstanding is
cancelled before the exception leaves the generator. Errors returned (``errors="return"``):
the failure takes the item's place as a ``Failure`` record.

With a *store* (the journal), each pulled batch is first recalled from it: items it holds an
outcome for are settled at once and never run, and every item that becomes final is recorded.
Records are written before any result they cover is delivered, at most ``FLUSH_AFTER``
seconds after they are made, and when the run closes: a killed run loses no result its caller
has seen, and at most that much other finished work.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from .._errors import RemoteError, RemoteTraceback, TaskTimeout, add_note, short_repr
from .._system import Empty, SimpleQueue
from . import _log
from ._chunking import Chunker
from ._plan import Placement, Plan, as_plan
from ._protocol import Backend
from ._records import NamedTuple, Protocol
from ._task import Chunk, ChunkOutcome, ItemError, Job

TYPE_CHECKING = False
if TYPE_CHECKING:
    import random
    from typing import Any

    from ._decision import Decision
    from ._events import Listener
    from ._failure import Failure, Retry
    from ._store import Store
    from ._task import Mode

__all__ = [
    "DEFAULT_POLICY",
    "FLUSH_AFTER",
    "Policy",
    "Run",
    "Settings",
    "Where",
    "job_for",
    "started",
    "decide_only",
    "default_memory_floor",
    "execute",
    "item_exception",
    "known_length",
]

Report = Callable[[Chunk, ChunkOutcome], None]

#: Items the engine holds at most (in slots not yet delivered), plus one chunk: memory stays
#: flat however long the input, even where the window of chunks is wide (1,024 coroutines).
MAX_HELD_ITEMS = 65_536

#: Seconds a store's record may wait before it is written: the finished work a kill can cost.
FLUSH_AFTER = 0.05

#: Items pulled at once at most while every item pulled is recalled from the store.
MAX_RECALL_BATCH = 8192

#: Seconds a driver stopped from another thread may take to notice (``execute(stop=)``).
STOP_POLL = 0.05


class Policy(NamedTuple):
    """What happens to a failing item: raise or return it, retry it, bound its time."""

    errors: str = "raise"
    retry: Retry | None = None
    timeout: float | None = None
    #: Bytes of available memory below which no new slot starts (0: no guard; None: the
    #: default, 5% of memory at most 1 GiB, worked out when the guard first looks).
    memory_floor: int | None = 0
    #: What becomes of what the items write: ``"forward"``, ``"tag"``, ``"capture"`` or
    #: ``"inherit"`` (``backends._output``).
    output: str = "forward"

    @property
    def stop_on_error(self) -> bool:
        """A chunk may stop at its first failure only when that failure is final."""
        return self.errors == "raise" and self.retry is None


#: Raise the first failure, no retry, no deadline (a frozen record: safe to share).
DEFAULT_POLICY = Policy()


class Settings(Protocol):
    """What the engine reads of a map's options (``_options.RunOptions`` is such a record)."""

    @property
    def ordered(self) -> bool: ...

    @property
    def chunksize(self) -> int | None: ...

    @property
    def policy(self) -> Policy: ...

    @property
    def indexed(self) -> bool: ...


#: Where a job runs, given the job and its input's length: a backend, or auto's plan for it.
Where = Callable[[Job, "int | None"], "Backend | Plan"]


def job_for(fn: Callable[..., Any], mode: Mode, policy: Policy) -> Job:
    """The job a map of ``fn`` runs under ``policy``: the engine's own record of it."""
    timed = policy.errors == "return" or policy.retry is not None or policy.timeout is not None
    return Job(
        fn,
        mode,
        stop_on_error=policy.stop_on_error,
        timed=timed,
        timeout=policy.timeout,
        output=policy.output,
    )


def execute(
    where: Where,
    fn: Callable[..., Any],
    mode: Mode,
    items: Iterable[Any],
    options: Settings,
    *,
    listeners: Sequence[Listener] = (),
    store: Store | None = None,
    stop: Callable[[], bool] | None = None,
) -> Iterator[list[Any]]:
    """Run ``fn`` over ``items`` where ``where`` says (a backend, or the plan it makes for
    the job, ``backend="auto"``); yield the results a chunk's list at a time.

    The driver for synchronous callers: it waits on a thread-safe queue for the next outcome,
    no longer than until the next timer. The async driver (``_engine_async``) runs the same
    ``Run`` and waits on the event loop.

    ``stop``: asked at least every ``STOP_POLL`` seconds; once it says True the run ends as a
    closed one does (what is outstanding is cancelled). For a driver on a thread of its own,
    stopped from another (``Executor.map``'s iterator, closed by its consumer).
    """
    inbox: SimpleQueue[tuple[Chunk, ChunkOutcome]] = SimpleQueue()

    def report(chunk: Chunk, outcome: ChunkOutcome) -> None:
        inbox.put((chunk, outcome))

    run = started(where, fn, mode, items, options, report, listeners=listeners, store=store)
    try:
        if stop is None:
            yield from _drive(run, inbox)
        else:
            yield from _drive(run, inbox, stop, poll=STOP_POLL)
    finally:
        run.close()


def _drive(
    run: Run,
    inbox: SimpleQueue[tuple[Chunk, ChunkOutcome]],
    stop: Callable[[], bool] = lambda: False,
    *,
    poll: float | None = None,
) -> Iterator[list[Any]]:
    """The synchronous driver's loop: submit, wait for an outcome or the next timer, yield
    what is due; until the run is finished, or ``stop()`` says so (asked at least every
    ``poll`` seconds when given, else after each outcome)."""
    while not stop():
        if run.fill():
            yield from run.due()
            continue
        if run.finished:
            return
        wait = run.next_timer()
        if poll is not None:
            wait = poll if wait is None else min(wait, poll)
        try:
            chunk, outcome = inbox.get(timeout=wait)
        except Empty:
            yield from run.fire()
            continue
        yield from run.accept(chunk, outcome)
        if run.next_timer() == 0.0:
            # Overdue: outcomes that arrive back to back would keep every timer waiting
            # (auto's thread controller went 150 ms without a tick while 250 threads
            # streamed results, and an item's timeout would have waited as long).
            yield from run.fire()


def started(
    where: Where,
    fn: Callable[..., Any],
    mode: Mode,
    items: Iterable[Any],
    options: Settings,
    report: Report,
    *,
    listeners: Sequence[Listener] = (),
    store: Store | None = None,
) -> Run:
    """The ``Run`` of a map: its job built here, placed where ``where`` says (each driver's)."""
    job = job_for(fn, mode, options.policy)
    return Run(
        where(job, known_length(items)),
        job,
        items,
        report=report,
        ordered=options.ordered,
        chunksize=options.chunksize,
        listeners=listeners,
        policy=options.policy,
        store=store,
        indexed=options.indexed,
    )


def decide_only(
    where: Where, fn: Callable[..., Any], items: Iterable[Any], options: Settings
) -> Decision | None:
    """Run the map only until its plan's first decision (``explain``).

    The items run meanwhile are consumed and their results dropped; an item that fails
    raises its exception, as ``map`` would. None: the input was empty, or ``where`` is a
    backend, not a plan (it decides nothing).
    """
    inbox: SimpleQueue[tuple[Chunk, ChunkOutcome]] = SimpleQueue()
    run = started(
        where, fn, "map", items, options, lambda chunk, outcome: inbox.put((chunk, outcome))
    )
    decisions = run.decisions
    try:
        for _ in _drive(run, inbox, stop=lambda: bool(decisions)):
            pass  # results are dropped: only the decision is wanted
        return decisions[0] if decisions else None
    finally:
        run.close()


class _Slot:
    """The results of one chunk of consecutive items, filled in as each becomes final."""

    __slots__ = ("_results", "failure", "items", "open", "seq", "start")

    def __init__(self, seq: int, start: int, items: list[Any]) -> None:
        self.seq = seq
        self.start = start
        self.items = items
        # Made at the first item settled alone: a chunk done whole at its first try hands
        # over its own list, and a list of placeholders would cost a write per item.
        self._results: list[Any] | None = None
        self.open = len(items)  # items not final yet
        #: (offset, exception) of the first final failure when errors raise.
        self.failure: tuple[int, BaseException] | None = None

    @property
    def results(self) -> list[Any]:
        if self._results is None:
            self._results = [_OPEN] * len(self.items)
        return self._results

    @results.setter
    def results(self, results: list[Any]) -> None:
        self._results = results

    def settle(self, offset: int, value: Any) -> None:
        results = self.results
        if results[offset] is _OPEN:
            self.open -= 1
        results[offset] = value

    def fail(self, offset: int, exception: BaseException) -> None:
        if self.failure is None or offset < self.failure[0]:
            self.failure = (offset, exception)

    @property
    def ready(self) -> bool:
        if self.open == 0:
            return True
        if self.failure is None:
            return False
        # Raising: due once everything before the failure is final.
        return _OPEN not in self.results[: self.failure[0]]


class _Open:
    def __repr__(self) -> str:
        return "<open>"


_OPEN = _Open()


class Run:
    """One job's way through the engine: which chunk to submit next, which results are due.

    It never waits: a driver calls ``fill`` to submit while there is room, waits its own way
    for an outcome (hand it to ``accept``) or for ``next_timer`` seconds (then call ``fire``);
    both yield the result lists now due.
    """

    def __init__(
        self,
        backend: Backend | Plan,
        job: Job,
        items: Iterable[Any],
        *,
        report: Report,
        ordered: bool,
        chunksize: int | None,
        listeners: Sequence[Listener] = (),
        policy: Policy = DEFAULT_POLICY,
        store: Store | None = None,
        indexed: bool = False,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        available_memory: Callable[[], int] | None = None,
    ) -> None:
        self._plan = as_plan(backend)
        self._job = job
        self._report = report
        self._ordered = ordered
        self._listeners = listeners
        self._policy = policy
        self._clock = clock
        self._rng = rng
        self._total = known_length(items)
        self._iterator = iter(items)
        #: A list is cut by slicing, four times cheaper than pulling each item through an
        #: iterator (1.9 ms against 0.4 ms for 200,000 items here); it is read at the moment
        #: each chunk is cut, as its iterator would be.
        self._list = items if type(items) is list else None
        # Per-item deadlines need one item per chunk: a chunk's start is then its item's.
        fixed = 1 if policy.timeout is not None else chunksize
        self._chunker = Chunker(workers=1, target=0.01, fixed=fixed)  # retargeted per chunk
        self._slots: dict[int, _Slot] = {}  # started, not yet delivered
        self._held_items = 0  # items in those slots
        #: Submitted: (slot, first offset, where it went).
        self._tasks: dict[Chunk, tuple[_Slot, int, Placement]] = {}
        self._attempts: dict[int, int] = {}  # index -> tries that failed
        self._timers: list[tuple[float, int, str, Any]] = []
        self._timer_ids = itertools.count()
        self._seqs = itertools.count()
        self._next_index = 0
        self._next_to_yield = 0
        self._exhausted = False
        self._failed = False
        self._closed = False
        self._decisions_told = 0
        self._store = store
        self._indexed = indexed
        self._unflushed_since: float | None = None  # when the oldest unwritten record was made
        self._recall_batch = 0  # while everything pulled was recalled: pull this many at once
        self._available_memory = available_memory or _available_memory
        # Memory runs short over time: the guard first looks after _MEMORY_FIRST_CHECK s, so
        # short jobs never pay for it (importing psutil alone takes ~40 ms).
        self._memory_next_check = clock() + _MEMORY_FIRST_CHECK
        self._memory_floor = policy.memory_floor
        self._memory_low = False
        self._memory_logged = False
        for listener in listeners:
            listener.started(self._total)

    @property
    def decisions(self) -> list[Decision]:
        """The plan's decisions so far (the list it appends to; none for a backend named)."""
        return self._plan.decisions

    @property
    def finished(self) -> bool:
        """Everything delivered and nothing more will be submitted.

        Not merely "nothing outstanding": a plan may hold the input for a while with nothing
        in flight (auto, while it measures), and the job then goes on at its timer.
        """
        return not self._slots and (self._exhausted or self._failed)

    # -- submitting ----------------------------------------------------------------------

    def fill(self) -> bool:
        """Start slots while fewer than the window are undelivered and input remains.

        True when the store settled items, so that results may be due at once (``due``).
        """
        plan = self._plan
        settled = False
        while (
            not self._exhausted
            and not self._failed
            and len(self._slots) < plan.window()
            and self._held_items < MAX_HELD_ITEMS
        ):
            if self._slots and self._short_of_memory():
                break  # one slot always runs: a job slows down, it never stalls
            placement = plan.place()
            if placement is None and not self._slots and plan.wake_at() is None:
                # Holding with nothing outstanding and no timer of its own would stall the
                # job for good: a plan must always place a chunk it is made to.
                placement = plan.place(force=True)
            if placement is None:
                break  # the plan holds the input: nothing more may be in flight now
            self._chunker.retarget(workers=placement.workers, target=placement.target)
            remaining = None if self._total is None else self._total - self._next_index
            size = max(self._chunker.next_size(remaining), self._recall_batch)
            if self._list is not None:
                batch = self._list[self._next_index : self._next_index + size]
            else:
                batch = list(itertools.islice(self._iterator, size))
            if len(batch) < size:
                self._exhausted = True
            if not batch:
                break
            slot = _Slot(next(self._seqs), self._next_index, batch)
            self._next_index += len(batch)
            self._held_items += len(batch)
            self._slots[slot.seq] = slot
            if self._store is None:
                self._submit(slot, 0, batch, placement)
            else:
                settled |= self._recall(self._store, slot, placement)
        self._tell_decisions()
        return settled

    def _recall(self, store: Store, slot: _Slot, placement: Placement) -> bool:
        """Settle the slot's items the store holds; submit the others. True if any settled."""
        recalled = store.recall(slot.start, slot.items)
        size = len(slot.items)
        # A resumed run skips what it finished: pull more at once while all of it is known.
        self._recall_batch = min(2 * size, MAX_RECALL_BATCH) if len(recalled) == size else 0
        if not recalled:
            self._submit(slot, 0, slot.items, placement)
            return False
        done = failed = 0
        pending = 0  # the first offset of the run of items to submit
        for offset in range(size):
            entry = recalled.get(offset)
            if entry is None:
                continue
            self._submit_run(slot, pending, offset)
            pending = offset + 1
            if entry.ok:
                slot.settle(offset, entry.value)
                done += 1
                continue
            failed += 1
            if self._policy.errors == "return":
                slot.settle(offset, entry.value)
                continue
            exception = entry.value.exception  # a store's failure carries an exception
            add_note(
                exception,
                f"manyhands: raised for item {slot.start + offset}: "
                f"{short_repr(slot.items[offset])}",
            )
            slot.fail(offset, exception)
            self._failed = True
            pending = size  # what follows the failure is never delivered: do not run it
            break
        self._submit_run(slot, pending, size)
        for listener in self._listeners:
            listener.recalled(done=done, failed=failed)
        return True

    def _submit_run(self, slot: _Slot, start: int, stop: int) -> None:
        """Submit the slot's items ``start:stop`` in chunks of the usual size."""
        while start < stop:
            size = min(stop - start, self._chunker.next_size(None))
            self._submit(slot, start, slot.items[start : start + size])
            start += size

    def _submit(
        self, slot: _Slot, offset: int, items: list[Any], placement: Placement | None = None
    ) -> None:
        """Submit ``items`` of ``slot`` where ``placement`` says (None: where the plan puts a
        chunk that must go now, such as a retry)."""
        if placement is None:
            placement = self._plan.place(force=True)
            assert placement is not None, "a plan always places a forced chunk"
        chunk = Chunk(
            self._job,
            slot.seq,
            slot.start + offset,
            items,
            self._report,
            expected=self._chunker.expected_seconds(len(items)),
        )
        self._tasks[chunk] = (slot, offset, placement)
        if self._policy.timeout is not None:
            self._arm(self._clock() + self._policy.timeout, "deadline", chunk)
        self._plan.sent(chunk, placement)
        placement.backend.submit(chunk)

    def _short_of_memory(self) -> bool:
        """True while available memory is under the floor (checked at most every 0.1 s)."""
        if self._memory_floor == 0:
            return False
        now = self._clock()
        if now < self._memory_next_check:
            return self._memory_low
        self._memory_next_check = now + _MEMORY_CHECK_EVERY
        if self._memory_floor is None:
            self._memory_floor = default_memory_floor()
        floor = self._memory_floor
        available = self._available_memory()
        self._memory_low = available < floor
        if self._memory_low:
            self._arm(now + _MEMORY_CHECK_EVERY, "memory", None)  # wakes the driver to refill
            if not self._memory_logged:
                self._memory_logged = True
                _log.warning(
                    "manyhands: %d MB of memory available, under the floor of %d MB: new items "
                    "wait until more is free (memory_floor= sets the floor; 0 turns this off)",
                    available // 2**20,
                    floor // 2**20,
                )
        return self._memory_low

    # -- outcomes ------------------------------------------------------------------------

    def accept(self, chunk: Chunk, outcome: ChunkOutcome) -> Iterator[list[Any]]:
        """Take one outcome; yield the result lists now due, in order when ordered."""
        task = self._tasks.pop(chunk, None)
        if task is None:
            return  # late: the chunk already timed out, or the run is closing
        slot, base, placement = task
        self._plan.finished(chunk, placement, outcome)
        self._tell_decisions()
        self._chunker.observe(outcome.ran, outcome.busy)
        if outcome.nbytes:
            self._chunker.observe_bytes(len(chunk.items), outcome.nbytes)
        errors = {error.offset: error for error in outcome.errors}
        if len(chunk.items) > 1 and any(error.kind == "crash" for error in errors.values()):
            # The worker died somewhere in this chunk: run its items one by one to find the
            # one that kills it. Not counted as a try: none of them is known to be at fault.
            for offset in range(len(chunk.items)):
                self._submit(slot, base + offset, [chunk.items[offset]])
            return
        done = failed = 0
        if not errors and base == 0 and slot.open == len(outcome.results) == len(slot.items):
            # The common case, a whole chunk done at the first try: no per-item work here.
            slot.results = outcome.results
            slot.open = 0
            done = len(outcome.results)
        else:
            for offset, value in enumerate(outcome.results):
                if offset not in errors:
                    slot.settle(base + offset, value)
                    done += 1
        if self._store is not None and done:
            self._record(chunk, outcome, errors)
        for error in outcome.errors:
            failed += self._failed_item(slot, base + error.offset, error, outcome.worker)
        self._advanced(done, failed, outcome.busy, outcome.worker)
        yield from self._due()

    def _record(self, chunk: Chunk, outcome: ChunkOutcome, errors: dict[int, ItemError]) -> None:
        """Tell the store which of the chunk's items ran to a result."""
        assert self._store is not None
        seconds = outcome.busy / max(1, outcome.ran)
        record = self._store.record
        # Only a one-item chunk can be a retry; a chunk of several is every item's first try.
        attempts = self._attempts.get(chunk.start, 0) + 1 if len(chunk.items) == 1 else 1
        outputs = outcome.outputs
        if not errors:
            record(
                chunk.start,
                chunk.items,
                outcome.results,
                worker=outcome.worker,
                seconds=seconds,
                attempts=attempts,
                outputs=outputs,
            )
        else:
            for offset, value in enumerate(outcome.results):
                if offset not in errors:
                    text = None if outputs is None else outputs.get(offset)
                    record(
                        chunk.start + offset,
                        [chunk.items[offset]],
                        [value],
                        worker=outcome.worker,
                        seconds=seconds,
                        outputs=None if text is None else {0: text},
                    )
        self._wrote()

    def _wrote(self) -> None:
        if self._unflushed_since is None:
            self._unflushed_since = self._clock()

    def _flush(self) -> None:
        if self._store is not None and self._unflushed_since is not None:
            self._unflushed_since = None
            self._store.flush()

    def _failed_item(self, slot: _Slot, offset: int, error: ItemError, worker: str) -> int:
        """Retry the item, or make its failure final (1: final, 0: retried)."""
        index = slot.start + offset
        attempts = self._attempts.get(index, 0) + 1
        self._attempts[index] = attempts
        retry = self._policy.retry
        if retry is not None and not self._failed and retry.allows(error.exception, attempts):
            if self._rng is None:
                import random

                self._rng = random.Random()
            self._arm(self._clock() + retry.delay(attempts, self._rng), "retry", (slot, offset))
            return 0
        item = slot.items[offset]
        returned = self._policy.errors == "return"
        if returned or self._store is not None:
            failure = _failure(error, index, item, attempts)
            if self._store is not None:  # before item_exception adds its note to the exception
                self._store.record_failure(failure, worker=worker)
                self._wrote()
            if returned:
                slot.settle(offset, failure)
                return 1
        slot.fail(offset, item_exception(error, index, item))
        self._failed = True
        return 1

    def _advanced(self, done: int, failed: int, busy: float, worker: str) -> None:
        for listener in self._listeners:
            listener.advanced(done=done, failed=failed, busy=busy, worker=worker)

    def _tell_decisions(self) -> None:
        decisions = self._plan.decisions
        if len(decisions) == self._decisions_told:
            return
        for decision in decisions[self._decisions_told :]:
            for listener in self._listeners:
                listener.decided(decision)
        self._decisions_told = len(decisions)

    # -- timers --------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        """Seconds until the next timer is due (0 if overdue), None without timers."""
        due = self._timers[0][0] if self._timers else None
        wake = self._plan.wake_at()
        if wake is not None:
            due = wake if due is None else min(due, wake)
        if self._unflushed_since is not None:
            flush_at = self._unflushed_since + FLUSH_AFTER
            due = flush_at if due is None else min(due, flush_at)
        return None if due is None else max(0.0, due - self._clock())

    def fire(self) -> Iterator[list[Any]]:
        """Act on every timer now due: retry items, time out items; yield what is now due."""
        now = self._clock()
        if self._unflushed_since is not None and self._unflushed_since + FLUSH_AFTER <= now:
            self._flush()
        wake = self._plan.wake_at()
        if wake is not None and wake <= now:
            self._plan.tick(now)
            self._tell_decisions()
        while self._timers and self._timers[0][0] <= now:
            from heapq import heappop  # imported by ``_arm`` already

            _, _, kind, payload = heappop(self._timers)
            if kind == "retry":
                slot, offset = payload
                if slot.seq in self._slots:
                    self._submit(slot, offset, [slot.items[offset]])
            elif kind == "deadline":
                self._deadline(payload, now)
            # "memory": nothing to do here; the driver's next fill() checks again.
        yield from self._due()

    def _arm(self, due: float, kind: str, payload: Any) -> None:
        from heapq import heappush  # with the first timer: most maps have none

        heappush(self._timers, (due, next(self._timer_ids), kind, payload))

    def _deadline(self, chunk: Chunk, now: float) -> None:
        task = self._tasks.get(chunk)
        timeout = self._policy.timeout
        if task is None or timeout is None:
            return  # finished in time
        started = chunk.started_at
        if started is None or started + timeout > now:
            # Queued, or started after it was submitted: its deadline counts from its start.
            self._arm((started if started is not None else now) + timeout, "deadline", chunk)
            return
        del self._tasks[chunk]
        slot, offset, placement = task
        written = placement.backend.stop(chunk) or ""
        self._plan.finished(chunk, placement, None)
        index = slot.start + offset
        error = TaskTimeout(
            f"item {index} ({short_repr(chunk.items[0])}) ran longer than timeout={timeout:g} s "
            "and was stopped; raise timeout= if it needs longer, or set retries= to try again",
            timeout=timeout,
        )
        failure = ItemError(
            0, "timeout", error, "TaskTimeout", str(error), duration=now - started, output=written
        )
        failed = self._failed_item(slot, offset, failure, "")
        self._advanced(0, failed, now - started, "")

    # -- delivering ----------------------------------------------------------------------

    def due(self) -> Iterator[list[Any]]:
        """Yield the result lists due now (after ``fill`` settled items from the store)."""
        return self._due()

    def _due(self) -> Iterator[list[Any]]:
        # Every result the caller sees is already durable in the store: flush before delivery.
        if self._ordered:
            while (slot := self._slots.get(self._next_to_yield)) is not None and slot.ready:
                self._flush()
                del self._slots[self._next_to_yield]
                self._next_to_yield += 1
                self._held_items -= len(slot.items)
                yield from _deliver(slot, self._indexed)
        else:
            for seq in [seq for seq, slot in self._slots.items() if slot.ready]:
                self._flush()
                slot = self._slots.pop(seq)
                self._held_items -= len(slot.items)
                yield from _deliver(slot, self._indexed)

    def close(self) -> None:
        """Cancel what is still outstanding and tell the listeners; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for chunk in self._tasks:
            chunk.cancelled = True
        self._tasks.clear()
        self._timers.clear()
        try:
            self._flush()  # everything final so far is recorded before the caller hears of it
        finally:
            for listener in self._listeners:
                listener.finished()


_MEMORY_FIRST_CHECK = 0.5
_MEMORY_CHECK_EVERY = 0.1


def _available_memory() -> int:
    import psutil  # a core dependency, imported when the guard first looks

    return int(psutil.virtual_memory().available)


def default_memory_floor() -> int:
    """5% of the machine's memory, at most 1 GiB: room for the system to stay responsive."""
    import psutil

    return int(min(2**30, psutil.virtual_memory().total * 0.05))


def _deliver(slot: _Slot, indexed: bool) -> Iterator[list[Any]]:
    """Yield a slot's results (``(index, result)`` pairs when ``indexed``); raise its failure
    in its place when errors raise."""
    results = slot.results
    if slot.failure is not None:
        results = results[: slot.failure[0]]
    if indexed:
        results = list(zip(range(slot.start, slot.start + len(results)), results, strict=True))
    if results or slot.failure is None:
        yield results
    if slot.failure is not None:
        raise slot.failure[1]


def _failure(error: ItemError, index: int, item: Any, attempts: int) -> Failure:
    from ._failure import Failure  # dataclasses, imported when an item first fails for good

    exception = error.exception
    return Failure(
        index=index,
        item=item,
        kind=error.kind,
        exception=exception,
        traceback=error.traceback or _format(exception),
        exitcode=getattr(exception, "exitcode", None) if error.kind == "crash" else None,
        signal=getattr(exception, "signal", None) if error.kind == "crash" else None,
        attempts=attempts,
        duration=error.duration,
        output=error.output,
    )


def _format(exception: BaseException | None) -> str:
    if exception is None:
        return ""
    import traceback

    return "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))


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
