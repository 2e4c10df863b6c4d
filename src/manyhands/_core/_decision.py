"""The auto decision: which backend runs a job, from what its first items were measured to do.

``decide`` is a pure function of an ``Evidence`` record, so every rule is tested on its own
(``tests/core/test_decision.py``); ``backends/auto.py`` gathers the evidence while the first
items run, and never runs an item twice to decide.

The rules, in order:

1. a coroutine function runs on asyncio;
2. an item shorter than ``TINY_ITEM`` runs in the caller's thread: any hand-off costs more;
3. mostly waiting (CPU below half of wall time) runs on threads, which overlap the waiting;
4. CPU-bound on a free-threaded build with the GIL disabled runs on threads, one per CPU;
5. CPU-bound work goes to processes when the estimated parallel time (start-up, the work
   shared out, shipping items and results) beats the serial time by a clear margin, and runs
   in the caller's thread otherwise (one CPU, unpicklable data, or too little work). An item
   still running when measured gives only a lower bound; then processes are chosen when
   there are more items than CPUs, since the bet risks a start-up and saves most of the run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["Decision", "Evidence", "decide"]

#: Below this many seconds per item, no hand-off to another thread or process pays.
TINY_ITEM = 20e-6
#: CPU time over wall time below which a function counts as mostly waiting.
WAITING_RATIO = 0.5
#: What starting the worker processes costs, in seconds (measured: 40-60 ms here).
PROCESS_START = 0.06
#: Bytes per second through pickle, a socket and unpickle, each way (measured: ~1 GB/s).
TRANSFER_RATE = 1e9
#: Seconds of fixed cost per item shipped to a process, beyond its bytes.
PER_ITEM_SHIPPING = 2e-6
#: Processes must promise at most this fraction of the serial time to be chosen.
MARGIN = 0.8
#: Assumed items when the input has no length (a generator): enough to reward parallelism.
UNKNOWN_LENGTH = 1000
#: Thread concurrency cap for waiting work when ``workers`` is not given.
IO_THREAD_CAP = 256
#: Concurrent coroutines when ``workers`` is not given.
ASYNC_TASKS = 1024


@dataclass(frozen=True)
class Evidence:
    """What was measured of a job before deciding (times are per item, in seconds)."""

    coroutine: bool
    seconds_per_item: float
    cpu_per_item: float
    #: Pickled size of one item and of one result; None when it could not be pickled.
    item_bytes: int | None
    result_bytes: int | None
    function_picklable: bool
    #: Items in the input, when it has a length.
    items: int | None
    cpus: int
    gil_enabled: bool
    #: Whether the measurement came from a finished item (False: still running, a lower bound).
    complete: bool = True

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
            }
        )


@dataclass(frozen=True)
class Decision:
    """Where a job runs and why: ``backend``, ``workers``, ``chunksize``, reasons, evidence.

    ``workers`` is None when threads adapt their number to the work (waiting work under
    ``backend="auto"`` with no ``workers=``); ``chunksize`` is the size the engine aims at,
    from the measured time per item. ``revised`` is True for the one revision a run may make
    when the work changes character.
    """

    backend: str
    workers: int | None
    chunksize: int
    reasons: tuple[str, ...]
    evidence: Mapping[str, float | int | bool | None] = field(
        default_factory=lambda: MappingProxyType({})
    )
    revised: bool = False

    def __str__(self) -> str:
        workers = "adaptive" if self.workers is None else str(self.workers)
        head = f"{self.backend} (workers: {workers}, chunksize: {self.chunksize})"
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
    return dataclasses.replace(
        decision,
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

    def made(backend: str, count: int | None, target: float, *reasons: str) -> Decision:
        size = 1 if wall <= 0 else max(1, min(8192, int(target / max(wall, 1e-9))))
        return Decision(backend, count, size, reasons, facts, revised)

    if evidence.coroutine:
        return made(
            "asyncio",
            workers or ASYNC_TASKS,
            0.005,
            "the function is a coroutine function (async def): coroutines wait together on "
            "one event loop",
        )
    if wall < TINY_ITEM and evidence.complete:
        return made(
            "serial",
            1,
            0.01,
            f"an item takes {_time(wall)}: handing it to another thread or process costs "
            "more than running it here",
        )
    if evidence.cpu_ratio < WAITING_RATIO:
        waiting = 1 - evidence.cpu_ratio
        return made(
            "thread",
            workers,
            0.005,
            f"the function waits {waiting:.0%} of the time ({_time(cpu)} of CPU in "
            f"{_time(wall)}): threads overlap the waiting",
            "thread count adapts to the throughput"
            if workers is None
            else f"workers={workers} as given",
        )
    busy = f"CPU-bound ({evidence.cpu_ratio:.0%} of the time on the CPU)"
    if not evidence.gil_enabled:
        return made(
            "thread",
            workers or evidence.cpus,
            0.005,
            busy,
            "free-threaded Python with the GIL disabled: threads run Python in parallel",
        )
    if evidence.cpus < 2 and workers is None:
        return made("serial", 1, 0.01, busy, "one CPU: parallel workers cannot speed this up")
    if not evidence.function_picklable or evidence.item_bytes is None:
        what = "the function" if not evidence.function_picklable else "the items"
        return made(
            "serial",
            1,
            0.01,
            busy,
            f"{what} cannot be pickled, so processes cannot run it, and threads do not "
            "speed up CPU-bound Python",
        )
    count = workers or evidence.cpus
    items = evidence.items if evidence.items is not None else UNKNOWN_LENGTH
    if items > 0:
        count = min(count, items)
    if not evidence.complete and items > evidence.cpus:
        # The probe item is still on the CPU: its time so far is only a lower bound. Betting
        # on processes risks their start-up; betting on one thread risks most of the run.
        return made(
            "process",
            count,
            0.05,
            busy,
            f"an item has used {_time(cpu)} of CPU and is still running: with {items} items, "
            f"{count} processes pay",
        )
    shipping = (evidence.item_bytes + (evidence.result_bytes or 0)) / TRANSFER_RATE
    shipping += PER_ITEM_SHIPPING
    serial_time = cpu * items
    parallel_time = PROCESS_START + items * (cpu / max(count, 1) + shipping)
    if count > 1 and parallel_time < MARGIN * serial_time:
        return made(
            "process",
            count,
            0.05,
            busy,
            f"{count} processes: about {_time(parallel_time)} for {items} items against "
            f"{_time(serial_time)} in one thread",
        )
    return made(
        "serial",
        1,
        0.01,
        busy,
        f"processes would take about {_time(parallel_time)} (start-up {_time(PROCESS_START)}, "
        f"shipping {_time(shipping)} an item) against {_time(serial_time)} here",
    )


def _time(seconds: float) -> str:
    if seconds >= 1 or seconds == 0 or math.isinf(seconds):
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} us"
