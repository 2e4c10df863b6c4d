"""The auto planner against the anchors: every case a fresh process, imports in the clock.

    python benchmarks/planner.py                       # every workload, 5 rounds, 3 conditions
    python benchmarks/planner.py --only http --rounds 3 --conditions normal

Rounds are interleaved (round 1 runs every case once, then round 2...), so a slow moment of
the machine hits every tool alike. Each row gives the median seconds and the spread (min-max),
and each target the median ratio to its anchor with the spread of the per-round ratios.
Conditions: ``normal``; ``one-cpu`` (the case runs under ``taskset -c 0``); ``busy`` (a
competing process spins on CPU 0 throughout). Run it with bytecode compiled (``make bench``
does, as an installed wheel has it). The table is printed and written to
``benchmarks/results/planner.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
AUTO = "manyhands auto"


@dataclass(frozen=True)
class Target:
    """``AUTO`` takes at most ``ratio`` x ``anchor`` (the best of several: the fastest by
    median); ``every_run``: in every round, not only by median; ``seconds``: an absolute
    limit instead."""

    anchors: tuple[str, ...]
    ratio: float | None = None
    seconds: float | None = None
    every_run: bool = False


TPE = "ThreadPoolExecutor"
CPU_ANCHORS = ("multiprocessing.Pool", "ProcessPoolExecutor")
#: workload -> (description, tools, target for auto, manyhands' own explicit backends)
WORKLOADS: dict[str, tuple[str, list[str], Target, list[str]]] = {
    "sleep": (
        "1,000 x sleep(0.05)",
        [f"{TPE}(10)", "manyhands thread 1000", AUTO],
        Target((), seconds=0.3),
        ["manyhands thread 1000"],
    ),
    "http2000": (
        "2,000 HTTP GETs (urllib), server answers after 50 ms",
        [f"{TPE}(64)", "manyhands thread 64", "manyhands thread 256", AUTO],
        Target((f"{TPE}(64)",), ratio=1.0, every_run=True),
        ["manyhands thread 64", "manyhands thread 256", "manyhands processes 64"],
    ),
    "http3000": (
        "3,000 of the same GETs",
        [f"{TPE}(64)", "manyhands thread 256", AUTO],
        Target((f"{TPE}(64)",), ratio=1.0, every_run=True),
        ["manyhands thread 256", "manyhands processes 64"],
    ),
    "sha256": (
        "sha256 of 160 x 8 MiB (releases the GIL)",
        ["loop", TPE, "manyhands thread 2", "manyhands process", AUTO],
        Target((TPE,), ratio=1.05),
        ["manyhands serial", "manyhands thread 2", "manyhands process"],
    ),
    "zlib": (
        "zlib.compress of 120 x 1 MiB",
        ["loop", TPE, "manyhands thread 2", AUTO],
        Target((TPE,), ratio=1.05),
        ["manyhands thread 2"],
    ),
    "cpu8": (
        "8 x 0.25 s pure-Python CPU",
        ["loop", *CPU_ANCHORS, "manyhands process", AUTO],
        Target(CPU_ANCHORS, ratio=1.05),
        ["manyhands process"],
    ),
    "cpu20k": (
        "20,000 x 100 us CPU",
        ["loop", "multiprocessing.Pool", "manyhands process", AUTO],
        Target(("multiprocessing.Pool",), ratio=1.05),
        ["manyhands process"],
    ),
    "square": (
        "200,000 x x*x, first call",
        ["loop", "manyhands serial", AUTO],
        Target(("loop",), ratio=2.0),
        ["manyhands serial"],
    ),
    "square-later": (
        "200,000 x x*x, a later call",
        ["loop", "manyhands serial", AUTO],
        Target(("loop",), ratio=1.3),
        ["manyhands serial"],
    ),
    "crc": (
        "200 x 1 MiB crc32",
        ["loop", TPE, "manyhands thread 2", AUTO],
        Target(("loop", TPE), ratio=1.2),
        ["manyhands serial", "manyhands thread 2"],
    ),
}
#: Under one CPU, every CPU-bound row must stay within 1.1x the plain loop.
ONE_CPU_LOOP = {"sha256", "zlib", "cpu8", "cpu20k", "square", "square-later", "crc"}
SLOW_ANCHORS = {("sleep", f"{TPE}(10)")}  # 5 s a run: measured in the first round only


@contextlib.contextmanager
def http_server() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="manyhands-http-")
    port_file = os.path.join(folder, "port")
    server = subprocess.Popen([sys.executable, str(HERE / "http_server.py"), port_file])
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark's HTTP server did not start")
            time.sleep(0.02)  # waiting for another process to write a file
        yield f"http://127.0.0.1:{Path(port_file).read_text()}/"
    finally:
        server.terminate()
        server.wait(10)


@contextlib.contextmanager
def condition(name: str) -> Iterator[list[str]]:
    """The command prefix a case runs under, with its competitor started and stopped."""
    if name == "normal":
        yield []
    elif name == "one-cpu":
        yield ["taskset", "-c", "0"]
    elif name == "busy":
        spinner = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
        try:
            yield []
        finally:
            spinner.kill()
            spinner.wait()
    else:
        raise SystemExit(f"unknown condition {name!r}")


def calibrate(seconds: float) -> int:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1]); import planner_workloads as w\n"
            "n = 200_000\nbest = min((lambda t: (w.spin(n), time.perf_counter() - t)[1])"
            "(time.perf_counter()) for _ in range(5))\nprint(best / n)",
            str(HERE),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return max(1, round(seconds / float(out.stdout)))


def measure(prefix: list[str], workload: str, tool: str, spin: int, url: str) -> float:
    out = subprocess.run(
        [*prefix, sys.executable, str(HERE / "planner_case.py"), workload, tool, str(spin), url],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{workload} / {tool} failed:\n{out.stderr}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="", help="workloads whose key contains one of these (comma-separated)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--conditions", default="normal,one-cpu,busy")
    args = parser.parse_args()
    spins = {"cpu8": calibrate(0.25), "cpu20k": calibrate(100e-6)}
    wanted = args.only.split(",")
    chosen = {key: spec for key, spec in WORKLOADS.items() if any(w in key for w in wanted)}
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; {args.rounds} interleaved rounds, each case a fresh "
        "process with its imports inside the clock; median seconds (min-max); ratios are "
        "the median of the per-round ratios (min-max).",
        "",
    ]
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    with http_server() as url:
        for name in args.conditions.split(","):
            lines += run_condition(name, chosen, spins, url, args.rounds)
            # Written after each condition: a long run stopped early keeps what it measured.
            (results / "planner.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def run_condition(
    name: str,
    chosen: dict[str, tuple[str, list[str], Target, list[str]]],
    spins: dict[str, int],
    url: str,
    rounds: int,
) -> list[str]:
    seconds: dict[tuple[str, str], list[float]] = {}
    with condition(name) as prefix:
        for round_number in range(rounds):
            for key, (_, tools, _, own) in chosen.items():
                for tool in dict.fromkeys([*tools, *own]):
                    if round_number and (key, tool) in SLOW_ANCHORS:
                        continue
                    value = measure(prefix, key, tool, spins.get(key, 0), url)
                    seconds.setdefault((key, tool), []).append(value)
                    print(f"  {name:<8} {key:<13} {tool:<28} {value:8.3f} s", file=sys.stderr)
    lines = [
        f"### {name}",
        "",
        "| workload | tool | seconds | target for auto | auto vs anchor | met |",
        "|---|---|---:|---|---:|---|",
    ]
    for key, (description, tools, target, own) in chosen.items():
        verdict = judge(key, name, target, own, seconds)
        for tool in dict.fromkeys([*tools, *own]):
            runs = seconds[(key, tool)]
            cell = f"{statistics.median(runs):.3f} ({min(runs):.3f}-{max(runs):.3f})"
            goal, ratio, met = verdict if tool == AUTO else ("", "", "")
            label = f"**{tool}**" if tool == AUTO else tool
            lines.append(f"| {description} | {label} | {cell} | {goal} | {ratio} | {met} |")
    return [*lines, ""]


def judge(
    key: str,
    condition_name: str,
    target: Target,
    own: list[str],
    seconds: dict[tuple[str, str], list[float]],
) -> tuple[str, str, str]:
    """(targets in words, ratios, "yes"/"NO") for auto on one workload."""
    auto = seconds[(key, AUTO)]
    goals, ratios, met = [], [], True
    checks: list[tuple[str, tuple[str, ...], float, bool]] = []
    if target.seconds is not None:
        median = statistics.median(auto)
        goals.append(f"<= {target.seconds:g} s")
        ratios.append(f"{median:.3f} s")
        met &= median <= target.seconds
    if target.ratio is not None and condition_name == "normal":
        checks.append(("", target.anchors, target.ratio, target.every_run))
    if condition_name == "one-cpu" and key in ONE_CPU_LOOP:
        checks.append(("", ("loop",), 1.1, False))
    # Never lose by betting: at most 1.1x the best of manyhands' explicit backends + 10 ms.
    best_own = min(own, key=lambda tool: statistics.median(seconds[(key, tool)]))
    per_round = [a - 0.010 for a in auto]
    checks.append(("+10 ms ", (best_own,), 1.1, False))
    for extra, anchors, limit, every in checks:
        anchor = min(anchors, key=lambda tool: statistics.median(seconds[(key, tool)]))
        base = seconds[(key, anchor)]
        values = per_round if extra else auto
        pairs = [v / b for v, b in zip(values, base, strict=False)] or [values[0] / base[0]]
        ratio = statistics.median(pairs)
        worst = max(pairs)
        ok = (worst if every else ratio) <= limit
        met &= ok
        scope = "every run " if every else ""
        goals.append(f"{scope}<= {limit:g}x {anchor} {extra}".strip())
        ratios.append(f"{ratio:.2f}x ({min(pairs):.2f}-{worst:.2f})")
    return "; ".join(goals), "; ".join(ratios), "yes" if met else "NO"


if __name__ == "__main__":
    main()
