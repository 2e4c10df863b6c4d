"""`make bench`: large data (issue 12): a function closing over a 400 MB array, large results,
and numpy's own threads, against the plain loop, a fork Pool, joblib and ProcessPoolExecutor.

    python benchmarks/large_data.py [--rounds 5] [--conditions normal,one-cpu,busy]

Each (case, tool) runs in a fresh process (``--case CASE --tool TOOL``), the tools of a case
interleaved round by round; imports are inside the clock for every tool alike, the array is
made before it. The machine's extra memory during the call is MemTotal - MemAvailable,
sampled every 10 ms, over what it was just before the call. Medians over the rounds, with
the range. Written to benchmarks/results/large_data.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent
MB = 10**6
ARRAY_ITEMS = 50 * 2**20  # float64: 419 MB
RESULT_ITEMS = 2**20  # float64: 8.4 MB

CASES = {
    "closure 400 MB, 32 x 60 ms": [
        "loop", "fork Pool", "joblib", "ProcessPoolExecutor", "manyhands process",
        "manyhands auto",
    ],
    "closure 400 MB, 40 x 0.5 ms": ["loop", "manyhands auto"],
    "100 results of 8 MB": ["loop", "fork Pool", "ProcessPoolExecutor", "manyhands process"],
    "matrix multiply, 16 x 1200^2": [
        "loop", "fork Pool", "ProcessPoolExecutor", "manyhands process",
    ],
}  # fmt: skip

ARRAY = None  # the case's array, made before the clock (a module global: fork inherits it)


def spin(seconds: float) -> None:
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass


def reads_long(x: int) -> float:
    spin(0.06)
    return float(ARRAY[x])  # type: ignore[index]


def reads_short(x: int) -> float:
    spin(0.0005)
    return float(ARRAY[x])  # type: ignore[index]


def makes_result(x: int) -> object:
    import numpy as np

    return np.full(RESULT_ITEMS, float(x))


def multiplies(seed: int) -> float:
    import numpy as np

    rng = np.random.default_rng(seed)
    a, b = rng.random((1200, 1200)), rng.random((1200, 1200))
    return float((a @ b).sum())


def _memory_in_use() -> int:
    fields = {}
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            name, value = line.split(":", 1)
            fields[name] = int(value.split()[0]) * 1024
    return fields["MemTotal"] - fields["MemAvailable"]


def run_one(case: str, tool: str) -> dict[str, float]:
    """In a fresh process: the case's data, then the tool, on the clock."""
    global ARRAY
    fn, items = _workload(case)
    if "closure" in case:
        import numpy as np

        ARRAY = np.arange(ARRAY_ITEMS, dtype=np.float64)
    baseline = _memory_in_use()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _memory_in_use())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    results = _run(tool, fn, items)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _memory_in_use())
    assert len(results) == len(items)
    return {"seconds": seconds, "extra_memory": max(0, peak[0] - baseline)}


def _workload(case: str) -> tuple[object, list[int]]:
    if case.startswith("closure 400 MB, 32"):
        return reads_long, list(range(32))
    if case.startswith("closure 400 MB, 40"):
        return reads_short, list(range(40))
    if case.startswith("100 results"):
        return makes_result, list(range(100))
    return multiplies, list(range(16))


def _run(tool: str, fn: object, items: list[int]) -> list[object]:
    if tool == "loop":
        return [fn(x) for x in items]  # type: ignore[operator]
    if tool == "fork Pool":
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(2) as pool:
            return pool.map(fn, items)  # type: ignore[arg-type]
    if tool == "ProcessPoolExecutor":
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(2) as executor:
            return list(executor.map(fn, items))  # type: ignore[arg-type]
    if tool == "joblib":
        from joblib import Parallel, delayed

        return list(Parallel(n_jobs=2)(delayed(fn)(x) for x in items))
    import manyhands as mh

    backend = "process" if tool == "manyhands process" else "auto"
    return mh.map(fn, items, backend=backend)  # type: ignore[arg-type]


# -- the rounds ------------------------------------------------------------------------------

CONDITIONS = {
    "normal": [],
    "one-cpu": ["taskset", "-c", "0"],
    "busy": [],  # beside a competing busy process, started for the condition
}


def measure(case: str, tool: str, prefix: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [*prefix, sys.executable, str(Path(__file__)), "--case", case, "--tool", tool],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--conditions", default="normal,one-cpu,busy")
    parser.add_argument("--case")
    parser.add_argument("--tool")
    args = parser.parse_args()
    if args.case is not None:
        print(json.dumps(run_one(args.case, args.tool)))
        return
    lines = [
        "| condition | case | tool | wall, s (median, range) | extra memory, MB (median) |",
        "|---|---|---|---|---|",
    ]
    verdicts: list[str] = []
    for condition in args.conditions.split(","):
        prefix = CONDITIONS[condition]
        if prefix and shutil.which(prefix[0]) is None:
            continue
        busy = None
        if condition == "busy":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for case, tools in CASES.items():
                walls: dict[str, list[float]] = {tool: [] for tool in tools}
                memory: dict[str, list[float]] = {tool: [] for tool in tools}
                for _ in range(args.rounds):
                    for tool in tools:
                        result = measure(case, tool, prefix)
                        walls[tool].append(result["seconds"])
                        memory[tool].append(result["extra_memory"] / MB)
                for tool in tools:
                    runs = walls[tool]
                    lines.append(
                        f"| {condition} | {case} | {tool} | {statistics.median(runs):.3f} "
                        f"({min(runs):.3f}-{max(runs):.3f}) | "
                        f"{statistics.median(memory[tool]):.0f} |"
                    )
                    print(lines[-1], flush=True)
                verdicts += _targets(condition, case, walls, memory)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    report = "\n".join([*lines, "", *verdicts])
    print("\n" + "\n".join(verdicts))
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "large_data.md").write_text(report + "\n")


def _targets(
    condition: str, case: str, walls: dict[str, list[float]], memory: dict[str, list[float]]
) -> list[str]:
    """The issue's targets for the case, as ratios of medians: met or not."""

    def m(tool: str) -> float:
        return statistics.median(walls[tool])

    def mem(tool: str) -> float:
        return statistics.median(memory[tool])

    said: list[str] = []

    def check(what: str, value: float, limit: float) -> None:
        met = "met" if value <= limit else "NOT met"
        said.append(f"- {condition}, {case}: {what} {value:.2f} (target <= {limit}): {met}")

    array_mb = ARRAY_ITEMS * 8 / MB
    if case.startswith("closure 400 MB, 32"):
        check("process / fork Pool", m("manyhands process") / m("fork Pool"), 1.3)
        check("process extra memory / array", mem("manyhands process") / array_mb, 1.25)
        best = min(m("loop"), m("manyhands process"))
        check("auto / better of loop and process", m("manyhands auto") / best, 1.1)
    elif case.startswith("closure 400 MB, 40"):
        check("auto / loop", m("manyhands auto") / m("loop"), 1.5)
    elif case.startswith("100 results"):
        check(
            "process / ProcessPoolExecutor", m("manyhands process") / m("ProcessPoolExecutor"), 1.2
        )
        results_mb = 100 * RESULT_ITEMS * 8 / MB
        check("process extra memory / results", mem("manyhands process") / results_mb, 1.5)
    else:
        check("2 processes / one process alone", m("manyhands process") / m("loop"), 1.0)
    return said


if __name__ == "__main__":
    main()
