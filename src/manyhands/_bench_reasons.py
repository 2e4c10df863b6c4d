"""The reasons behind a ``Comparison``'s verdict, in plain words, from its numbers alone:
how much of an item is waiting, whether the GIL is the limit, what processes cost here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._bench_report import HELPS, WIDE_SPREAD, seconds

if TYPE_CHECKING:
    from ._bench_report import Comparison, Timing

__all__ = ["reasons"]

#: CPU over wall below which an item counts as mostly waiting (the planner's own rule).
WAITING = 0.5
#: An item shorter than this is cheaper to run than to hand to another thread or process.
TINY_ITEM = 50e-6


def reasons(comparison: Comparison) -> tuple[str, ...]:
    loop = comparison.baseline
    said: list[str] = []
    per_item = (loop.wall or 0.0) / comparison.sample
    busy = loop.cpus_busy or 0.0
    computing = min(1.0, busy)
    if comparison.coroutine:
        said.append(
            f"The function is a coroutine function (async def), {seconds(per_item)} an item in "
            "the loop: its items can wait together on one event loop, with no thread or "
            "process each."
        )
    elif computing < WAITING:
        said.append(
            f"An item takes {seconds(per_item)} in the loop, {1 - computing:.0%} of it waiting "
            f"(sleep, network, disk) and {computing:.0%} computing: waits overlap, so threads "
            "help, and more threads help more until the waiting is all overlapped."
        )
    else:
        said.append(
            f"An item takes {seconds(per_item)} in the loop, {computing:.0%} of it computing "
            "on the CPU: only computing on several CPUs at once makes that faster."
        )
    said += _threads(comparison, computing)
    said += _processes(comparison, computing)
    if comparison.cpus == 1:
        said.append(
            "This process may use only 1 CPU (its affinity or container quota): nothing "
            "computes in parallel here, only waiting overlaps."
        )
    if per_item < TINY_ITEM and comparison.fastest.strategy == "loop":
        said.append(
            f"At {seconds(per_item)} an item is shorter than handing it to a thread or a "
            "process costs, so the loop in your own thread wins: keep the loop, or give each "
            "call more work."
        )
    decision = comparison.decision
    if decision is not None and decision.reasons:
        said.append(f"auto's own reason: {decision.reasons[0]}.")
    return tuple(said)


def _best(comparison: Comparison, family: str) -> Timing | None:
    measured = [t for t in comparison.timings if t.family == family and t.measured]
    return min(measured, key=lambda t: t.wall or 0.0) if measured else None


def _threads(comparison: Comparison, computing: float) -> list[str]:
    best = _best(comparison, "threads")
    if best is None:
        return []
    speedup = comparison.speedup(best) or 0.0
    if computing < WAITING:
        return [f"{best.workers} threads ran it {speedup:.1f}x faster than the loop."]
    if speedup < HELPS:
        if not comparison.gil_enabled:
            return [
                f"Threads did not help (at best {speedup:.2f}x, with {best.workers}), though "
                "this Python runs without the GIL: the function's work contends for "
                "something else (memory, a lock)."
            ]
        return [
            f"Threads did not help (at best {speedup:.2f}x, with {best.workers}): Python code "
            "holds the GIL, the lock that lets one thread at a time run Python, so threads "
            "take turns on one CPU."
        ]
    why = (
        "this Python runs without the GIL"
        if not comparison.gil_enabled
        else "the function's work releases the GIL (C code, such as hashing or compression)"
    )
    return [
        f"{best.workers} threads ran it {speedup:.1f}x faster: {why}, so threads compute at once."
    ]


def _processes(comparison: Comparison, computing: float) -> list[str]:
    processes = [t for t in comparison.timings if t.family == "processes"]
    if not processes:
        return []
    costs = _start_cost(comparison)
    best = _best(comparison, "processes")
    if best is None:
        stopped = [t for t in processes if t.over_budget]
        if not stopped:
            return []  # they failed: the notes say why
        fastest = comparison.fastest
        why = (
            "one item waits per process, so only as many waits overlap as there are processes"
            if computing < WAITING
            else "starting them and sending them the work costs more than they gain here"
        )
        return [
            f"Worker processes ran past the budget (more than {seconds(stopped[0].wall or 0.0)}"
            f", where the fastest took {seconds(fastest.wall or 0.0)}): {why}."
        ]
    speedup = comparison.speedup(best) or 0.0
    if speedup >= HELPS and computing < WAITING:
        return [
            f"{best.workers} processes ran it {speedup:.2f}x faster: each waits for one item "
            f"at a time, so only {best.workers} waits overlap, where threads overlap many{costs}."
        ]
    if speedup >= HELPS:
        return [
            f"{best.workers} processes ran it {speedup:.2f}x faster: each has its own "
            f"interpreter and GIL, so they compute on {best.workers} CPUs at once{costs}."
        ]
    return [
        f"Processes did not pay (at best {speedup:.2f}x, with {best.workers}): what they "
        f"add, start-up and shipping items and results, outweighs what they share out{costs}."
    ]


def _start_cost(comparison: Comparison) -> str:
    """What starting a worker process costs here, as a clause: measured by auto's planner
    (it keeps this machine's figure), else the one-process run's time over the loop's when
    both runs were steady enough for the difference to mean something."""
    decision = comparison.decision
    start = None if decision is None else decision.evidence.get("process_start_seconds")
    if isinstance(start, (int, float)) and start > 0:
        return f"; a worker process takes {seconds(float(start))} to start here"
    one = next((t for t in comparison.timings if t.family == "processes" and t.workers == 1), None)
    loop = comparison.baseline
    if one is None or not one.measured or max(one.spread, loop.spread) > WIDE_SPREAD:
        return ""
    extra = (one.wall or 0.0) - (loop.wall or 0.0)
    if extra <= 0:
        return ""
    return f"; one process took {seconds(extra)} longer than the loop (start-up and shipping)"
