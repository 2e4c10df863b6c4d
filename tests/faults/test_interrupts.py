"""Ctrl-C stops promptly and leaves no worker; a killed caller takes its workers with it.

Each test runs a real script in a subprocess. Its workers write their pid to a folder, which
the test waits for (the signal that work is under way), then interrupts or kills the script
and checks with psutil that every worker is gone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    import manyhands as mh

    # As in a terminal: a background job of a non-interactive shell (CI, perhaps) starts
    # with SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    folder, backend, seconds = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])

    def work(x):
        (folder / f"{os.getpid()}.{x}.pid").touch()
        time.sleep(seconds)
        return x

    try:
        if backend.startswith("executor-"):  # the drop-in, as code written for one uses it
            make = mh.ProcessPoolExecutor if backend.endswith("process") else mh.ThreadPoolExecutor
            with make(2) as executor:
                list(executor.map(work, range(20)))
        else:
            mh.map(work, range(20), backend=backend, workers=2)
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
        sys.exit(130)
    """
)


def start(tmp_path: Path, backend: str, seconds: float) -> subprocess.Popen[str]:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), backend, str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_workers(tmp_path: Path, count: int, proc: subprocess.Popen[str]) -> set[int]:
    """The pids of the first ``count`` running items, once their files exist."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        files = list(tmp_path.glob("*.pid"))
        if len(files) >= count:
            return {int(path.name.split(".")[0]) for path in files}
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)  # polling a folder: the files are the synchronisation
    raise AssertionError("the workers never started")


@pytest.mark.realtime
@pytest.mark.parametrize("backend", ["process", "thread", "executor-process", "executor-thread"])
def test_ctrl_c_stops_promptly_and_leaves_no_worker(tmp_path: Path, backend: str) -> None:
    proc = start(tmp_path, backend, seconds=30)
    pids = wait_for_workers(tmp_path, 2, proc) - {proc.pid}
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - interrupted
    assert proc.returncode == 130, err
    assert "KeyboardInterrupt" in out
    # Items sleep for 30 s: returning in seconds shows that nothing waited for them. (The
    # target, under one second, is measured by the benchmark; a loaded CI machine gets slack.)
    assert elapsed < 10
    workers = [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive


@pytest.mark.realtime
def test_killed_caller_takes_its_workers_with_it(tmp_path: Path) -> None:
    proc = start(tmp_path, "process", seconds=60)
    pids = wait_for_workers(tmp_path, 2, proc)
    workers = [psutil.Process(pid) for pid in pids]
    proc.kill()  # SIGKILL: the caller runs no cleanup at all
    proc.communicate(timeout=60)
    # Each worker's receiver thread sees its socket close and exits the process.
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive


HANG_SCRIPT = textwrap.dedent(
    """
    import time
    import manyhands as mh

    def work(x):
        if x == 3:
            time.sleep(600)  # a hung call: its thread cannot be killed
        return x

    results = mh.map(work, range(10), backend="thread", timeout=0.5, errors="return")
    print([type(r).__name__ for r in results].count("Failure"), flush=True)
    """
)


@pytest.mark.realtime
def test_interpreter_exits_at_once_after_a_thread_timed_out(tmp_path: Path) -> None:
    script = tmp_path / "hang.py"
    script.write_text(HANG_SCRIPT)
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "1"
    # The hung call sleeps 600 s in an abandoned (daemon) thread; exiting does not wait.
    assert time.monotonic() - started < 60
