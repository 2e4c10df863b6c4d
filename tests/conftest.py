"""Shared fixtures: every test runs under a leak check; contract tests run on every backend."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

TESTS = Path(__file__).parent
# The planner's cache of this machine's measured costs: a folder of the test session's own, so
# that tests neither read nor write the user's (child processes inherit the setting).
os.environ.setdefault(
    "MANYHANDS_CACHE_DIR", os.path.join(__import__("tempfile").mkdtemp(), "manyhands-cache")
)
# Workload functions live in an importable module so process workers load them by reference.
sys.path.insert(0, str(TESTS))

HAS_DASK = importlib.util.find_spec("distributed") is not None
#: The contract runs on "dask" too where it is installed (``make test`` installs it).
BACKENDS = ["serial", "thread", "process", "processes-threads", "asyncio"] + (
    ["dask"] if HAS_DASK else []
)

#: Processes started by session fixtures: they and their descendants are not leaks.
_OWNED_ROOTS: set[int] = set()
#: Process-wide executors of distributed, started on first use and kept for the process's
#: life by design (not per call): Future callbacks and its offload pool.
_PROCESS_WIDE_THREADS = ("Dask-Callback-Thread", "Dask-Offload")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Any:
    name: str = request.param
    if name == "dask":
        # map(..., backend="dask") without an address goes to DASK_SCHEDULER_ADDRESS, as
        # distributed.Client() does: the session's cluster.
        request.getfixturevalue("dask_default_cluster")
    if name == "processes-threads":  # worker processes that each run items on threads
        import manyhands

        return manyhands.Processes(threads=3)
    return name


class DaskCluster:
    """`dask scheduler` and `dask worker` subprocesses on 127.0.0.1, stopped by their pids.

    Each worker is its own `dask worker` command (with Dask's nanny, which restarts a worker
    that dies); ``worker_pids`` gives the pids of the processes that run the tasks.
    """

    def __init__(self, directory: Path, workers: int = 2) -> None:
        dask = str(Path(sys.executable).parent / "dask")
        scheduler_file = directory / "scheduler.json"
        self.log = open(directory / "cluster.log", "wb")  # noqa: SIM115
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), *sys.path]))
        common: dict[str, Any] = {
            "stdout": self.log,
            "stderr": self.log,
            "stdin": subprocess.DEVNULL,
            "env": env,
            "start_new_session": True,
        }
        self.procs = [
            subprocess.Popen(
                [
                    *(dask, "scheduler", "--host", "127.0.0.1", "--port", "0"),
                    *("--no-dashboard", "--dashboard-address", "127.0.0.1:0"),
                    *("--scheduler-file", str(scheduler_file)),
                ],
                **common,
            )
        ]
        for number in range(workers):
            self.procs.append(
                subprocess.Popen(
                    [
                        *(dask, "worker", "--scheduler-file", str(scheduler_file)),
                        *("--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"),
                        *("--dashboard-address", "127.0.0.1:0"),
                        *("--name", f"worker-{number}", "--local-directory", str(directory)),
                    ],
                    **common,
                )
            )
        try:
            self.address = self._address(scheduler_file)
            with self.client() as client:
                client.wait_for_workers(workers, timeout=60)
        except BaseException:
            self.stop()
            raise

    def _address(self, scheduler_file: Path) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                address: str = json.loads(scheduler_file.read_text())["address"]
                return address
            assert self.procs[0].poll() is None, "dask scheduler exited; see cluster.log"
            time.sleep(0.02)  # waiting for a file another process writes
        raise TimeoutError("dask scheduler did not write its address within 60 s")

    def client(self) -> Any:
        import distributed

        return distributed.Client(self.address, set_as_default=False)

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> pid of the process that runs its tasks."""
        with self.client() as client:
            pids: dict[str, int] = client.run(os.getpid)
            return pids

    def stop(self) -> None:
        """The scheduler first: the workers then exit at once, unless a nanny of theirs has
        restarted its worker, which made one linger for 10 s: its process group is killed,
        all but multiprocessing's resource tracker, which then removes the named semaphores
        a killed worker left in /dev/shm (killed with the rest, it left 6 per such test)."""
        for number, proc in enumerate(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=10 if number == 0 else 1)
            except subprocess.TimeoutExpired:
                _kill_group_but_its_tracker(proc.pid)  # its own session: pgid == pid
                proc.wait()
        self.log.close()


def _kill_group_but_its_tracker(pgid: int) -> None:
    """SIGKILL every process of the group but a resource tracker, then wait for that one: it
    ignores SIGTERM and exits, unlinking what the dead registered, once they are all gone."""
    trackers = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) != pgid:
                continue
            if "resource_tracker" in " ".join(process.info["cmdline"] or ()):
                trackers.append(process)
            else:
                process.kill()
    psutil.wait_procs(trackers, timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)  # anything still there


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """One real cluster for the session: a scheduler and two single-threaded workers."""
    cluster = DaskCluster(tmp_path_factory.mktemp("dask"))
    _OWNED_ROOTS.update(proc.pid for proc in cluster.procs)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def dask_default_cluster(dask_cluster: DaskCluster) -> Iterator[DaskCluster]:
    """The session's cluster, set as Dask's default scheduler address."""
    import dask

    with dask.config.set({"scheduler-address": dask_cluster.address}):
        yield dask_cluster


@pytest.fixture(params=["thread", "process", "asyncio"])
def parallel_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


@pytest.fixture
def wrap(request: pytest.FixtureRequest) -> Wrap:
    """The workload as the backend under test runs it: an ``async def`` for asyncio."""
    names = set(request.fixturenames)
    backend = next(
        (request.getfixturevalue(n) for n in ("backend", "parallel_backend") if n in names), None
    )
    if backend != "asyncio":
        return lambda fn: fn
    return as_coroutine_function


def as_coroutine_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)  # a real suspension point, as in I/O code
        return fn(*args, **kwargs)

    return run


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a thread or a child process behind.

    manyhands joins its threads and reaps its workers before a call returns, so the check is
    exact: no grace period, no sleeping.
    """
    marker = request.node.get_closest_marker("leaves_thread")
    allowed: tuple[str, ...] = (marker.args[0],) if marker else ()
    threads_before = set(threading.enumerate())
    me = psutil.Process()
    children_before = {child.pid for child in me.children(recursive=True)}
    yield
    leaked_threads = [
        thread
        for thread in threading.enumerate()
        if thread not in threads_before
        and thread.is_alive()
        and not thread.name.startswith(_PROCESS_WIDE_THREADS + allowed)
    ]
    leaked_children = [
        child
        for child in me.children(recursive=True)
        if child.pid not in children_before and not _owned(child)
    ]
    for child in leaked_children:  # clean up so that one leak does not fail every later test
        child.kill()
    assert not leaked_threads, f"threads left running: {leaked_threads}"
    assert not leaked_children, f"child processes left running: {leaked_children}"


def _owned(process: psutil.Process) -> bool:
    """A session fixture's process or a descendant (a Dask nanny restarts its worker)."""
    with contextlib.suppress(psutil.Error):
        family = [process, *process.parents()]
        return any(member.pid in _OWNED_ROOTS for member in family)
    return False
