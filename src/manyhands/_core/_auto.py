"""backend="auto": the planner stage of the engine, which measures, decides, checks and adapts.

    engine (caller's thread)                     the planner's phases
    ------------------------                     --------------------
    fill ──place()──> Placement(backend, size)   probe: the first item, alone, on a thread;
      │   (None: hold the input)                   watched on its thread's CPU clock
      │                                          scale: CPU-heavy? a meter thread beside it
    accept ──finished(chunk, outcome)──>           says whether the GIL is held
      │                                          decided: serial | thread | process | asyncio,
    timers ──wake_at() / tick(now)──>              each chunk placed under that phase's limits
                                                 review: the work measured since the decision
                                                   is checked against it; a wrong one is
                                                   revised (at most MAX_REVISIONS times)

The planner only chooses where each chunk goes and how many are in flight; the engine does the
rest (ordering, failures, the journal), so a switch never runs an item twice: chunks already
running finish where they are, and the next ones go to the new place.

* **Probe.** Decided when the first item finishes (wall and CPU time, and the thread hand-off
  it cost, which ``Machine`` keeps), or earlier from its thread's CPU clock: after
  ``PROBE_WINDOW`` of mostly waiting it is waiting work; CPU-heavy is believed only after
  ``CPU_EVIDENCE`` seconds of CPU, since a cold first call (lazy imports, a first connection)
  burns a few milliseconds of CPU before it starts waiting. A cold first item near the cold
  first hand-off is measured again, alone on the warm thread; half way through the window of
  a probe still running, what processes would need is measured (``_prepare``). A function
  whose last job here stayed in the caller's thread for tiny items probes there
  (``_tiny_code``): no thread for a job that needs none.
* **Hedge.** While worker processes start, the caller's thread runs chunks itself, one at a
  time, until a worker answers: nothing waits on a start-up, and a bet that did not pay costs
  the spawn. (A thread of the caller's beside the workers was tried and measured worse: two
  GIL-bound threads here starved the threads that feed the workers, and a trivial call on
  processes took 0.7 s instead of 0.06 s.)
* **Waiting work** runs on threads under ``ConcurrencyController``, started at the width
  Little's law gives from the measured wait and CPU per item and adjusted from throughput.
  Where the items' own CPU keeps the GIL busy while items wait for a slot, it moves to one
  process per CPU, each running as many threads as were reached here; this process's threads
  go on serving until a worker answers, and the move is undone if it pays less.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable

from .._system import (
    SHARES_BUFFERS,
    native_thread_limiter,
    others_running,
    runnable_seconds,
    thread_runnable_seconds,
    travels_shared,
)
from . import _log
from ._decision import (
    ASYNC_TASKS,
    FEW_SAMPLES,
    HANDOFFS_PER_ITEM,
    IO_THREAD_CAP,
    UNMEASURED_START,
    WAITING_RATIO,
    Decision,
    Evidence,
    decide,
)
from ._machine import Machine, machine
from ._plan import Placement
from ._protocol import Backend
from ._task import Chunk, ChunkOutcome, Job, is_coroutine_function

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from ._concurrency import ConcurrencyController

    F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["AutoPlan", "Opener", "pickled_size"]

#: Opens (or reuses) the backend of a kind with that many workers, each running that many
#: threads (processes only; 1 elsewhere).
Opener = Callable[[str, int, int], Backend]

#: Seconds a running probe is watched before it may be called waiting work.
PROBE_WINDOW = 0.01
#: CPU seconds a running probe must have used before it is believed CPU-bound.
CPU_EVIDENCE = 0.03
#: Of a hand-off, the wall time under which a first item is tiny: it runs in the caller's
#: thread untested (its cold wall is mostly the first call's own cost); from there to two
#: hand-offs, a cold first item is measured again, and its work tested on two threads.
TINY_SHARE = 0.125
#: Seconds of two threads running at once that tell whether they run in parallel.
SCALE_SPAN = 0.02
#: The work left must be this many times SCALE_SPAN for the test to be worth running.
SCALE_WORTH = 2
#: Two threads that use this many cores together (or this much more CPU per second than one
#: alone) run in parallel: the GIL is released.
SCALING = 1.4
#: Between this and SCALING, the test is unsure (other processes take CPU from ours): it is
#: measured again over SCALE_LONGER times its span, where SCALING_LONGER says they scale
#: (threads that take turns at the GIL use a core between them, 1.1 at most with the
#: engine's own thread: more is parallel, and two threads at 1.3 cores beat one).
SCALE_UNSURE = 1.1
SCALE_LONGER = 3
SCALING_LONGER = 1.2
#: Seconds of work after a decision before it is first reviewed, and between reviews.
REVIEW_AFTER = 0.1
#: Decisions a job may revise at most (a job that keeps changing gets no more).
MAX_REVISIONS = 3
#: On processes, an item whose CPU is under this share of its wall time is waiting work.
#: Low: a CPU-bound item on a machine busy with other work also gets only part of a core.
PROCESS_WAITING = 0.1
#: Items in flight that waiting work starts with at most (Little's law may say fewer).
THREAD_START = 64
#: Finished items after which Little's law is taken again from them rather than the probe.
LITTLE_SAMPLES = 16
#: Seconds between the concurrency controller's ticks.
TICK = 0.005
#: Share of a core kept busy by the items' own threads at which the GIL is their limit.
GIL_SATURATED = 0.85
#: Of its fastest time on threads, the CPU an item must use (with the GIL saturated) for
#: threads chosen for waiting to be revised to processes. Not a half: the estimate counts
#: running items as half done and lags, and the fastest time is stretched by the busy GIL
#: (a review 0.8 s late found 29.8 ms of CPU an item against a half of 63 ms, too late).
COMPUTING_SHARE = 0.25
#: Running threads whose CPU time a controller tick reads at most.
RUNNING_SAMPLE = 32
#: Processes that run threads for waiting work, once they have answered, are checked against
#: the threads they replaced: under this share of the threads' throughput, the job goes back
#: to threads.
SPREAD_KEEPS = 0.8
#: Functions remembered as tiny, at most (the oldest is forgotten first).
TINY_REMEMBERED = 256

#: The code of functions whose last job in this process went serial for items far shorter
#: than a hand-off (``_decide_from``'s ``short``): a later job of the same code runs its
#: first item in the caller's thread as its probe, sparing the probe's thread. 300 calls of
#: ``map`` over 100 x ``x*x`` took 650-1,400 us a call on auto, against 150 us on
#: ``serial``; 270-340 us with this. Keyed by code object, not by function: a code object
#: holds no closure's data, and needs no ``weakref`` (1 ms to import on a first call). A
#: closure of the same code over costlier data costs at most its first item, run here and
#: then decided from as any probe.
_tiny_code: dict[object, None] = {}


def _code_of(fn: Callable[..., Any]) -> object | None:
    """The code object of a Python function or method (None for builtins, partials...)."""
    return getattr(getattr(fn, "__func__", fn), "__code__", None)


def _remember_tiny(fn: Callable[..., Any], tiny: bool) -> None:
    code = _code_of(fn)
    if code is None:
        return
    _tiny_code.pop(code, None)  # (re)made the most recent, or forgotten
    if not tiny:
        return
    _tiny_code[code] = None
    while len(_tiny_code) > TINY_REMEMBERED:
        try:  # another thread's job may be trimming it too
            _tiny_code.pop(next(iter(_tiny_code)), None)
        except (RuntimeError, StopIteration):
            break


def _promptly(method: F) -> F:
    """Run ``method`` under ``prompt_gil``: deciding reads the cache file, imports cloudpickle
    and measures, all beside the probe item that keeps computing."""

    @functools.wraps(method)
    def promptly(*args: Any, **kwargs: Any) -> Any:
        with prompt_gil():
            return method(*args, **kwargs)

    return promptly  # type: ignore[return-value]


class prompt_gil:  # a context manager, lower-case as contextlib's classes are
    """Let this thread have the GIL back promptly for a moment (a switch interval of 0.2 ms).

    Importing modules and spawning processes release the GIL at every system call. Beside an
    item computing in Python on another thread, each time back costs a whole switch interval
    (5 ms): importing cloudpickle and the process backend took 180 ms beside a running probe,
    against 50 ms alone. The interpreter's setting is restored on the way out. A class rather
    than ``contextlib.contextmanager``: contextlib is 1 ms of a first call's imports.
    """

    __slots__ = ("_before",)

    def __enter__(self) -> None:
        self._before = sys.getswitchinterval()
        sys.setswitchinterval(min(self._before, 0.0002))

    def __exit__(self, *exc_info: object) -> None:
        sys.setswitchinterval(self._before)


class AutoPlan:
    """The plan of one ``backend="auto"`` job; called only from the engine's thread."""

    def __init__(
        self,
        job: Job,
        total: int | None,
        open_backend: Opener,
        *,
        workers: int | None,
        machine_: Machine | None = None,
        clock: Callable[[], float] = time.monotonic,
        process_time: Callable[[], float] = time.process_time,
        gil_meter: Callable[[float, int | None], GilMeter] | None = None,
        thread_cpu: Callable[[int | None], float | None] | None = None,
        runnable_time: Callable[[], float | None] = runnable_seconds,
        thread_runnable: Callable[[int | None], float | None] = thread_runnable_seconds,
        others_running: Callable[[], int | None] = others_running,
    ) -> None:
        self.decisions: list[Decision] = []
        self._job = job
        self._total = total
        self._open = open_backend
        self._workers = workers
        self._machine = machine_ or machine()
        self._clock = clock
        self._process_time = process_time
        self._runnable_time = runnable_time
        self._thread_runnable = thread_runnable
        self._others_running = others_running
        self._gil_meter = gil_meter or GilMeter
        self._thread_cpu = thread_cpu or _thread_cpu
        #: Chunks sent to threads and not finished, oldest first (a dict used as an ordered set).
        self._on_threads: dict[Chunk, None] = {}
        self._meter: GilMeter | None = None
        self._probe_finished = False
        self._inline = False  # a chunk runs in the caller's thread while workers start
        self._answered = False  # a worker process has sent back an outcome
        self._phase = "probe"
        self._in_flight: dict[str, int] = {}
        self._placements: dict[tuple[str, int, int, int], Placement] = {}
        self._wake: float | None = None
        self._blocked = False
        self._revisions = 0
        self._probe: Chunk | None = None
        self._probe_sent = 0.0
        self._probe_cpu = 0.0
        self._probe_item: Any = None
        self._probe_rate = 1.0  # CPU per second of wall of the probe, running alone
        self._probes = 0  # probes sent (a second where the first was cold and unsure)
        #: The first probe runs in the caller's thread: the function's code was tiny in this
        #: process's last job of it (not where a timeout must be able to stop an item).
        self._probe_here = job.timeout is None and _code_of(job.fn) in _tiny_code
        self._tiny = False  # the probe's item was far shorter than a hand-off
        self._prepared = False  # ``_prepare`` has run
        self._prepared_until = 0.0  # when it ended (clock time)
        self._prepared_cpu = 0.0  # the GIL it held (its CPU or its time), the probe waited for
        #: (time, the probe thread's seconds on a CPU or in the run queue, its CPU seconds)
        #: at its first tick.
        self._probe_runnable: tuple[float, float, float] | None = None
        self._scale_start: tuple[float, float] | None = None  # (time, process CPU)
        self._scale_deadline = 0.0
        self._scale_evidence = (0.0, 0.0, False)
        self._scale_longer = False  # the test is measured again, over a longer span
        #: Threads of other processes running or ready as the scaling test began.
        self._scale_others: int | None = None
        self._picklable: bool | None = None
        self._item_bytes: int | None = None
        self._function_bytes = 0
        self._shared_bytes = 0
        # Since the decision in force: items done, their wall and CPU seconds, where.
        self._since = 0.0
        self._since_cpu = 0.0
        self._since_runnable: float | None = None
        #: (this thread's seconds on a CPU or in the run queue, its CPU seconds) at a serial
        #: decision: its items run here.
        self._serial_mark: tuple[float | None, float | None] = (None, None)
        self._done = 0
        self._busy = 0.0
        self._cpu = 0.0
        self._best_wall: float | None = None  # the fastest item seen on threads (per item)
        self._started = 0  # items started since the job began (for what remains)
        self._next_review = 0.0
        self._controller: ConcurrencyController | None = None
        self._tick_busy = 0.0
        self._tick_items = 0
        self._process_workers = 0
        #: Threads each worker process runs (waiting work that kept one GIL busy), and while
        #: they start, how many chunks stay on this process's threads (the width reached).
        self._process_threads = 1
        self._hedge_width = 0
        self._process_items = 0  # items sent to such processes and not finished
        self._thread_rate: float | None = None  # items a second on threads, before them
        self._answered_at: float | None = None
        self._spread_mark: tuple[float, int] | None = None  # (time, items done) then
        #: (time, the items' CPU since the decision) at the review before, on threads.
        self._work_mark = (0.0, 0.0)
        if is_coroutine_function(job.fn):
            self._adopt(decide(self._evidence(0.0, 0.0, coroutine=True), workers=workers))

    # -- the Plan protocol ---------------------------------------------------------------

    def window(self) -> int:
        phase = self._phase
        if phase == "serial":
            return 1
        if phase == "thread":
            return max(4, 3 * self._thread_limit())
        if phase == "process":
            return max(4, 3 * (self._process_limit() + 1 + self._hedge_width))
        if phase == "asyncio":
            return max(4, 3 * self._backend_workers("asyncio"))
        return 4  # probing and the scaling test hold everything else

    def place(self, *, force: bool = False) -> Placement | None:
        phase = self._phase
        placement: Placement | None = None
        if phase == "probe":
            if self._probe is None or force:
                here = self._probe_here and self._probes == 0
                placement = self._placement("serial" if here else "thread")
        elif phase == "scale":
            if force or (self._meter is None and self._in_flight.get("thread", 0) < 2):
                # Two threads share the test's items: chunks sized for two, not for the
                # backend's many (a balance over 1,024 threads cut crc32's 0.5 ms items to
                # chunks of one, and two threads were never busy at once to be measured).
                placement = self._placement("thread", share=2)
        elif phase == "thread":
            if force or self._in_flight.get("thread", 0) < self._thread_limit():
                placement = self._placement("thread")
        elif phase == "process":
            if force or self._process_room():
                placement = self._placement("process")
            elif self._process_threads > 1:
                # Waiting work: while the workers start, this process's threads go on
                # serving it at the width they had reached.
                if not self._answered and self._in_flight.get("thread", 0) < self._hedge_width:
                    placement = self._placement("thread")
            elif self._hedging():
                placement = self._placement("serial")
                self._inline = True
        else:
            placement = self._placement(phase)
        self._blocked = placement is None
        if self._blocked and self._controller is not None and self._wake is None:
            self._wake = self._clock() + self._controller.interval
        return placement

    def sent(self, chunk: Chunk, placement: Placement) -> None:
        kind = placement.kind
        self._in_flight[kind] = self._in_flight.get(kind, 0) + 1
        self._started += len(chunk.items)
        if kind == "process":
            self._process_items += len(chunk.items)
        if kind == "thread":
            self._on_threads[chunk] = None
        if self._phase == "probe" and self._probe is None:
            self._probes += 1
            self._probe = chunk
            self._probe_item = chunk.items[0] if chunk.items else None
            self._probe_sent = self._clock()
            self._probe_cpu = self._process_time()
            # Half way through its window, a probe still running leaves time to prepare
            # (one in the caller's thread has ended when ``submit`` returns).
            if kind != "serial":
                self._wake = self._probe_sent + PROBE_WINDOW / 2

    def finished(self, chunk: Chunk, placement: Placement, outcome: ChunkOutcome | None) -> None:
        kind = placement.kind
        self._in_flight[kind] = max(0, self._in_flight.get(kind, 0) - 1)
        if kind == "process":
            self._process_items = max(0, self._process_items - len(chunk.items))
        self._on_threads.pop(chunk, None)
        if outcome is None or outcome.ran == 0:
            return
        now = self._clock()
        ran = outcome.ran
        if kind == "serial":
            self._inline = False
        if chunk is self._probe:
            self._probe_finished = True
            busy = self._probe_wall(outcome.busy, outcome.cpu)
            if chunk.started_at is not None:  # and without its time in the run queue
                end = chunk.started_at + outcome.busy
                busy = max(outcome.cpu, busy * (1 - self._queued(chunk, end, outcome.cpu)))
            self._probe_rate = outcome.cpu / busy if busy > 0 else 1.0
            if self._phase == "probe":
                # Alone on its thread, the probe's way back (from the end of its run to the
                # engine) is half of what a hand-off to a warm thread costs here; its way
                # there also paid for starting the thread, which a pool pays once.
                # Not while this thread was busy preparing when the probe ended: it noticed
                # late (a hand-off of 13.8 ms once ran sha256 serial at 1.9x the threads').
                started = chunk.started_at
                cold = self._machine.handoff is None  # the first this process has seen
                # (In the caller's thread there was no hand-off to measure.)
                if (
                    kind != "serial"
                    and started is not None
                    and started + outcome.busy > self._prepared_until
                ):
                    self._machine.observe_handoff(max(0.0, 2 * (now - started - outcome.busy)))
                wall = busy / ran
                if cold and self._probes == 1 and self._remaining() >= 2 and self._unsure(wall):
                    # One cold item against one cold hand-off: a second item, on the thread
                    # now warm, says more (crc32 of 1 MiB, 0.48 ms, against a first hand-off
                    # of 0.68 ms ran serial, where two threads took 0.8 of its time).
                    self._probe = None
                    self._probe_runnable = None  # read afresh for the second, its own clocks
                    return
                self._decide_from(wall, outcome.cpu / ran, complete=True)
                return
        phase = self._phase
        if kind != phase and (kind, phase) not in (("serial", "process"), ("thread", "scale")):
            # A straggler of the decision before (an item that started on threads finishing
            # after a revision to processes, its wall stretched by the busy GIL) says nothing
            # about the decision in force: counted, it once made CPU-bound work look waiting.
            return
        self._done += ran
        self._busy += outcome.busy
        self._cpu += outcome.cpu
        if kind == "thread":
            per_item = outcome.busy / ran
            if self._best_wall is None or per_item < self._best_wall:
                self._best_wall = per_item
            self._tick_items += ran
            self._tick_busy += outcome.busy
        if kind == "process":
            if not self._answered:
                self._answered_at = now
            self._answered = True
        if now >= self._next_review and phase != "scale":
            self._review(now)

    def wake_at(self) -> float | None:
        return self._wake

    def tick(self, now: float) -> None:
        self._wake = None
        phase = self._phase
        if phase == "probe":
            self._watch_probe(now)
        elif phase == "scale":
            self._watch_scaling(now)
        elif self._controller is not None and self._phase == "thread":
            self._tick_controller(now)
            if now >= self._next_review:
                self._review(now)

    # -- probing -------------------------------------------------------------------------

    def _unsure(self, wall: float) -> bool:
        """Whether an item of ``wall`` seconds is near enough the hand-off for a warm one to
        decide otherwise (threads, or the caller's thread): not items far shorter (200,000 x
        ``x*x``, 2 us each, stay here whatever a warm hand-off costs)."""
        handoff = self._machine.handoff
        return handoff is not None and TINY_SHARE * handoff <= wall < HANDOFFS_PER_ITEM * handoff

    @_promptly  # reading the run queue is three system calls, each a switch interval back
    def _watch_probe(self, now: float) -> None:
        probe = self._probe
        started = None if probe is None else probe.started_at
        if probe is None or started is None:
            self._wake = now + PROBE_WINDOW  # not started yet
            return
        elapsed = max(now - started, 1e-9)
        cpu_now = self._thread_cpu(probe.thread)
        if cpu_now is not None:
            cpu = max(0.0, cpu_now - probe.thread_cpu)
        else:  # no per-thread clock here: the process's, an upper bound
            used = self._process_time() - self._probe_cpu - self._prepared_cpu
            cpu = min(elapsed, max(0.0, used))
        # Without the time it waited for the GIL this thread took, or for a CPU others took.
        wall = max(cpu, self._probe_wall(elapsed, cpu) * (1 - self._queued(probe, now, cpu)))
        waits = elapsed >= PROBE_WINDOW and cpu / wall < WAITING_RATIO
        # Waiting is believed once the run queue has been read over a span (under load the
        # first tick may come after the window: unread, the CPU others took looks waited).
        unread = self._probe_runnable is None and self._thread_runnable(probe.thread) is not None
        if (waits and not unread) or cpu >= CPU_EVIDENCE:
            self._probe_rate = cpu / wall
            self._decide_from(wall, cpu, complete=False)
            return
        if unread:
            # Read before preparing: under load the preparation takes 10-20 ms, and a mark
            # read after it came when the probe had ended (the run queue was never read,
            # and pure Python beside two busy processes went to threads as waiting work).
            runnable = self._thread_runnable(probe.thread)
            marked = self._clock()  # with the reading (the time of the tick was before it)
            cpu_now = self._thread_cpu(probe.thread)
            if runnable is not None:
                used = cpu if cpu_now is None else max(0.0, cpu_now - probe.thread_cpu)
                self._probe_runnable = (marked, runnable, used)
        if not self._prepared:
            self._prepare()
        if elapsed < PROBE_WINDOW:
            self._wake = started + PROBE_WINDOW
        else:
            self._wake = now + (PROBE_WINDOW / 2 if unread else PROBE_WINDOW)

    def _queued(self, probe: Chunk, now: float, cpu: float) -> float:
        """The share of the time since the probe's first tick that it spent in the run queue,
        ready to compute while other processes had the CPUs (0.0 where unknown). Its CPU
        clock alone made pure Python beside a busy process read 49% CPU-bound, and it went
        to threads as waiting work."""
        mark = self._probe_runnable
        runnable = None if mark is None else self._thread_runnable(probe.thread)
        if mark is None or runnable is None or now - mark[0] <= 0:
            return 0.0
        marked, runnable_then, cpu_then = mark
        queued = (runnable - runnable_then) - (cpu - cpu_then)
        return min(1.0, max(0.0, queued / (now - marked)))

    def _prepare(self) -> None:
        """Half way through the window of a probe still running, while this thread has
        nothing else to do: measure what a move to processes needs (the start-up, from the
        cache file; the transfer rate; the function's and an item's pickled size).

        A decision for processes needs them at once, and waiting work that keeps the GIL
        busy needs them at a review beside hundreds of busy threads, where this thread waits
        its turn for the GIL after every system call: such a review once took 0.5 s, all but
        50 ms of it in these. A probe that finishes sooner (a tiny job) never pays this.
        """
        self._prepared = True
        m = self._machine
        if not m.gil_enabled or (m.cpus < 2 and self._workers is None):
            return  # auto chooses no processes then (``decide``)
        from .._plain import by_reference

        me = threading.get_ident()
        cpu_before, began = self._thread_cpu(me), self._clock()
        probe = self._probe
        with prompt_gil():
            _ = m.process_start
            # Each step only while the probe runs: one that ended meanwhile waits for this
            # thread to decide, with a CPU idle (sha256 of 8 MiB ended 0.3 ms into a 10 ms
            # preparation). What is skipped is measured when a decision needs it.
            if probe is None or not probe.finished:
                _ = m.transfer_rate
            # Not where sizing imports cloudpickle (27 ms, a function defined in __main__):
            # sleeps there would start their threads that much later. CPU-bound work that
            # goes to processes sizes it when it decides.
            if (probe is None or not probe.finished) and (
                by_reference(self._job.fn) or "cloudpickle" in sys.modules
            ):
                self._pickling()
        self._prepared_until = self._clock()
        cpu_after = self._thread_cpu(me)
        # Its CPU, or its whole time where that is more: descheduled by other processes
        # while it held the GIL, it kept the probe waiting all the same.
        used = 0.0 if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        self._prepared_cpu = max(0.0, used, self._prepared_until - began)

    def _probe_wall(self, wall: float, cpu: float) -> float:
        """The probe's wall time without the GIL the preparation took from it meanwhile (its
        own CPU): a probe of pure Python once read 63% CPU-bound, and two threads taking
        turns at the GIL then looked 1.4 times as fast as it."""
        if self._probes > 1:
            return wall  # the second probe started after the preparation
        return max(cpu, wall - self._prepared_cpu)

    @_promptly
    def _decide_from(self, wall: float, cpu: float, *, complete: bool) -> None:
        """The probe's evidence is in: decide, or first test whether threads scale."""
        # Not pickled yet: if threads scale, processes are out and pickling (cloudpickle's
        # import, a copy of an 8 MiB item) would be 35 ms spent for nothing.
        evidence = self._evidence(wall, cpu, complete=complete, pickle=False)
        cpu_heavy = evidence.cpu_ratio >= WAITING_RATIO
        # The test runs items on two threads for SCALE_SPAN: worth it only where the work left
        # is a few times that (its items go on running meanwhile; 200,000 x x*x is 20 ms of
        # work in all, where the test would be most).
        # A single cold item far shorter than a hand-off says little (its wall is mostly the
        # first call's own cost: 200,000 x x*x): such work runs here first and is measured
        # again in chunks (``decide``'s rule for short items). One longer than that is
        # tested: its items travel in chunks, so a hand-off is paid per chunk (crc32 of
        # 1 MiB, 0.3-0.5 ms an item against a hand-off of 0.7 ms, ran serial at 1.3-1.9x
        # two threads' time).
        short = wall < TINY_SHARE * evidence.handoff
        self._tiny = short and complete
        worth_testing = cpu * self._remaining() >= SCALE_WORTH * SCALE_SPAN
        if (
            cpu_heavy
            and not short
            and worth_testing
            and evidence.gil_enabled
            and evidence.cpus >= 2
            and self._remaining() >= 2
        ):
            self._phase = "scale"
            self._scale_start = None
            self._scale_others = self._others_running()
            self._scale_deadline = self._clock() + 3 * SCALE_SPAN + wall
            self._wake = self._clock() + SCALE_SPAN / 2
            self._scale_evidence = (wall, cpu, complete)
            if not complete:
                # The probe is a long item, still running: a second one beside it would
                # leave two GIL-bound threads in this process (they starve the threads that
                # feed worker processes). A meter thread beside it tells as much in 20 ms.
                probe = self._probe
                self._meter = self._gil_meter(SCALE_SPAN, None if probe is None else probe.thread)
            return
        self._adopt(self._decision(self._evidence(wall, cpu, complete=complete)))

    def _watch_scaling(self, now: float) -> None:
        """The meter's share of a core beside the running probe; or two threads busy for
        SCALE_SPAN: their process CPU rate against one thread's."""
        meter = self._meter
        if meter is not None:
            rate = meter.rate
            if rate is None:
                self._wake = now + SCALE_SPAN / 2
                return
            self._meter = None
            if not self._probe_finished:
                self._end_scaling(rate >= SCALING)
                return
            # The probe ended during the measurement: the meter ran alone. Items are short
            # enough, then, for two of them to run at once.
            self._scale_deadline = now + 3 * SCALE_SPAN
        running = self._in_flight.get("thread", 0)
        if self._scale_start is None:
            if running >= 2:
                self._scale_start = (now, self._process_time())
            elif now >= self._scale_deadline:
                self._end_scaling(None)
                return
            self._wake = now + SCALE_SPAN / 2
            return
        since, cpu_then = self._scale_start
        span = SCALE_SPAN * (SCALE_LONGER if self._scale_longer else 1)
        if now - since < span:
            self._wake = since + span
            return
        rate = (self._process_time() - cpu_then) / (now - since)
        one = max(self._probe_rate, 0.5)
        # And more than a core: beside a busy process a probe alone got half a core, and two
        # threads taking turns at the GIL, at one core on the other CPU, looked parallel.
        parallel = rate > SCALE_UNSURE
        if parallel and rate >= (SCALING_LONGER if self._scale_longer else SCALING) * one:
            # More than one thread's CPU: they ran at once, however many run at this moment
            # (one of the two between chunks once made a rate of 1.69 read as no answer).
            self._end_scaling(True)
        elif (
            ((parallel and rate >= SCALE_UNSURE * one) or self._scale_others)
            and not self._scale_longer
            and self._remaining() > 2
        ):
            # Unsure, measured again over a longer span from the same start: between the two
            # rates (on a machine whose CPUs other work takes from us, two threads of sha256
            # once used 1.29 cores, and the job ran serial at 1.8x the threads' time); or
            # at any rate where other processes' threads run (beside a process spinning on
            # one of two CPUs, the scheduler put both threads of sha256 on the other CPU
            # for 20 ms in half the runs: 1.0 cores, and the job ran serial at 1.3x).
            self._scale_longer = True
            self._wake = since + SCALE_SPAN * SCALE_LONGER
        else:
            self._end_scaling(False if running >= 2 or self._scale_longer else None)

    @_promptly
    def _end_scaling(self, scale: bool | None) -> None:
        wall, cpu, complete = self._scale_evidence
        samples = max(1, self._done)
        if self._done:  # items that finished during the test say more than the probe alone
            wall, cpu, complete = self._busy / self._done, self._cpu / self._done, True
            if not scale:
                # Two threads sharing one GIL stretch each other's wall time up to twice.
                wall = max(cpu, wall / 2)
        # Other processes' threads that ran or waited to all through the test (the fewer of
        # two readings: one competitor for a moment says nothing of the job's time).
        others = None
        if scale and self._scale_others is not None:
            now = self._others_running()
            others = None if now is None else min(now, self._scale_others)
        evidence = self._evidence(
            wall, cpu, complete=complete, scale=scale, samples=samples, others=others
        )
        self._adopt(self._decision(evidence))

    # -- deciding ------------------------------------------------------------------------

    def _evidence(
        self,
        wall: float,
        cpu: float,
        *,
        complete: bool = True,
        coroutine: bool = False,
        scale: bool | None = None,
        items: int | None = None,
        samples: int = 1,
        pickle: bool = True,
        gil_saturated: bool = False,
        width: int = 0,
        others: int | None = None,
    ) -> Evidence:
        """``pickle=False``: leave the function's and item's pickling unmeasured (taken as
        picklable), for a look that decides nothing about processes. ``gil_saturated``: the
        items (waiting work) kept the GIL busy on ``width`` threads."""
        m = self._machine
        cpu = min(cpu, wall) if wall > 0 else cpu
        heavy = wall > 0 and cpu / wall >= WAITING_RATIO
        if items is None:  # the input's length for a first decision; what is left for a revision
            items = self._remaining() if self.decisions or self._total is None else self._total
        remaining = items
        # Pickling is measured only where processes are a candidate (it imports cloudpickle
        # and copies the function's closure): CPU-bound, more work left than starting them.
        short = wall < HANDOFFS_PER_ITEM * (m.handoff or 0.0)
        could = (
            (samples >= FEW_SAMPLES if short else heavy or gil_saturated)
            and m.cpus >= 2
            and m.gil_enabled
            and not coroutine
            and scale is not True
        )
        # The start-up figure is read from the cache file only where it can matter.
        start = m.process_start if could else m.process_start_seen
        candidate = could and cpu * remaining > (UNMEASURED_START if start is None else start)
        picklable: bool = True
        item_bytes: int | None = 0
        function_bytes = 0
        rate = 1e9
        if candidate and pickle:
            picklable, item_bytes, function_bytes = self._pickling()
            rate = m.transfer_rate  # measured (3-5 ms) only for a look that may choose it
        elif candidate:
            rate = m.transfer_rate_seen or rate
        return Evidence(
            coroutine=coroutine,
            seconds_per_item=wall,
            cpu_per_item=cpu,
            item_bytes=item_bytes,
            result_bytes=0,
            function_picklable=picklable,
            items=remaining,
            cpus=m.cpus,
            gil_enabled=m.gil_enabled,
            complete=complete,
            handoff=m.handoff or 0.0,
            process_start=start,
            transfer_rate=rate,
            threads_scale=scale,
            samples=samples,
            function_bytes=function_bytes,
            shared_bytes=self._shared_bytes if candidate and pickle else 0,
            native_threads=native_thread_limiter(),
            gil_saturated=gil_saturated,
            thread_width=width,
            others_running=others,
        )

    def _pickling(self) -> tuple[bool, int | None, int]:
        """Whether the function pickles, and the bytes of an item and of the function."""
        if self._picklable is None:
            with prompt_gil():  # imports cloudpickle, perhaps beside a running item
                shared: list[int] = []
                function_bytes = pickled_size(self._job.fn, shared)
                self._picklable = function_bytes is not None
                self._shared_bytes = sum(shared)
                self._function_bytes = (function_bytes or 0) - self._shared_bytes
                self._item_bytes = pickled_size(self._probe_item)
        return self._picklable, self._item_bytes, self._function_bytes

    def _decision(self, evidence: Evidence, *, revised: bool = False) -> Decision:
        return decide(
            evidence,
            workers=self._workers,
            revised=revised,
            stoppable=self._job.timeout is not None,
        )

    def _remaining(self) -> int:
        total = self._total
        if total is None:
            return 1000  # a generator: assume enough to reward parallelism (decide's rule)
        return max(0, total - self._started)

    def _adopt(self, decision: Decision) -> None:
        width = self._controller.limit if self._controller is not None else 0
        self.decisions.append(decision)
        # Remembered for this function's next job: tiny while it stays in the caller's thread.
        _remember_tiny(self._job.fn, self._tiny and decision.backend == "serial")
        _log.debug("manyhands auto decision: %s", decision)
        now = self._clock()
        self._phase = decision.backend
        self._since = now
        self._since_cpu = self._process_time()
        waiting_threads = decision.backend == "thread" and decision.workers is None
        self._since_runnable = self._runnable_time() if waiting_threads else None
        if decision.backend == "serial":
            me = threading.get_ident()
            self._serial_mark = (self._thread_runnable(me), self._thread_cpu(me))
        self._work_mark = (now, 0.0)
        self._next_review = now + REVIEW_AFTER
        self._done = 0
        self._busy = self._cpu = 0.0
        self._controller = None
        self._wake = None
        if decision.backend == "thread" and decision.workers is None:
            evidence = decision.evidence
            wall = float(evidence.get("seconds_per_item") or 0.0)
            cpu = float(evidence.get("cpu_per_item") or 0.0)
            cap = IO_THREAD_CAP
            # Imported here: a tiny job, which stays in the caller's thread, never needs it.
            from ._concurrency import ConcurrencyController, littles_law_width

            # Growth doubles every tick from there: starting at most at THREAD_START keeps
            # some input unstarted for a few ticks, so that a revision can still move it.
            start = min(littles_law_width(wall, cpu, cap=cap), THREAD_START)
            controller = ConcurrencyController(start=start, cap=cap, interval=TICK)
            # A first sample now: the first tick then judges the GIL over the time since,
            # however late it comes (under a busy GIL this thread's ticks come late).
            now = self._clock()
            controller.tick(
                now=now,
                completed=self._done,
                work_cpu=self._cpu + self._running_cpu(now)[0],
                latency=None,
                backlog=False,
            )
            self._controller = controller
        if decision.backend == "process":
            self._process_workers = decision.workers or self._machine.cpus
            self._process_threads = decision.threads
            self._hedge_width = width if decision.threads > 1 else 0
            self._answered = False
            self._answered_at = self._spread_mark = None
            with prompt_gil():  # imports the process backend and spawns its workers now
                self._placement("process")

    @_promptly
    def _review(self, now: float) -> None:
        """Check the decision in force against the work measured since it was made."""
        self._next_review = now + REVIEW_AFTER
        decision = self.decisions[-1] if self.decisions else None
        if decision is None or self._revisions >= MAX_REVISIONS or self._done == 0:
            return
        if self._remaining() == 0:
            return
        done = self._done
        wall, cpu = self._busy / done, self._cpu / done
        evidence: Evidence | None = None
        if decision.backend == "serial":
            wall = self._serial_wall(wall, cpu)
            short = wall < HANDOFFS_PER_ITEM * (self._machine.handoff or 0.0)
            if self._busy >= REVIEW_AFTER and (done >= FEW_SAMPLES or not short):
                evidence = self._evidence(wall, cpu, samples=done)
        elif decision.backend == "process" and decision.threads > 1:
            evidence = self._review_spread(now)
        elif decision.backend == "process":
            if cpu < PROCESS_WAITING * wall and done >= 2:
                # Waiting work on processes: threads.
                evidence = self._evidence(wall, cpu, samples=done)
        elif decision.backend == "thread" and decision.workers is None:
            # The process's CPU, not only finished items': under a busy GIL, threads take turns
            # and finish late, all at once.
            elapsed = now - self._since
            cpu_rate = (self._process_time() - self._since_cpu) / elapsed if elapsed > 0 else 0
            # Items in flight have used some of that CPU too: count them as half done.
            started = done + self._in_flight.get("thread", 0) / 2
            per_item = (self._process_time() - self._since_cpu) / started
            best = self._best_wall or wall
            if per_item >= COMPUTING_SHARE * best and cpu_rate < GIL_SATURATED:
                # Other processes may be taking the CPUs from this one: then the GIL is
                # saturated when a thread of ours always runs or waits to (Linux says).
                cpu_rate = max(cpu_rate, self._runnable_rate(elapsed))
            if cpu_rate >= GIL_SATURATED and per_item >= COMPUTING_SHARE * best:
                # The GIL is the limit, and an item computes a good part of its fastest time
                # (a request waiting 50 ms computes 1% of it: processes would not help).
                evidence = self._evidence(per_item, per_item, scale=False, samples=done)
            elif self._blocked and self._controller is not None and elapsed > 0:
                # Waiting work whose own CPU keeps the GIL busy while items wait for a slot
                # (HTTP clients at 0.5 ms of CPU a request): processes that each run as many
                # threads as this one reached share that CPU out. The items' CPU, not the
                # process's: starting 1,000 threads for sleeps costs a core for a while.
                work = self._cpu + self._running_cpu(now)[0]
                if max(work / elapsed, self._recent_work_rate(now, work)) >= GIL_SATURATED:
                    self._thread_rate = done / elapsed
                    evidence = self._evidence(
                        wall, work / started, samples=done, gil_saturated=True,
                        width=self._controller.limit,
                    )  # fmt: skip
        if evidence is None:
            return
        revision = self._decision(evidence, revised=True)
        where = (revision.backend, revision.workers, revision.threads)
        if where == (decision.backend, decision.workers, decision.threads):
            return
        self._revisions += 1
        self._adopt(revision)

    def _serial_wall(self, wall: float, cpu: float) -> float:
        """An item's wall time in this thread since a serial decision, without the time the
        thread spent in the run queue, ready while other processes had the CPUs: beside two
        busy processes, items of 30 ms of pure Python took 90 ms, read as waiting work, and
        went to threads before processes."""
        then_runnable, then_cpu = self._serial_mark
        me = threading.get_ident()
        runnable = None if then_runnable is None else self._thread_runnable(me)
        used = None if then_cpu is None else self._thread_cpu(me)
        if runnable is None or used is None or then_runnable is None or then_cpu is None:
            return wall
        queued = max(0.0, (runnable - then_runnable) - (used - then_cpu))
        return max(cpu, wall - queued / self._done)

    def _recent_work_rate(self, now: float, work: float) -> float:
        """The items' CPU per second since the review before (``work``: their CPU since the
        decision), over half a review's time at least; 0.0 before that. Since the decision
        alone, the threads' ramp dilutes it: HTTP requests that kept the GIL busy from
        0.1 s on read as 0.81 of a core at 0.2 s, and moved only at the review after."""
        marked, worked = self._work_mark
        if now - marked < REVIEW_AFTER / 2:
            return 0.0
        self._work_mark = (now, work)
        return (work - worked) / (now - marked)

    def _review_spread(self, now: float) -> Evidence | None:
        """Processes that run threads, once they have answered: still paying? Their
        throughput over a review's time, from a review's time after the first answer (their
        first chunks ran cold), under ``SPREAD_KEEPS`` of the threads': back to threads."""
        answered = self._answered_at
        if answered is None or self._thread_rate is None or now - answered < REVIEW_AFTER:
            return None
        if self._spread_mark is None:
            self._spread_mark = (now, self._done)
            return None
        since, done = self._spread_mark
        if now - since < REVIEW_AFTER:
            return None
        rate = (self._done - done) / (now - since)
        if rate >= SPREAD_KEEPS * self._thread_rate:
            return None
        wall, cpu = self._busy / self._done, self._cpu / self._done
        return self._evidence(wall, cpu, samples=self._done, pickle=False)

    def _runnable_rate(self, elapsed: float) -> float:
        """Seconds per second the process's threads ran or waited to run since the decision
        in force (0.0 where the system does not say)."""
        since = self._since_runnable
        now = self._runnable_time() if since is not None else None
        if since is None or now is None or elapsed <= 0:
            return 0.0
        return (now - since) / elapsed

    # -- limits --------------------------------------------------------------------------

    def _placement(self, kind: str, *, share: int | None = None) -> Placement:
        """The backend of ``kind`` for the phase in force; ``share``: how many workers the
        chunker spreads the items over, where fewer than the backend has run them."""
        workers = self._backend_workers(kind)
        threads = self._process_threads if kind == "process" else 1
        key = (kind, workers, threads, share or workers)
        placement = self._placements.get(key)
        if placement is None:
            backend = self._open(kind, workers, threads)
            target = backend.capabilities.chunk_target  # each backend's own, as FixedPlan's
            # Spread over every thread of processes that run threads.
            placement = Placement(backend, kind, target, share or workers * threads)
            self._placements[key] = placement
        return placement

    def _backend_workers(self, kind: str) -> int:
        if kind == "thread":
            if self._phase == "thread" and self._controller is None:
                # A fixed width (GIL-releasing C code: one thread per CPU): a backend of
                # that many threads, so that the second chunk per thread waits at it.
                decision = self.decisions[-1] if self.decisions else None
                if decision is not None and decision.workers is not None:
                    return decision.workers
            return self._workers or IO_THREAD_CAP
        if kind == "process":
            return self._process_workers or self._workers or self._machine.cpus
        if kind == "asyncio":
            decision = self.decisions[-1] if self.decisions else None
            return (decision.workers if decision else None) or self._workers or ASYNC_TASKS
        return 1

    def _thread_limit(self) -> int:
        if self._controller is not None:
            return self._controller.limit
        decision = self.decisions[-1] if self.decisions else None
        # Two chunks per thread, as for processes: a thread that finishes one starts the next
        # at once rather than after a round trip to this thread (sha256 of 8 MiB items ran
        # 40% slower on two threads with one chunk each in flight).
        return 2 * ((decision.workers if decision else None) or self._workers or 1)

    def _process_limit(self) -> int:
        # Two chunks per worker: the second waits at the backend and starts the moment the
        # first ends, even while this thread is busy running a hedge chunk of its own. For
        # workers that run threads: twice their threads' worth of items (``_process_room``).
        return 2 * self._process_workers * self._process_threads

    def _process_room(self) -> bool:
        """May another chunk go to the processes? On processes that run threads: while fewer
        items than their threads are there (they wait at the backend while the workers
        start, and start at once when they are ready; the threads here serve meanwhile),
        and once one has answered, twice that."""
        if self._process_threads == 1:
            return self._in_flight.get("process", 0) < self._process_limit()
        limit = self._process_limit()
        return self._process_items < (limit if self._answered else limit // 2)

    def _hedging(self) -> bool:
        """Run a chunk in the caller's thread now? Only while no worker process has answered
        (they are starting), one chunk at a time, and never beside an item still running on
        a thread of this process (two GIL-bound threads starve the ones feeding workers)."""
        return (
            not self._answered
            and not self._inline
            and self._in_flight.get("thread", 0) == 0
            and self._remaining() > 0
        )

    def _tick_controller(self, now: float) -> None:
        controller = self._controller
        assert controller is not None
        if self._done >= LITTLE_SAMPLES and self._cpu > 0:
            from ._concurrency import littles_law_width  # imported by ``_adopt`` already

            # The probe was one item, perhaps cold: Little's law again, from finished items.
            width = littles_law_width(
                self._busy / self._done, self._cpu / self._done, cap=controller.cap
            )
            controller.at_least(min(width, 2 * THREAD_START))
        latency = self._tick_busy / self._tick_items if self._tick_items else None
        self._tick_items = 0
        self._tick_busy = 0.0
        running_cpu, running_rate, waiting = self._running_cpu(now)
        # Growth only once what is in flight has started: more chunks queued behind threads
        # still starting buy nothing yet, and the items not started have not shown what they
        # do (a job whose first ten items slept put its ninety CPU-bound ones all on threads,
        # where no revision could move them, before one of them had run).
        controller.tick(
            now=now,
            completed=self._done,
            work_cpu=self._cpu + running_cpu,
            latency=latency,
            backlog=self._blocked and waiting <= controller.limit // 4,
            running_rate=running_rate,
        )
        if self._blocked:
            self._wake = now + controller.interval

    def _running_cpu(self, now: float) -> tuple[float, float | None, int]:
        """What the chunks running on threads have used: CPU seconds so far, and CPU per
        second now, summed over them (None when none is running); and how many chunks sent
        to threads have not started yet.

        Counted with the finished ones' so that the GIL shows as busy while items compute:
        sixty-four items of 30 ms of Python, started at once, all finish two seconds later,
        and until then the finished ones said nothing. The rate (each item's CPU over its
        time since it started) judges the GIL at once, where the running total needs a
        window of ticks, which come late under a busy GIL. At most ``RUNNING_SAMPLE``
        threads are read (a system call each); the other running chunks are taken to be
        alike.
        """
        total = rate = 0.0
        read = running = waiting = 0
        for chunk in self._on_threads:
            ident = chunk.thread
            started = chunk.started_at
            if ident is None or started is None:
                waiting += 1  # queued at the backend, not started
                continue
            running += 1
            if read < RUNNING_SAMPLE:
                cpu_now = self._thread_cpu(ident)
                if cpu_now is not None:
                    used = max(0.0, cpu_now - chunk.thread_cpu)
                    total += used
                    read += 1
                    # Over a tick at least: an item a moment old that got the GIL for that
                    # moment is not using a core. Young items count all the same: leaving
                    # them out once let ten old items that sleep speak for ninety new ones
                    # that compute.
                    rate += used / max(now - started, TICK)
        if not read:
            return 0.0, None, waiting
        return total * running / read, rate * running / read, waiting


class GilMeter:
    """A thread that spins for ``span`` seconds beside thread ``beside`` and measures how many
    cores the two used together.

    Beside an item holding the GIL the two take turns: one core between them, however the
    turns fall. Beside C code that releases the GIL, two cores where two are free. Summing
    both threads' CPU clocks (the process's where there are no per-thread clocks) keeps the
    reading right when the scheduler favours one of them.
    """

    def __init__(self, span: float, beside: int | None) -> None:
        #: CPU seconds of both threads per second of wall time, once measured (else None).
        self.rate: float | None = None
        threading.Thread(
            target=self._run, args=(span, beside), name="manyhands-gil-meter", daemon=True
        ).start()

    def _run(self, span: float, beside: int | None) -> None:
        other = _thread_cpu(beside)
        started, own = time.perf_counter(), time.thread_time()
        process = time.process_time()
        deadline = started + span
        while time.perf_counter() < deadline:
            pass
        wall = max(time.perf_counter() - started, 1e-9)
        other_now = _thread_cpu(beside)
        if other is None or other_now is None:
            self.rate = (time.process_time() - process) / wall
        else:
            self.rate = (time.thread_time() - own + other_now - other) / wall


def pickled_size(value: object, shared: list[int] | None = None) -> int | None:
    """Bytes ``value`` takes pickled as processes would receive it; None if it cannot be.

    Nothing large is copied to find out: the pickle is written to a counter, not kept;
    buffers that travel out of band under protocol 5 (numpy arrays, and anything else that
    gives ``pickle.PickleBuffer``) are counted by their size, and large ``bytes`` and
    ``bytearray`` reach the counter's ``write`` as they are (the C pickler writes a large
    payload straight to the file). A function closing over a 400 MB array costs the probe a
    walk of its objects, not a 400 MB copy (it cost 1 s and 400 MB before).

    ``shared``: given a list, gets the bytes that would reach worker processes through
    shared memory, written once for all of them (out-of-band buffers of ``LARGE_BUFFER``
    bytes or more, where ``SHARES_BUFFERS``), and the values of ``manyhands.shared()``
    handles; the size returned includes them.

    The C pickler first, as the process backend ships (``_plain``): cloudpickle is imported
    only for what must travel by value (27 ms; beside 128 threads busy with HTTP requests,
    the planner's sizing of such a function took 86-141 ms with it).
    """
    from .._plain import PlainPickler

    counter = _Counter()
    try:
        sizer = _sizer(PlainPickler, counter)
        sizer(counter, protocol=5, buffer_callback=counter.buffer).dump(value)
    except Exception:  # what only cloudpickle pickles (by value), or cannot be pickled
        import cloudpickle

        counter = _Counter()
        try:
            sizer = _sizer(cloudpickle.CloudPickler, counter)
            sizer(counter, protocol=5, buffer_callback=counter.buffer).dump(value)
        except Exception:
            return None
    if shared is not None:
        shared.append(counter.shared)
    return counter.written + counter.out_of_band + counter.shared


def _sizer(base: type[Any], counter: _Counter) -> type[Any]:
    """A pickler like ``base`` that counts each ``manyhands.shared()`` handle once."""
    from .._sharing import Shared

    class Sizer(base):  # type: ignore[misc]
        # reducer_override, not persistent_id: the C pickler calls this one for no exact
        # int, str, tuple, list or dict (a persistent_id made sizing a closure over a dict
        # of 300,000 tuples take 445 ms instead of 208 ms).
        def reducer_override(self, obj: object) -> object:
            if type(obj) is Shared:  # its own shared file, written once for every worker
                size = obj.nbytes if obj.nbytes is not None else pickled_size(obj.value)
                if size is None:
                    raise TypeError("its value cannot be pickled")
                if SHARES_BUFFERS:
                    counter.shared += size
                else:
                    counter.out_of_band += size
                return int, ()  # a stand-in: its value is not walked again
            return super().reducer_override(obj)

    return Sizer


class _Counter:
    """A file that counts what is written to it and keeps none of it; ``buffer`` counts the
    out-of-band buffers, and those that would travel shared."""

    def __init__(self) -> None:
        self.written = 0
        self.out_of_band = 0
        self.shared = 0

    def buffer(self, buffer: Any) -> None:
        with memoryview(buffer) as view:
            if travels_shared(view):
                self.shared += view.nbytes
            else:
                self.out_of_band += view.nbytes

    def write(self, data: Any) -> int:
        with memoryview(data) as view:
            self.written += view.nbytes
            return view.nbytes


def _thread_cpu(ident: int | None) -> float | None:
    """CPU seconds used so far by thread ``ident``, where the platform can tell (POSIX)."""
    if ident is None or not hasattr(time, "pthread_getcpuclockid"):
        return None
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (OSError, ValueError, OverflowError):
        return None
