"""The auto decision: where a job runs, from what its first items and this machine measured.

``decide`` is a pure function of an ``Evidence`` record, so every rule is tested on its own
(``tests/core/test_decision.py``); the planner (``_core/_auto.py``) gathers the evidence while
the first items run, and never runs an item twice to decide. Nothing here is a figure measured
on another machine: what starting worker processes, handing an item to a thread and shipping
bytes cost comes from ``Evidence`` (``_core/_machine.py`` measures them here).

The rules, in order:

1. a coroutine function runs on asyncio;
2. mostly waiting (CPU below half of wall time) runs on threads, which overlap the waiting,
   unless the item is so short that a hand-off to a thread costs more than it waits; waiting
   work whose CPU kept one GIL busy on threads (``gil_saturated``: a revision's evidence) runs
   on processes that each run that many threads, when the CPU left, shared out, pays for
   starting them;
3. CPU-bound on a free-threaded build with the GIL disabled, or C code that releases the GIL
   (two threads were measured to run at once), runs on threads, one per CPU;
4. other CPU-bound work goes to processes when the estimated parallel time (start-up, the work
   shared out, shipping items and results) beats the serial time by a clear margin, and runs
   in the caller's thread otherwise (one CPU, unpicklable data, or too little work). An item
   still running when measured gives only a lower bound; then processes are chosen when
   there are more items than CPUs (the planner hedges that bet: the caller's thread keeps
   running items until the processes are ready).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

from .._system import inner_threads
from ._records import NamedTuple

__all__ = [
    "ASYNC_TASKS",
    "IO_THREAD_CAP",
    "UNMEASURED_START",
    "Decision",
    "Evidence",
    "decide",
    "inner_threads_reason",
    "thread_limit_reason",
]

#: CPU time over wall time below which a function counts as mostly waiting.
WAITING_RATIO = 0.5
#: An item shorter than this many thread hand-offs gains nothing from threads.
HANDOFFS_PER_ITEM = 2
#: Items a short item's times must be the mean of before they can send it to processes.
FEW_SAMPLES = 100
#: Processes must promise at most this fraction of the serial time to be chosen.
MARGIN = 0.8
#: Assumed items when the input has no length (a generator): enough to reward parallelism.
UNKNOWN_LENGTH = 1000
#: Copies of the data that the measured transfer rate stands for: a pickle round trip
#: (``dumps`` and ``loads``, timed by ``_machine``) and as much again for the socket. Buffers
#: shared with the workers are copied once, into shared memory.
COPIES_PER_TRANSFER = 4
#: Thread concurrency cap for waiting work when ``workers`` is not given.
IO_THREAD_CAP = 1024
#: Concurrent coroutines when ``workers`` is not given.
ASYNC_TASKS = 1024
#: Seconds worker processes are taken to need before any has been measured on this machine
#: (a fresh interpreter's usual start-up). Used only until the first measurement: the process
#: backend measures every start, and ``Machine`` keeps the figure across processes.
UNMEASURED_START = 0.05
#: Threads beyond the CPUs that C code releasing the GIL runs on where other processes'
#: threads were running or ready all through the scaling test: with more runnable
#: threads, the scheduler gives this process a larger share of the CPUs (beside a process
#: spinning on one of two CPUs, zlib took 0.78x and sha256 0.72x the time of two threads on
#: six; on an idle machine, six were 1.01-1.02x). Four, as ``ThreadPoolExecutor``'s
#: default width (``min(32, cpus + 4)``).
CONTENDED_EXTRA = 4


class Evidence(NamedTuple):
    """What was measured of a job and this machine before deciding (per item, in seconds)."""

    coroutine: bool
    seconds_per_item: float
    cpu_per_item: float
    #: Pickled size of one item and of one result; None when it could not be pickled.
    item_bytes: int | None
    result_bytes: int | None
    function_picklable: bool
    #: Items in the input (still to run, for a revision), when it has a length.
    items: int | None
    cpus: int
    gil_enabled: bool
    #: Whether the measurement came from a finished item (False: still running, a lower bound).
    complete: bool = True
    #: Seconds a round trip to a worker thread costs beyond the item (measured by the probe).
    handoff: float = 0.0
    #: Seconds until worker processes are ready, measured here; None: not measured yet.
    process_start: float | None = None
    #: Bytes per second through pickle and a socket, each way.
    transfer_rate: float = 1e9
    #: Whether two threads ran this function at once (C code releasing the GIL); None: not
    #: measured (then assumed not).
    threads_scale: bool | None = None
    #: How many items the times are the mean of: one item of a few microseconds, measured
    #: alone and cold, says little about its cost in a loop.
    samples: int = 1
    #: Pickled size of the function with everything it reaches (its closure's arrays...):
    #: each worker process receives it once...
    function_bytes: int = 0
    #: ... but for these bytes of it, large buffers written once into shared memory and
    #: mapped by every worker.
    shared_bytes: int = 0
    #: Whether a library with its own threads (BLAS, OpenMP) loaded here can be limited
    #: (threadpoolctl is installed); None: none is loaded (``_system.native_thread_limiter``).
    native_threads: bool | None = None
    #: On threads, the items' CPU kept this process's GIL busy (the waiting work's limit)...
    gil_saturated: bool = False
    #: ... with this many in flight.
    thread_width: int = 0
    #: Threads of other processes running or ready to run, the fewest seen at the start and
    #: the end of the scaling test (``_system.others_running``); None: not measured.
    others_running: int | None = None

    @property
    def start_cost(self) -> float:
        """Seconds until worker processes are ready: measured, or ``UNMEASURED_START``."""
        return UNMEASURED_START if self.process_start is None else self.process_start

    @property
    def cpu_ratio(self) -> float:
        return self.cpu_per_item / self.seconds_per_item if self.seconds_per_item > 0 else 1.0

    def as_mapping(self) -> Mapping[str, float | int | bool | None]:
        return MappingProxyType(
            {
                "coroutine": self.coroutine,
                "seconds_per_item": self.seconds_per_item,
                "cpu_per_item": self.cpu_per_item,
                "cpu_ratio": self.cpu_ratio,
                "item_bytes": self.item_bytes,
                "result_bytes": self.result_bytes,
                "function_picklable": self.function_picklable,
                "items": self.items,
                "cpus": self.cpus,
                "gil_enabled": self.gil_enabled,
                "measured_a_finished_item": self.complete,
                "thread_handoff_seconds": self.handoff,
                "process_start_seconds": self.process_start,
                "transfer_bytes_per_second": self.transfer_rate,
                "threads_scale": self.threads_scale,
                "samples": self.samples,
                "function_bytes": self.function_bytes,
                "shared_bytes": self.shared_bytes,
                "native_threads": self.native_threads,
                "gil_saturated": self.gil_saturated,
                "thread_width": self.thread_width,
                "others_running": self.others_running,
            }
        )


class Decision(NamedTuple):
    """Where a job runs and why: ``backend``, ``workers``, ``chunksize``, reasons, evidence.

    ``workers`` is None when threads adapt their number to the work (waiting work under
    ``backend="auto"`` with no ``workers=``); ``chunksize`` is the size the engine aims at,
    from the measured time per item. ``revised`` is True for a revision: the planner keeps
    checking a decision against what the job does, and changes it when the work turns out
    otherwise. ``threads``: for ``"process"``, the items each worker runs at once on threads
    of its own (``manyhands.Processes(threads=)``).
    """

    backend: str
    workers: int | None
    chunksize: int
    reasons: tuple[str, ...]
    evidence: Mapping[str, float | int | bool | None] = MappingProxyType({})
    revised: bool = False
    threads: int = 1

    def __str__(self) -> str:
        workers = "adaptive" if self.workers is None else str(self.workers)
        each = f", threads: {self.threads} each" if self.threads > 1 else ""
        head = f"{self.backend} (workers: {workers}{each}, chunksize: {self.chunksize})"
        return head + "".join(f"\n  - {reason}" for reason in self.reasons)


def decide(
    evidence: Evidence,
    *,
    workers: int | None = None,
    revised: bool = False,
    stoppable: bool = False,
) -> Decision:
    """The backend for a job that behaves as ``evidence`` says; ``workers`` is the caller's.

    ``stoppable``: items have a deadline, so they must run where they can be stopped, never
    in the caller's thread; the rules' "serial" becomes threads.
    """
    decision = _decide(evidence, workers=workers, revised=revised)
    if not stoppable or decision.backend != "serial":
        return decision
    return decision._replace(
        backend="thread",
        workers=workers or evidence.cpus,
        reasons=(
            *decision.reasons,
            "timeout= needs a worker that can be stopped, so threads rather than the caller's",
        ),
    )


def _decide(evidence: Evidence, *, workers: int | None, revised: bool) -> Decision:
    facts = evidence.as_mapping()
    wall = evidence.seconds_per_item
    cpu = evidence.cpu_per_item

    def made(
        backend: str, count: int | None, target: float, *reasons: str, threads: int = 1
    ) -> Decision:
        size = 1 if wall <= 0 else max(1, min(8192, int(threads * target / max(wall, 1e-9))))
        if backend == "process" and count is not None:
            reasons = (*reasons, inner_threads_reason(count, evidence.cpus))
        elif backend == "thread" and count != 1 and evidence.native_threads is not None:
            limited = evidence.native_threads  # one thread alone is not limited
            reasons = (*reasons, thread_limit_reason(count, evidence.cpus, limited=limited))
        return Decision(backend, count, size, reasons, facts, revised, threads)

    if evidence.coroutine:
        return made(
            "asyncio",
            workers or ASYNC_TASKS,
            0.005,
            "the function is a coroutine function (async def): coroutines wait together on "
            "one event loop",
        )
    handoff = evidence.handoff
    if evidence.cpu_ratio < WAITING_RATIO and evidence.gil_saturated:
        spread = _spread_waiting(evidence, workers)
        if spread is not None:
            count, parallel_time, gil_time = spread
            width = max(1, evidence.thread_width)
            return made(
                "process",
                count,
                0.05,
                f"the function waits {1 - evidence.cpu_ratio:.0%} of the time, but "
                f"{_time(cpu)} of CPU an item kept this process's GIL busy with {width} "
                "threads: that, not the waiting, was the limit",
                f"{_processes(count)} of {width} threads each share that CPU out: about "
                f"{_time(parallel_time)} of CPU for the {evidence.items} items left, against "
                f"{_time(gil_time)} on one GIL",
                threads=width,
            )
    if evidence.cpu_ratio < WAITING_RATIO and wall >= HANDOFFS_PER_ITEM * handoff:
        waiting = 1 - evidence.cpu_ratio
        return made(
            "thread",
            workers,
            0.005,
            f"the function waits {waiting:.0%} of the time ({_time(cpu)} of CPU in "
            f"{_time(wall)}): threads overlap the waiting",
            "the thread count starts where Little's law puts it and adapts to the throughput"
            if workers is None
            else f"workers={workers} as given",
        )
    if evidence.cpu_ratio < WAITING_RATIO or wall < HANDOFFS_PER_ITEM * handoff:
        short = (
            f"an item takes {_time(wall)}, and handing it to a thread costs {_time(handoff)} here"
        )
    else:
        short = ""
    busy = f"CPU-bound ({evidence.cpu_ratio:.0%} of the time on the CPU)"
    if evidence.threads_scale and evidence.cpu_ratio >= WAITING_RATIO:
        # Measured, not guessed: short items too, since they travel to threads in chunks.
        why = (
            "two threads ran it at once (its C code releases the GIL): threads share memory "
            "and need no pickling"
        )
        others = evidence.others_running
        if workers is None and others:
            width = min(32, evidence.cpus + CONTENDED_EXTRA)
            beside = (
                f"other processes compete for the CPUs ({others} of their threads running "
                f"or ready all through the test): {width} threads, more than the CPUs, get "
                "this process a larger share of them"
            )
            return made("thread", width, 0.005, busy, why, beside)
        return made("thread", workers or evidence.cpus, 0.005, busy, why)
    if short and evidence.samples < FEW_SAMPLES:
        return made(
            "serial",
            1,
            0.01,
            short,
            "it runs here, in chunks; measured over many items, it moves to processes if "
            "they would pay",
        )
    if not short and not evidence.gil_enabled:
        return made(
            "thread",
            workers or evidence.cpus,
            0.005,
            busy,
            "free-threaded Python with the GIL disabled: threads run Python in parallel",
        )
    first = short or busy
    if evidence.cpus < 2 and workers is None:
        return made("serial", 1, 0.01, first, "one CPU: parallel workers cannot speed this up")
    if not evidence.function_picklable or evidence.item_bytes is None:
        what = "the function" if not evidence.function_picklable else "the items"
        return made(
            "serial",
            1,
            0.01,
            first,
            f"{what} cannot be pickled, so processes cannot run it, and threads do not "
            "speed up CPU-bound Python",
        )
    count = workers or evidence.cpus
    items = evidence.items if evidence.items is not None else UNKNOWN_LENGTH
    if items > 0:
        count = min(count, items)
    if not evidence.complete and items > evidence.cpus:
        # The probe item is still on the CPU: its time so far is only a lower bound. Betting
        # on processes risks little: the caller's thread goes on running items meanwhile.
        return made(
            "process",
            count,
            0.05,
            busy,
            f"an item has used {_time(cpu)} of CPU and is still running: with {items} items, "
            f"{_processes(count)} pay (this thread runs items until they are ready)",
        )
    shipping = (evidence.item_bytes + (evidence.result_bytes or 0)) / evidence.transfer_rate
    serial_time = cpu * items
    # The caller's thread runs items until the workers are ready: a start-up delays the gain
    # (the workers run less of the job), it does not stall it.
    start = evidence.start_cost
    # Each worker receives the function once, with all it reaches that is not shared (a
    # closure over 400 MB of bytes is 400 MB per worker); shared buffers are copied once.
    sent = count * evidence.function_bytes + evidence.shared_bytes / COPIES_PER_TRANSFER
    sending = sent / evidence.transfer_rate
    parallel_time = start + sending + items * (cpu / count + shipping)
    if count > 1 and parallel_time < MARGIN * serial_time:
        return made(
            "process",
            count,
            0.05,
            first,
            f"{_processes(count)}: about {_time(parallel_time)} for {items} items against "
            f"{_time(serial_time)} in one thread",
        )
    measured = "measured" if evidence.process_start is not None else "not measured yet"
    function = (
        f"; sending the function, {(evidence.function_bytes + evidence.shared_bytes) / 2**20:.0f}"
        f" MB with what it reaches: {_time(sending)}"
        if sending >= 0.1 * parallel_time
        else ""
    )
    return made(
        "serial",
        1,
        0.01,
        first,
        f"processes would take about {_time(parallel_time)} (start-up {_time(start)}, "
        f"{measured}; shipping {_time(shipping)} an item{function}) against "
        f"{_time(serial_time)} here",
    )


def _spread_waiting(evidence: Evidence, workers: int | None) -> tuple[int, float, float] | None:
    """For waiting work that keeps one GIL busy: (processes, their time, one GIL's time) when
    processes that each run threads would beat it by a clear margin; else None. Not where
    ``workers=`` fixed the width, on one CPU, a free-threaded build, or what cannot travel."""
    if workers is not None or evidence.cpus < 2 or not evidence.gil_enabled:
        return None
    if not evidence.function_picklable or evidence.item_bytes is None:
        return None
    items = evidence.items if evidence.items is not None else UNKNOWN_LENGTH
    count = evidence.cpus
    gil_time = evidence.cpu_per_item * items  # the GIL is the limit: its CPU, one at a time
    shipping = (evidence.item_bytes + (evidence.result_bytes or 0)) / evidence.transfer_rate
    sent = count * evidence.function_bytes + evidence.shared_bytes / COPIES_PER_TRANSFER
    parallel_time = (
        evidence.start_cost
        + sent / evidence.transfer_rate
        + items * (evidence.cpu_per_item / count + shipping)
    )
    if parallel_time < MARGIN * gil_time:
        return count, parallel_time, gil_time
    return None


def inner_threads_reason(workers: int, cpus: int) -> str:
    """What worker processes' native libraries may start (``backends._limits`` sets it)."""
    threads = inner_threads(workers, cpus)
    plural = "thread" if threads == 1 else "threads"
    return (
        f"BLAS and OpenMP get {threads} {plural} in each process ({workers} x {threads} <= "
        f"{cpus} CPUs), unless OMP_NUM_THREADS and the like are set in your environment"
    )


def thread_limit_reason(threads: int | None, cpus: int, *, limited: bool) -> str:
    """What this process's native libraries may start beside the thread backend's threads
    (``backends._limits.hold_thread_limit``): said when one is loaded; ``limited``: whether
    threadpoolctl can limit them (``Evidence.native_threads``)."""
    width = cpus if threads is None else min(threads, cpus)
    limit = inner_threads(width, cpus)
    plural = "thread" if limit == 1 else "threads"
    if not limited:
        return (
            "a library with its own threads (BLAS, OpenMP) is loaded, and cannot be limited "
            "without threadpoolctl: install manyhands[blas] so that threads x its threads <= "
            f"{cpus} CPUs"
        )
    return (
        f"BLAS and OpenMP get {limit} {plural} while the job's threads run (threadpoolctl; "
        f"{width} x {limit} <= {cpus} CPUs), unless OMP_NUM_THREADS and the like are set"
    )


def _processes(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"


def _time(seconds: float) -> str:
    if seconds >= 1 or seconds == 0 or math.isinf(seconds):
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} us"
