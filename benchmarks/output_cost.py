"""`make bench`: what forwarding workers' output and log records costs (issue: worker logs).

    python benchmarks/output_cost.py [--rounds 5]

Two workloads on ``backend="process"``: 20,000 x 100 us of CPU, and the same with one
``logger.info`` per item while the caller's logging is at WARNING. Each is run with the
default ``output="forward"`` and with ``output="inherit"`` (nothing intercepted), in fresh
processes, interleaved round by round, on all CPUs, on one CPU (``taskset -c 0``, where it
exists) and beside a competing busy process. The cost is the median over rounds of
forward / inherit, with the range of the rounds' ratios. Written to
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


def busy() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    iterations = calibrate(100e-6)
    conditions: list[tuple[str, list[str], bool]] = [("all CPUs", [], False)]
    if shutil.which("taskset"):
        conditions.append(("taskset -c 0", ["taskset", "-c", "0"], False))
    conditions.append(("beside a busy process", [], True))
    lines = [
        f"Median over {args.rounds} interleaved rounds of fresh-process runs; the cost is "
        "forward / inherit, with the range over rounds.",
        "",
        "| workload | condition | forward (s) | inherit (s) | cost | range | target | met |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for workload in WORKLOADS:
        for name, prefix, competing in conditions:
            competitor = busy() if competing else None
            try:
                times: dict[str, list[float]] = {FORWARD: [], INHERIT: []}
                for round_ in range(args.rounds):
                    order = [FORWARD, INHERIT] if round_ % 2 == 0 else [INHERIT, FORWARD]
                    for tool in order:
                        times[tool].append(run_case(prefix, workload, tool, iterations))
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
            ratios = [f / i for f, i in zip(times[FORWARD], times[INHERIT], strict=True)]
            cost = statistics.median(ratios)
            forward, inherit = statistics.median(times[FORWARD]), statistics.median(times[INHERIT])
            line = (
                f"| {workload} | {name} | {forward:.3f} | {inherit:.3f} | {cost:.3f}x | "
                f"{min(ratios):.2f}-{max(ratios):.2f} | <= {TARGET}x | "
                f"{'yes' if cost <= TARGET else 'NO'} |"
            )
            print(line, file=sys.stderr)
            lines.append(line)
    table = "\n".join(lines)
    print(table)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "output.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
