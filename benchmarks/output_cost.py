"""`make bench`: what forwarding workers' output and log records costs (issue: worker logs).

    python benchmarks/output_cost.py [--rounds 9]

Two workloads on ``backend="process"``: 20,000 x 100 us of CPU, and the same with one
``logger.info`` per item while the caller's logging is at WARNING. Each is run with the
default ``output="forward"`` and with ``output="inherit"`` (nothing intercepted), in fresh
processes, interleaved round by round, on all CPUs, on one CPU (``taskset -c 0``, where it
exists) and beside a competing busy process. The cost is the median over rounds of
forward / inherit, with the range of the rounds' ratios.

Fresh processes include starting two workers (150-250 ms here, and its spread is most of the
rounds' spread), so the same pairs are also timed on one warm Pool in one process: there
the ratio shows what forwarding adds to the work itself. Written to
benchmarks/results/output.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from workloads import calibrate  # noqa: E402

WORKLOADS = ["20,000 x 100 us CPU", "20,000 x 100 us CPU, logs INFO at WARNING"]
FORWARD, INHERIT = "manyhands process", "manyhands process, output=inherit"
TARGET = 1.05


def run_case(prefix: list[str], workload: str, tool: str, iterations: int) -> float:
    out = subprocess.run(
        [*prefix, sys.executable, str(HERE / "case.py"), workload, tool, str(iterations)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def warm_rounds(workload: str, iterations: int, rounds: int) -> dict[str, list[float]]:
    """In this process: one warm Pool, the two calls interleaved ``rounds`` times."""
    import logging
    import time

    import manyhands as mh

    from workloads import spin, spin_logging

    logging.basicConfig(level=logging.WARNING)
    fn = spin_logging if "logs" in workload else spin
    items = [iterations] * 20_000
    times: dict[str, list[float]] = {"forward": [], "inherit": []}
    with mh.Pool(backend="process") as pool:
        list(pool.map(fn, items[:2000]))  # the workers started, the function sent
        for round_ in range(rounds):
            order = ["forward", "inherit"] if round_ % 2 == 0 else ["inherit", "forward"]
            for output in order:
                started = time.perf_counter()
                list(pool.map(fn, items, output=output))
                times[output].append(time.perf_counter() - started)
    return times


def run_warm(
    prefix: list[str], workload: str, iterations: int, rounds: int
) -> dict[str, list[float]]:
    out = subprocess.run(
        [*prefix, sys.executable, __file__, "--warm", workload, "--iterations", str(iterations),
         "--rounds", str(rounds)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )  # fmt: skip
    times: dict[str, list[float]] = json.loads(out.stdout.strip().splitlines()[-1])
    return times


def busy() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--warm", metavar="WORKLOAD", help=argparse.SUPPRESS)
    parser.add_argument("--iterations", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warm:  # the child of run_warm
        print(json.dumps(warm_rounds(args.warm, args.iterations, args.rounds)))
        return
    iterations = calibrate(100e-6)
    conditions: list[tuple[str, list[str], bool]] = [("all CPUs", [], False)]
    if shutil.which("taskset"):
        conditions.append(("taskset -c 0", ["taskset", "-c", "0"], False))
    conditions.append(("beside a busy process", [], True))
    lines = [
        f"Median over {args.rounds} interleaved rounds, in fresh processes and on one warm "
        "Pool; the cost is forward / inherit, with the range over rounds.",
        "",
        "| workload | condition | runs | forward (s) | inherit (s) | cost | range | target | met |",
        "|---|---|---|---:|---:|---:|---|---|---|",
    ]
    for workload in WORKLOADS:
        for name, prefix, competing in conditions:
            competitor = busy() if competing else None
            try:
                fresh: dict[str, list[float]] = {"forward": [], "inherit": []}
                for round_ in range(args.rounds):
                    order = [FORWARD, INHERIT] if round_ % 2 == 0 else [INHERIT, FORWARD]
                    for tool in order:
                        key = "forward" if tool == FORWARD else "inherit"
                        fresh[key].append(run_case(prefix, workload, tool, iterations))
                warm = run_warm(prefix, workload, iterations, args.rounds)
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
            for runs, times in (("fresh processes", fresh), ("one warm Pool", warm)):
                line = _row(workload, name, runs, times)
                print(line, file=sys.stderr)
                lines.append(line)
    table = "\n".join(lines)
    print(table)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "output.md").write_text(table + "\n")


def _row(workload: str, condition: str, runs: str, times: dict[str, list[float]]) -> str:
    ratios = [f / i for f, i in zip(times["forward"], times["inherit"], strict=True)]
    cost = statistics.median(ratios)
    forward, inherit = statistics.median(times["forward"]), statistics.median(times["inherit"])
    return (
        f"| {workload} | {condition} | {runs} | {forward:.3f} | {inherit:.3f} | {cost:.3f}x | "
        f"{min(ratios):.2f}-{max(ratios):.2f} | <= {TARGET}x | "
        f"{'yes' if cost <= TARGET else 'NO'} |"
    )


if __name__ == "__main__":
    main()
