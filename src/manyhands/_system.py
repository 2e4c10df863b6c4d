"""Facts about the machine this process runs on: usable CPUs, and whether the GIL is on;
and the interpreter's C queue."""

from __future__ import annotations

import math
import os
import sys

try:  # the C queue that ``queue`` wraps: ``queue`` also imports ``heapq`` and its C module,
    # 1 ms of a first call here, and of every worker process's start
    from _queue import Empty, SimpleQueue
except ImportError:  # an interpreter without it
    from queue import Empty, SimpleQueue

__all__ = [
    "Empty",
    "LARGE_BUFFER",
    "SHARES_BUFFERS",
    "SimpleQueue",
    "available_cpus",
    "cgroup_cpu_limit",
    "gil_enabled",
    "inner_threads",
    "native_thread_limiter",
    "native_threads_loaded",
    "others_running",
    "runnable_seconds",
    "thread_runnable_seconds",
    "travels_shared",
]


#: Whether worker processes can be handed file descriptors over their (Unix) sockets: then
#: large buffers a function reaches are shared with them, not copied (``backends._shared``).
#: Every POSIX Python this package runs on has ``socket.send_fds``; Windows has neither.
SHARES_BUFFERS = sys.platform != "win32"
#: Buffers from this size on travel to worker processes through shared memory.
LARGE_BUFFER = 1 << 20


def travels_shared(view: memoryview) -> bool:
    """Whether an out-of-band buffer goes through shared memory rather than in the pickle
    (``backends._shared`` sends it so; the planner sizes it so)."""
    return SHARES_BUFFERS and view.nbytes >= LARGE_BUFFER and view.contiguous


def available_cpus() -> int:
    """The number of CPUs this process may use: affinity mask and cgroup quota included.

    ``os.cpu_count()`` counts the host's CPUs; a container limited to two CPUs on a 64-core
    host would start 64 workers on it.
    """
    count: int | None
    if hasattr(os, "process_cpu_count"):  # 3.13+: affinity-aware
        count = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count()
    count = count or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = min(count, max(1, math.ceil(limit)))
    return max(1, count)


def cgroup_cpu_limit(
    root: str | os.PathLike[str] = "/sys/fs/cgroup",
    proc_self: str | os.PathLike[str] = "/proc/self",
) -> float | None:
    """The CPU quota of this process's cgroup, in CPUs (e.g. 1.5), or None when unlimited.

    cgroup v2 keeps ``cpu.max`` ("max 100000" or "150000 100000") in the process's own group
    and its ancestors, each of which may limit it: the smallest wins. cgroup v1 keeps
    ``cpu.cfs_quota_us`` (-1 for none) and ``cpu.cfs_period_us``. Plain ``os.path``, not
    pathlib: this runs on every first call, and pathlib costs 5 ms to import.
    """
    top = os.path.normpath(os.fspath(root))
    try:
        lines = _read(os.path.join(os.fspath(proc_self), "cgroup")).splitlines()
    except OSError:
        return None
    limits: list[float] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            group = os.path.normpath(os.path.join(top, path.lstrip("/")))
            while True:
                limit = _read_cpu_max(os.path.join(group, "cpu.max"))
                if limit is not None:
                    limits.append(limit)
                if group == top or not group.startswith(top + os.sep):
                    break
                group = os.path.dirname(group)
        elif "cpu" in controllers.split(","):
            for base in (os.path.join(top, "cpu,cpuacct"), os.path.join(top, "cpu")):
                own = os.path.join(base, path.lstrip("/"))
                limit = _read_cfs(own) or _read_cfs(base)
                if limit is not None:
                    limits.append(limit)
                    break
    return min(limits) if limits else None


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read()


