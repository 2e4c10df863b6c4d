"""The lecture's slow loop, cured every way it teaches and measured; then the race it warns
about.

    python examples/lecture.py                  # about half a minute
    python examples/lecture.py --scale 0.1 --chart /tmp/lecture.png

Part 1 hands ``slow(x)`` (sleep, then return x) to ``manyhands.bench``, which runs it the ways
the lecture shows, on the same 20 items: a sequential loop, one thread per task with
start/join, a ThreadPoolExecutor of ten, a multiprocessing Pool, and manyhands (auto, threads
of several widths, processes); it prints the table, which is fastest and why, and writes the
chart. Part 2 has many threads add to a shared total without a lock and counts the lost
updates; then the same work through manyhands, where each call returns its part and nothing is
shared, loses none.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from functools import partial

import manyhands as mh

TASKS = 20
SLEEP = 0.25  # seconds per call at --scale 1: the sequential loop takes 5 s
CHART = "lecture-bench.png"


def slow(x: int, seconds: float = SLEEP) -> int:
    time.sleep(seconds)
    return x


def part_one(scale: float, chart: str) -> None:
    seconds = SLEEP * scale
    print(f"The lecture's example: {TASKS} calls of slow(x), each sleeping {seconds:.2f} s\n")
    comparison = mh.bench(partial(slow, seconds=seconds), range(TASKS), sample=TASKS)
    print(comparison)
    try:
        comparison.plot(chart)
    except mh.MissingDependency as exc:  # matplotlib is an extra: the table is the lesson
        print(f"\n(no chart: {exc})")
    else:
        print(f"\nThe chart is in {chart}")
    print(
        "\nSleeping is waiting, not computing: threads overlap it, and more threads overlap "
        "more.\nProcesses overlap it too, but only as many as there are CPUs, and they cost "
        "a start-up."
    )


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
    parser.add_argument("--chart", default=CHART, help=f"where to write the chart ({CHART})")
    args = parser.parse_args()
    part_one(args.scale, args.chart)
    part_two()
    notebook = os.path.relpath(os.path.join(os.path.dirname(__file__), "lecture.ipynb"))
    print(f"\nEvery pattern of the lecture, measured, as a notebook: open {notebook} in Jupyter")


if __name__ == "__main__":
    main()
