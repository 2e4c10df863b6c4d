"""`make bench`: manyhands against the anchors, every case in a fresh process, as ratios.

    python benchmarks/run.py              # every workload
    python benchmarks/run.py --only crc   # workloads whose name contains "crc"

Each case runs ``case.py`` in a new interpreter, so the time includes starting the pool; the
median of ``--repeat`` runs is reported. The table (Markdown) is printed and written to
benchmarks/results/latest.md; the README shows the latest one.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from workloads import calibrate  # noqa: E402


@dataclass(frozen=True)
class Target:
    """manyhands' ``tool`` must take at most ``ratio`` x the time of ``anchor`` (None: absolute)."""

    tool: str
    anchor: str | None
    ratio: float | None = None
    seconds: float | None = None
    rss_mb: float | None = None
    slow_tools: tuple[str, ...] = ()  # run once only: they take many seconds

    def describe(self) -> str:
        parts = []
        if self.anchor and self.ratio:
            parts.append(f"<= {self.ratio:g}x {self.anchor}")
        if self.seconds:
            parts.append(f"<= {self.seconds:g} s")
        if self.rss_mb:
            parts.append(f"<= {self.rss_mb:g} MB")
        return ", ".join(parts)


PROCESS_ANCHORS = ["multiprocessing.Pool", "ProcessPoolExecutor", "mpire", "joblib"]

WORKLOADS: dict[str, tuple[list[str], Target]] = {
    "8 x 0.25 s CPU": (
        [*PROCESS_ANCHORS, "manyhands process"],
        Target("manyhands process", "multiprocessing.Pool", ratio=1.1),
    ),
    "20,000 x 100 us CPU": (
        [*PROCESS_ANCHORS, "manyhands process"],
        Target("manyhands process", "multiprocessing.Pool", ratio=1.1),
    ),
    "200,000 x x*x": (
        ["serial loop", *PROCESS_ANCHORS, "manyhands process"],
        Target(
            "manyhands process",
            "multiprocessing.Pool",
            ratio=2.0,
            rss_mb=60,
            slow_tools=("ProcessPoolExecutor",),
        ),
    ),
    "200 x 1 MiB crc32": (
        ["serial loop", *PROCESS_ANCHORS, "manyhands process"],
        Target("manyhands process", "best anchor", ratio=1.0),
    ),
    "1,000 x sleep(0.05)": (
        ["ThreadPoolExecutor(10)", "manyhands thread, workers=100"],
        Target(
            "manyhands thread, workers=100",
            None,
            seconds=0.6,
            slow_tools=("ThreadPoolExecutor(10)",),
        ),
    ),
    "imap 10M, first 1,000": (
        ["multiprocessing.Pool", "manyhands process"],
        Target("manyhands process", None, seconds=0.1, rss_mb=60),
    ),
    "200,000 x x*x, threads": (
        ["ThreadPoolExecutor", "manyhands thread"],
        Target("manyhands thread", "ThreadPoolExecutor", ratio=0.5, rss_mb=60),
    ),
}


def measure(workload: str, tool: str, iterations: int, repeat: int) -> tuple[float, float]:
    seconds, rss = [], []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, str(HERE / "case.py"), workload, tool, str(iterations)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        record = json.loads(out.stdout.strip().splitlines()[-1])
        seconds.append(record["seconds"])
        rss.append(record["rss_mb"])
    return statistics.median(seconds), statistics.median(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run workloads whose name contains this")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median)")
    args = parser.parse_args()

    spin_for = {"8 x 0.25 s CPU": calibrate(0.25), "20,000 x 100 us CPU": calibrate(100e-6)}
    lines = [
        f"Machine: {platform.machine()}, {_cpus()} CPUs usable, Python "
        f"{platform.python_version()}; median of {args.repeat} fresh-process runs "
        "(ProcessPoolExecutor on 200,000 items and ThreadPoolExecutor(10) on sleeps: 1 run).",
        "",
        "| workload | tool | seconds | peak RSS (MB) | vs target anchor | target | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for workload, (tools, target) in WORKLOADS.items():
        if args.only not in workload:
            continue
        results: dict[str, tuple[float, float]] = {}
        for tool in tools:
            repeat = 1 if tool in target.slow_tools else args.repeat
            results[tool] = measure(workload, tool, spin_for.get(workload, 0), repeat)
            print(f"  {workload:<24} {tool:<32} {results[tool][0]:8.3f} s", file=sys.stderr)
        anchor = target.anchor
        if anchor == "best anchor":
            anchor = min(
                (tool for tool in tools if tool in PROCESS_ANCHORS), key=lambda t: results[t][0]
            )
        ours_seconds, ours_rss = results[target.tool]
        ratio = ours_seconds / results[anchor][0] if anchor else None
        met = (
            (target.ratio is None or (ratio is not None and ratio <= target.ratio))
            and (target.seconds is None or ours_seconds <= target.seconds)
            and (target.rss_mb is None or ours_rss <= target.rss_mb)
        )
        for tool in tools:
            seconds, rss = results[tool]
            versus = f"{seconds / results[anchor][0]:.2f}x" if anchor else ""
            is_ours = tool == target.tool
            lines.append(
                f"| {workload} | {'**' + tool + '**' if is_ours else tool} | {seconds:.3f} | "
                f"{rss:.0f} | {versus} | {target.describe() if is_ours else ''} | "
                f"{('yes' if met else 'NO') if is_ours else ''} |"
            )
    table = "\n".join(lines)
    print(table)
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "latest.md").write_text(table + "\n")


def _cpus() -> int:
    import manyhands

    return manyhands.available_cpus()


if __name__ == "__main__":
    main()
