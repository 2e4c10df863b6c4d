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
    """``tool`` must take at most ``ratio`` x the time of ``anchor``, or absolute limits."""

    tool: str
    anchor: str | None
    ratio: float | None = None
    seconds: float | None = None
    rss_mb: float | None = None

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
AUTO = "manyhands auto"
JOURNAL = "manyhands process, journal"
DASK = "manyhands dask"
DASK_LOCAL = "manyhands dask, local cluster"
#: On a cluster of one single-threaded worker per CPU, started before the clock.
DASK_TOOLS = ["dask client.map", DASK, DASK_LOCAL]

WORKLOADS: dict[str, tuple[list[str], list[Target]]] = {
    "50 x sleep(0.2), the lecture": (
        ["ThreadPoolExecutor(10)", "ThreadPoolExecutor", AUTO],
        [Target(AUTO, None, seconds=0.3)],
    ),
    "1,000 x sleep(0.05)": (
        ["ThreadPoolExecutor(10)", "ThreadPoolExecutor", "manyhands thread, workers=100", AUTO],
        [
            Target("manyhands thread, workers=100", None, seconds=0.6),
            Target(AUTO, None, seconds=0.3),
        ],
    ),
    "1,000 x async sleep(0.05)": ([AUTO], [Target(AUTO, None, seconds=0.2)]),
    "8 x 0.25 s CPU": (
        [*PROCESS_ANCHORS, "manyhands process", AUTO, *DASK_TOOLS],
        [
            Target("manyhands process", "multiprocessing.Pool", ratio=1.1),
            Target(AUTO, "multiprocessing.Pool", ratio=1.1),
            Target(DASK, None, seconds=1.15),
        ],
    ),
    "20,000 x 100 us CPU": (
        [*PROCESS_ANCHORS, "manyhands process", JOURNAL, AUTO, *DASK_TOOLS],
        [
            Target("manyhands process", "multiprocessing.Pool", ratio=1.1),
            Target(JOURNAL, "manyhands process", ratio=1.15),
            Target(AUTO, "multiprocessing.Pool", ratio=1.1),
            Target(DASK, None, seconds=1.5),
        ],
    ),
    "200,000 x x*x": (
        # raw client.map: over 60 s in the Dask issue's measurement; not run here
        ["serial loop", *PROCESS_ANCHORS, "manyhands process", AUTO, DASK, DASK_LOCAL],
        [
            Target("manyhands process", "multiprocessing.Pool", ratio=2.0, rss_mb=60),
            Target(AUTO, "serial loop", ratio=3.0),
            Target(DASK, None, seconds=2.0),
        ],
    ),
    "200 x 1 MiB crc32": (
        ["serial loop", *PROCESS_ANCHORS, "manyhands process", AUTO],
        [
            Target("manyhands process", "best anchor", ratio=1.0),
            Target(AUTO, "serial loop", ratio=1.5),
        ],
    ),
    "imap 10M, first 1,000": (
        ["multiprocessing.Pool", "manyhands process"],
        [Target("manyhands process", None, seconds=0.1, rss_mb=60)],
    ),
    "resume: 200,000 recorded x*x": (
        [JOURNAL],
        [Target(JOURNAL, None, seconds=1.0)],
    ),
    "200,000 x x*x, threads": (
        ["ThreadPoolExecutor", "manyhands thread"],
        [Target("manyhands thread", "ThreadPoolExecutor", ratio=0.5, rss_mb=60)],
    ),
}

#: Anchors that take many seconds: measured once, not three times.
SLOW = {
    ("200,000 x x*x", "ProcessPoolExecutor"),
    ("1,000 x sleep(0.05)", "ThreadPoolExecutor(10)"),
    ("1,000 x sleep(0.05)", "ThreadPoolExecutor"),
    ("20,000 x 100 us CPU", "dask client.map"),
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
        "(ProcessPoolExecutor on 200,000 items and ThreadPoolExecutors on 1,000 sleeps: 1 run).",
        "",
        "| workload | tool | seconds | peak RSS (MB) | vs target anchor | target | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for workload, (tools, targets) in WORKLOADS.items():
        if args.only not in workload:
            continue
        results: dict[str, tuple[float, float]] = {}
        for tool in tools:
            repeat = 1 if (workload, tool) in SLOW else args.repeat
            results[tool] = measure(workload, tool, spin_for.get(workload, 0), repeat)
            print(f"  {workload:<30} {tool:<32} {results[tool][0]:8.3f} s", file=sys.stderr)
        verdicts = {target.tool: _verdict(target, tools, results) for target in targets}
        for tool in tools:
            seconds, rss = results[tool]
            versus, goal, met = verdicts.get(tool, ("", "", ""))
            name = f"**{tool}**" if tool in verdicts else tool
            lines.append(
                f"| {workload} | {name} | {seconds:.3f} | {rss:.0f} | {versus} | {goal} | {met} |"
            )
    table = "\n".join(lines)
    print(table)
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "latest.md").write_text(table + "\n")


def _verdict(
    target: Target, tools: list[str], results: dict[str, tuple[float, float]]
) -> tuple[str, str, str]:
    """(ratio to the anchor, the target in words, "yes"/"NO") for the tool a target names."""
    anchor = target.anchor
    if anchor == "best anchor":
        anchor = min(
            (tool for tool in tools if tool in PROCESS_ANCHORS), key=lambda t: results[t][0]
        )
    seconds, rss = results[target.tool]
    ratio = seconds / results[anchor][0] if anchor else None
    met = (
        (target.ratio is None or (ratio is not None and ratio <= target.ratio))
        and (target.seconds is None or seconds <= target.seconds)
        and (target.rss_mb is None or rss <= target.rss_mb)
    )
    goal = target.describe().replace("best anchor", f"best anchor ({anchor})")
    return (f"{ratio:.2f}x" if ratio is not None else "", goal, "yes" if met else "NO")


def _cpus() -> int:
    import manyhands

    return manyhands.available_cpus()


if __name__ == "__main__":
    main()
