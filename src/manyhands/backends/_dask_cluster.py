"""A Dask cluster of manyhands' own on 127.0.0.1, for ``backend="dask"`` without an address.

One ``dask scheduler`` and one ``dask worker --nworkers N --nthreads 1`` run as subprocesses of
the caller, listening on the loopback interface only (the dashboard and each worker's HTTP
server too: Dask binds those to every interface unless told an address), and are stopped by
their pids when the call ends. Once the workers have joined, ``exposed`` lists what the
processes actually listen on, and a cluster with a socket elsewhere is stopped, not used.

Why not ``distributed.LocalCluster``: its workers are started with multiprocessing's *spawn*,
which imports the caller's ``__main__`` again in every worker. A script without an
``if __name__ == "__main__":`` guard then starts a cluster from inside each worker and fails
with a page of tracebacks (tried with distributed 2026.8). Dask's own command-line entry points
import nothing of the caller's, so they behave the same from a script, a notebook or a REPL,
as the process backend does. The caller's ``sys.path`` travels in ``PYTHONPATH``, so functions
from the caller's modules load by reference as they would in the caller.

A caller killed with SIGKILL cannot stop its cluster: ``_dask_watchdog`` (a Dask preload) makes
the scheduler and the worker nannies exit within half a second of the caller's death.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import IO, Any

from .._errors import ClusterUnavailable

__all__ = ["LoopbackCluster", "is_loopback"]

#: Seconds the scheduler may take to write its address, and the workers to join it.
START_TIMEOUT = 60.0
#: Seconds a process gets to exit after SIGTERM before it is killed.
_EXIT_GRACE = 5.0
#: Seconds the worker command gets once the scheduler is gone (it needs 0.2 s).
_WORKER_GRACE = 1.0
_POLL = 0.01
_WATCHDOG = "manyhands.backends._dask_watchdog"


class LoopbackCluster:
    """Scheduler and workers on 127.0.0.1; ``address`` and ``dashboard`` say where."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._dir = tempfile.mkdtemp(prefix="manyhands-dask-")
        self._log: IO[bytes] = open(os.path.join(self._dir, "cluster.log"), "w+b")  # noqa: SIM115
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        scheduler_file = os.path.join(self._dir, "scheduler.json")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env["MANYHANDS_PARENT_PID"] = str(os.getpid())
        # One task per thread at a time: a task queued behind a running one at a worker
        # would be blamed with it if that worker died (Dask's own default is 1.1).
        env["DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION"] = "1.0"
        # A worker that dies blames the task it ran at once, as the process backend does,
        # rather than after three more deaths (the backend sends one task per thread once a
        # worker has died, and tries a blamed single item once more: see daskdist).
        env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "0"
        try:
            self._spawn(
                ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0"],
                ["--dashboard-address", "127.0.0.1:0", "--scheduler-file", scheduler_file],
                ["--preload", _WATCHDOG],
                env=env,
            )
            self._spawn(
                ["distributed.cli.dask_worker", "--scheduler-file", scheduler_file],
                ["--nworkers", str(workers), "--nthreads", "1", "--host", "127.0.0.1"],
                ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"],
                ["--local-directory", self._dir],
                # Each worker imports what runs chunks as it starts, not during the first one.
                ["--preload-nanny", _WATCHDOG, "--preload", "manyhands.backends._dask_task"],
                env=env,
            )
            info = self._wait_for_file(scheduler_file)
        except BaseException:
            self.stop()
            raise
        self.address: str = info["address"]
        dashboard = info.get("services", {}).get("dashboard")
        #: The dashboard's address, or None when it could not start (it needs bokeh).
        self.dashboard: str | None = (
            f"http://127.0.0.1:{dashboard}/status" if dashboard is not None else None
        )

    def exposed(self) -> list[str]:
        """The listening sockets of the cluster's processes not on a loopback address.

        Dask opens more than it is told to: with ``--host 127.0.0.1 --no-dashboard`` every
        worker still served its health and metrics routes on ``0.0.0.0`` (distributed
        2026.8), and a user's Dask configuration reaches these processes too. So what the
        processes actually listen on is checked, not assumed. Each entry reads
        ``"0.0.0.0:43159 (pid 24160)"``. A process that has exited, or whose sockets the
        platform does not show to us, is skipped.
        """
        import psutil

        found = []
        for _, proc in self._procs:
            try:
                root = psutil.Process(proc.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for process in tree:
                try:
                    sockets = process.net_connections(kind="inet")
                except psutil.Error:
                    continue
                for sock in sockets:
                    if sock.status == psutil.CONN_LISTEN and not is_loopback(sock.laddr.ip):
                        found.append(f"{sock.laddr.ip}:{sock.laddr.port} (pid {process.pid})")
        return found

    @property
    def pids(self) -> list[int]:
        """The scheduler's pid, then the worker command's (whose children are the workers)."""
        return [proc.pid for _, proc in self._procs]

    def _spawn(self, *parts: list[str], env: dict[str, str]) -> None:
        command = [sys.executable, "-m"] + [arg for part in parts for arg in part]
        options: dict[str, Any] = {}
        if sys.platform == "win32":
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            # A session of its own: a Ctrl-C typed in the terminal reaches only the caller,
            # which then stops the cluster itself.
            options["start_new_session"] = True
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env=env,
            **options,
        )
        self._procs.append((parts[0][0], proc))

    def _wait_for_file(self, path: str) -> dict[str, Any]:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            for what, proc in self._procs:
                if proc.poll() is not None:
                    raise ClusterUnavailable(
                        f"the local Dask cluster did not start: {what} exited with "
                        f"code {proc.returncode}. Its log ends:\n{self.log_tail()}"
                    )
            with contextlib.suppress(OSError, ValueError):
                with open(path, encoding="utf-8") as file:
                    info: dict[str, Any] = json.load(file)
                if info.get("address"):
                    return info
            if time.monotonic() > deadline:
                raise ClusterUnavailable(
                    f"the local Dask scheduler did not start within {START_TIMEOUT:g} s. "
                    f"Its log ends:\n{self.log_tail()}"
                )
            time.sleep(_POLL)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the scheduler and workers wrote (for error messages)."""
        try:
            self._log.flush()
            self._log.seek(0)
            text = self._log.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the scheduler, then the workers, and clean up.

        With the scheduler gone, a worker command exits in 0.2 s of SIGTERM; but one whose
        nanny has restarted a worker lingered 5 s, so after a short grace its whole process
        group (its nannies' workers included) is killed: nothing of the call is left in it.
        """
        for what, proc in self._procs:
            _terminate(proc, grace=_EXIT_GRACE if what.endswith("scheduler") else _WORKER_GRACE)
        self._procs.clear()
        with contextlib.suppress(OSError):
            self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def is_loopback(ip: str) -> bool:
    """Whether a socket bound to ``ip`` is reachable only from this machine.

    ``0.0.0.0`` and ``::`` (every interface) are not; ``::ffff:127.0.0.1`` (IPv4 inside IPv6)
    is, and a zone such as ``fe80::1%eth0`` is dropped before parsing.
    """
    import ipaddress

    address = ipaddress.ip_address(ip.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _terminate(proc: subprocess.Popen[bytes], *, grace: float) -> None:
    with contextlib.suppress(OSError):
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            if sys.platform == "win32":
                proc.kill()  # its workers follow: each watches its nanny
            else:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: pgid == pid
        proc.wait()
