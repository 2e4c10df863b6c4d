"""One case of the planner benchmark, in this fresh process; prints its seconds as JSON.

    python benchmarks/planner_case.py WORKLOAD TOOL SPIN_ITERATIONS URL

The clock includes the tool's imports (manyhands, concurrent.futures, multiprocessing alike):
a new user's first call pays them. The workload's own module and its inputs are ready before
the clock starts, as a user's script has them. "later" workloads time a second call in the
same process (imports and first-call costs already paid).
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import planner_workloads as w

CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def inputs(workload: str, spin: int) -> tuple[object, list[object]]:
    if workload == "sleep":
        return w.sleep_50ms, list(range(1000))
    if workload.startswith("http"):
        count = int(workload[4:])
        return w.fetch, [w.URL] * count
    if workload == "sha256":
        return w.sha256, [bytes(range(256)) * (8 << 12)] * 160  # 8 MiB, one buffer
    if workload == "zlib":
        block = os.urandom(1 << 19) + bytes(1 << 19)  # 1 MiB, half of it compressible
        return w.compress, [block] * 120
    if workload == "cpu8":
        return w.spin, [spin] * 8
    if workload == "cpu20k":
        return w.spin, [spin] * 20_000
    if workload.startswith("square"):
        return w.square, list(range(200_000))
    if workload == "crc":
        return w.crc, [os.urandom(1 << 20) for _ in range(200)]
    raise SystemExit(f"unknown workload {workload!r}")


def run(tool: str, fn: object, items: list[object]) -> list[object]:
    call = fn  # type: ignore[assignment]
    if tool == "loop":
        return [call(x) for x in items]  # type: ignore[operator]
    if tool.startswith("ThreadPoolExecutor"):
        from concurrent.futures import ThreadPoolExecutor

        width = int(tool.split("(")[1].rstrip(")")) if "(" in tool else None
        with ThreadPoolExecutor(width) as executor:
            return list(executor.map(call, items))  # type: ignore[arg-type]
    if tool == "multiprocessing.Pool":
        from multiprocessing import Pool

        with Pool(CPUS) as pool:
            return pool.map(call, items)  # type: ignore[arg-type]
    if tool == "ProcessPoolExecutor":
        from concurrent.futures import ProcessPoolExecutor

        chunksize = max(1, len(items) // (4 * CPUS))  # as multiprocessing.Pool chooses
        with ProcessPoolExecutor(CPUS) as executor:
            return list(executor.map(call, items, chunksize=chunksize))  # type: ignore[arg-type]
    if tool.startswith("manyhands"):
        import manyhands as mh

        words = tool.split()
        if words[1] == "auto":
            return mh.map(call, items)  # type: ignore[arg-type]
        workers = int(words[2]) if len(words) > 2 else None
        if words[1] == "processes":  # a process per CPU, each running that many threads
            backend = mh.Processes(threads=workers or 1)
            return mh.map(call, items, backend=backend)  # type: ignore[arg-type]
        return mh.map(call, items, backend=words[1], workers=workers)  # type: ignore[arg-type]
    raise SystemExit(f"unknown tool {tool!r}")


def main() -> None:
    workload, tool, spin, url = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    w.URL = url
    fn, items = inputs(workload, spin)
    if workload.endswith("later"):
        run(tool, fn, items)  # the first call, untimed
    started = time.perf_counter()
    results = run(tool, fn, items)
    elapsed = time.perf_counter() - started
    expected = [fn(x) for x in items[:3]]  # type: ignore[operator]
    assert results[:3] == expected, (results[:3], expected)
    assert len(results) == len(items)
    print(json.dumps({"seconds": elapsed}))


if __name__ == "__main__":
    main()
