"""The failure scenarios of the failure-handling issue, measured for manyhands.

    python benchmarks/faults.py

Each scenario runs a real script in a fresh process: 20 items on 2 workers, one of which
misbehaves. Printed as a Markdown table (also written to benchmarks/results/faults.md). The
anchors' figures quoted beside them are those the issue measured on this kind of machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

HERE = Path(__file__).parent

COMMON = """
import json, os, signal, sys, threading, time
from pathlib import Path
import manyhands as mh
folder = Path(sys.argv[1])
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if ignored

def report(results, started):
    good = sum(1 for r in results if not isinstance(r, mh.Failure))
    failures = [r for r in results if isinstance(r, mh.Failure)]
    print(json.dumps({"good": good, "kinds": [f.kind for f in failures],
                      "seconds": time.perf_counter() - started}), flush=True)
"""

SCENARIOS = {
    "one item kills its worker (SIGKILL)": """
def work(x):
    if x == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.01)
    return x
started = time.perf_counter()
report(mh.map(work, range(20), backend="process", workers=2, errors="return"), started)
""",
    "one item hangs, timeout=3": """
def work(x):
    if x == 7:
        time.sleep(600)
    time.sleep(0.01)
    return x
started = time.perf_counter()
report(mh.map(work, range(20), backend="process", workers=2, timeout=3, errors="return"), started)
""",
    "one item returns a lock": """
def work(x):
    return threading.Lock() if x == 7 else x
started = time.perf_counter()
report(mh.map(work, range(20), backend="process", workers=2, errors="return"), started)
""",
    "Ctrl-C during 20 x sleep(5)": """
def work(x):
    (folder / f"{os.getpid()}.pid").touch()
    time.sleep(5)
    return x
try:
    mh.map(work, range(20), backend="process", workers=2)
except KeyboardInterrupt:
    sys.exit(130)
""",
    "parent SIGKILLed": """
def work(x):
    (folder / f"{os.getpid()}.pid").touch()
    time.sleep(60)
    return x
mh.map(work, range(20), backend="process", workers=2)
""",
}

ANCHORS = {
    "one item kills its worker (SIGKILL)": "pebble: 19/19 in 0.6 s; others 0-6/19 or hang",
    "one item hangs, timeout=3": "pebble: 19/19 at 3.3 s",
    "one item returns a lock": "pebble 19/19; mpire hangs",
    "Ctrl-C during 20 x sleep(5)": "Pool 0.02 s, ProcessPoolExecutor 9.0 s, pebble 49 s",
    "parent SIGKILLed": "ProcessPoolExecutor, joblib, mpire: orphans alive at 60 s",
}
TARGETS = {
    "one item kills its worker (SIGKILL)": "19/19 plus one crash Failure, <= 1 s",
    "one item hangs, timeout=3": "19/19 plus one timeout Failure, <= 3.5 s, exits at once",
    "one item returns a lock": "19/19 plus one error Failure",
    "Ctrl-C during 20 x sleep(5)": "<= 1 s, no process left",
    "parent SIGKILLed": "every worker gone within 5 s",
}


def run_scenario(name: str, folder: Path) -> tuple[str, bool]:
    script = folder / "scenario.py"
    script.write_text(textwrap.dedent(COMMON) + textwrap.dedent(SCENARIOS[name]))
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder)], stdout=subprocess.PIPE, text=True
    )
    if name.startswith("Ctrl-C") or name.startswith("parent"):
        pids = _wait_for_pids(folder, 2)
        workers = [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]
        struck = time.monotonic()
        proc.send_signal(signal.SIGINT if name.startswith("Ctrl-C") else signal.SIGKILL)
        proc.communicate(timeout=120)
        exited = time.monotonic() - struck
        _, alive = psutil.wait_procs(workers, timeout=10)
        gone = time.monotonic() - struck
        if name.startswith("Ctrl-C"):
            ok = exited <= 1.0 and not alive
            return f"caller exited {exited:.2f} s after SIGINT; {len(alive)} workers left", ok
        ok = gone <= 5.0 and not alive
        return f"all {len(workers)} workers gone {gone:.2f} s after the SIGKILL", ok
    out, _ = proc.communicate(timeout=300)
    whole = time.monotonic() - started
    record = json.loads(out.strip().splitlines()[-1])
    kinds = ", ".join(record["kinds"])
    text = (
        f"{record['good']}/19 plus [{kinds}] in {record['seconds']:.2f} s; "
        f"process exited {whole - record['seconds']:.2f} s after"
    )
    limit = {"one item kills": 1.0, "one item hangs": 3.5}.get(name[:14], float("inf"))
    ok = record["good"] == 19 and len(record["kinds"]) == 1 and record["seconds"] <= limit
    return text, ok


def _wait_for_pids(folder: Path, count: int) -> set[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = {int(path.stem) for path in folder.glob("*.pid")}
        if len(pids) >= count:
            return pids
        time.sleep(0.01)
    raise RuntimeError("the workers never started")


def main() -> None:
    lines = [
        "| scenario, 20 items, one bad | manyhands, measured | target | met "
        "| best anchor (issue) |",
        "|---|---|---|---|---|",
    ]
    for name in SCENARIOS:
        with tempfile.TemporaryDirectory() as folder:
            text, ok = run_scenario(name, Path(folder))
        print(f"  {name:<40} {text}", file=sys.stderr)
        met = "yes" if ok else "NO"
        lines.append(f"| {name} | {text} | {TARGETS[name]} | {met} | {ANCHORS[name]} |")
    table = "\n".join(lines)
    print(table)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "faults.md").write_text(table + "\n")


if __name__ == "__main__":
    if os.name == "nt":
        raise SystemExit("the failure benchmark sends POSIX signals")
    main()
