"""The lecture's slow loop, cured five ways and measured; then the race it warns about.

    python examples/lecture.py            # about ten seconds
    python examples/lecture.py --scale 0.1

Part 1 runs ``slow(x)`` (sleep, then return x) the ways the lecture shows: a sequential loop,
one thread per task with start/join, a ThreadPoolExecutor of ten, a multiprocessing Pool, and
manyhands. Part 2 has many threads add to a shared total without a lock and counts the lost
updates; then the same work through manyhands, where each call returns its part and nothing is
shared, loses none.
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import manyhands as mh

TASKS = 20
SLEEP = 0.25  # seconds per call at --scale 1: the sequential loop takes 5 s


def slow(x: int, seconds: float = SLEEP) -> int:
    time.sleep(seconds)
    return x


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def part_one(scale: float) -> None:
    seconds = SLEEP * scale
    tasks = list(range(TASKS))

    def sequential() -> list[int]:
        return [slow(n, seconds) for n in tasks]

    def thread_per_task() -> None:
        threads = [threading.Thread(target=slow, args=(n, seconds)) for n in tasks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def thread_pool() -> list[int]:
        with ThreadPoolExecutor(max_workers=10) as pool:
            return list(pool.map(slow, tasks, [seconds] * TASKS))

    def process_pool() -> list[int]:
        with multiprocessing.Pool() as pool:
            return pool.starmap(slow, [(n, seconds) for n in tasks])

    decisions: list[mh.Decision] = []

    def manyhands_default() -> list[int]:
        with mh.Pool() as pool:  # mh.map(...) exactly, plus the record of its decision
            results = list(pool.map(partial(slow, seconds=seconds), tasks))
            decisions.extend(pool.statistics().decisions)
        return results

    def manyhands_wide() -> list[int]:
        return mh.map(partial(slow, seconds=seconds), tasks, workers=TASKS)

    rows = [
        ("sequential loop", sequential),
        ("one thread per task (start/join)", thread_per_task),
        ("ThreadPoolExecutor(max_workers=10)", thread_pool),
        (f"multiprocessing.Pool() ({mh.available_cpus()} processes)", process_pool),
        ("manyhands.map(slow, items)", manyhands_default),
        (f"manyhands.map(slow, items, workers={TASKS})", manyhands_wide),
    ]
    print(f"The lecture's example: {TASKS} calls of slow(x), each sleeping {seconds:.2f} s\n")
    print(f"{'approach':<46}{'wall time':>10}{'speedup':>9}")
    baseline = None
    for label, run in rows:
        elapsed = timed(run)
        baseline = baseline or elapsed
        print(f"{label:<46}{elapsed:>8.2f} s{baseline / elapsed:>8.1f}x", flush=True)
    print(
        "\nSleeping is waiting, not computing: threads overlap it, and more threads overlap "
        "more.\nProcesses overlap it too, but only as many as there are CPUs, and they cost "
        "a start-up."
    )
    if decisions:
        print(f"\nmanyhands measured the first call and chose: {decisions[0]}")


total = 0


def add_unsafely(amount: int, repeats: int) -> None:
    """Read, switch, write: another thread's update between the read and the write is lost."""
    global total
    for _ in range(repeats):
        current = total
        time.sleep(0)  # a thread switch here, as may happen between any two bytecodes
        total = current + amount


def part_two(threads: int = 50, repeats: int = 100) -> None:
    global total
    expected = threads * repeats
    print(f"\nThe race: {threads} threads each add 1 to a shared total {repeats} times.")
    total = 0
    workers = [threading.Thread(target=add_unsafely, args=(1, repeats)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(f"  shared total, no lock:  {total:>6} of {expected} ({expected - total} updates lost)")

    # The manyhands way: each call returns its part; the caller combines the results, so
    # nothing is shared between threads and no lock is needed.
    parts = mh.map(lambda _: 1, range(expected), backend="thread", workers=threads)
    combined = sum(parts)
    print(f"  manyhands, no lock:     {combined:>6} of {expected} ({expected - combined} lost)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every sleep by this")
    args = parser.parse_args()
    part_one(args.scale)
    part_two()


if __name__ == "__main__":
    main()