def _read_cpu_max(path: str) -> float | None:
    try:
        quota, _, period = _read(path).strip().partition(" ")
    except OSError:
        return None
    if quota == "max" or not period:
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _read_cfs(group: str) -> float | None:
    try:
        quota = int(_read(os.path.join(group, "cpu.cfs_quota_us")))
        period = int(_read(os.path.join(group, "cpu.cfs_period_us")))
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def gil_enabled() -> bool:
    """False on a free-threaded build running with the GIL disabled (3.13t and later)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def runnable_seconds(tasks: str = "/proc/self/task") -> float | None:
    """Seconds the threads of this process have spent on a CPU or waiting in the run queue
    for one, summed (Linux's per-thread ``schedstat``); None where the system does not say.

    Under a saturated GIL the thread holding it is always running or runnable, so this grows
    at one second per second even when other processes take the CPUs from it; its CPU time
    alone would grow only at the share of a core it gets. Threads that have ended no longer
    count: a difference of two readings is a lower bound.
    """
    try:
        names = os.listdir(tasks)
    except OSError:
        return None
    total = 0.0
    for name in names:
        seconds = _schedstat(os.path.join(tasks, name, "schedstat"))
        if seconds is not None:  # None: ended meanwhile
            total += seconds
    return total if names else None


def thread_runnable_seconds(ident: int | None) -> float | None:
    """Seconds the thread ``ident`` (a ``threading.get_ident()``) of this process has spent on a
    CPU or waiting in the run queue for one (Linux's ``schedstat``); None where unknown.

    A thread that computes while other processes take the CPUs is runnable all the time but
    on a CPU only part of it: its CPU clock alone makes it look as if it waited."""
    import threading

    thread = next((t for t in threading.enumerate() if t.ident == ident), None)
    native = getattr(thread, "native_id", None)
    return None if native is None else _schedstat(f"/proc/self/task/{native}/schedstat")


def _schedstat(path: str) -> float | None:
    """A task's seconds on a CPU plus in the run queue, from its ``schedstat`` file."""
    try:
        with open(path, "rb") as file:
            running, waiting = file.read().split()[:2]
        return (int(running) + int(waiting)) / 1e9
    except (OSError, ValueError):
        return None


def others_running(loadavg: str = "/proc/loadavg", tasks: str = "/proc/self/task") -> int | None:
    """How many threads of other processes are running or ready to run at this moment: the
    system's count (``/proc/loadavg``'s fourth field) less this process's threads in state R
    (in either of two readings around it: one of ours that became ready meanwhile once
    read as another process's). None where the system does not say.

    Not this process's time in the run queue: its own threads, more than the CPUs for a
    moment (the thread that reports a chunk, the next one starting), queued each other for
    0.3-0.9 of a core on an idle machine.
    """
    before = _running_tasks(tasks)
    try:
        with open(loadavg, "rb") as file:
            running = int(file.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return None
    if before is None:
        return None
    ours = before | (_running_tasks(tasks) or set())
    return max(0, running - len(ours))


def _running_tasks(tasks: str) -> set[str] | None:
    """This process's threads (their ids) in state R; None where the system does not say."""
    try:
        names = os.listdir(tasks)
    except OSError:
        return None
    running = set()
    for name in names:
        try:
            with open(os.path.join(tasks, name, "stat"), "rb") as file:
                stat = file.read()
        except OSError:
            continue  # ended meanwhile
        state = stat.rindex(b")") + 2
        if stat[state : state + 1] == b"R":
            running.add(name)
    return running


def inner_threads(workers: int, cpus: int | None = None) -> int:
    """Threads each of ``workers`` worker processes may give its native libraries (BLAS,
    OpenMP) so that workers x threads <= the CPUs (default: those this process may use)."""
    return max(1, (cpus if cpus is not None else available_cpus()) // max(1, workers))


#: Modules that bring a native thread pool (BLAS, OpenMP) into the process when imported.
NATIVE_THREAD_MODULES = ("numpy", "scipy", "sklearn", "torch", "numexpr", "cv2")


def native_threads_loaded() -> bool:
    """Whether a library with its own thread pool (numpy's BLAS, OpenMP) is loaded here."""
    return any(name in sys.modules for name in NATIVE_THREAD_MODULES)


def native_thread_limiter() -> bool | None:
    """Whether this process's native thread pools can be limited (threadpoolctl is
    installed); None when none is loaded."""
    global _threadpoolctl
    if not native_threads_loaded():
        return None
    if _threadpoolctl is None:  # looked for once per process
        _threadpoolctl = "threadpoolctl" in sys.modules or _findable("threadpoolctl")
    return _threadpoolctl


def _findable(name: str) -> bool:
    """Whether the top-level module ``name`` can be imported, without importing it: what
    ``importlib.util.find_spec`` asks the import system, without importing ``importlib``
    (0.5 ms of a first call that decides here)."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is not None and find_spec(name, None) is not None:
            return True
    return False


_threadpoolctl: bool | None = None
