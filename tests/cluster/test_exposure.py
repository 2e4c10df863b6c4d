"""What a job opens to the network: every listening socket of the whole process tree, listed
with psutil while the job runs. The local Dask cluster listens on loopback addresses only; the
process backend listens nowhere.

Each job runs in a subprocess (a script or the CLI), so that the tree is the job's own and not
pytest's, which holds the session's cluster. The job's items list the sockets themselves
(``workloads.listening_sockets``), which makes the listing happen while every worker is up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest

import manyhands as mh
from manyhands.backends import _dask_cluster

import workloads
from conftest import HAS_DASK, TESTS, DaskCluster

needs_dask = pytest.mark.skipif(not HAS_DASK, reason="dask[distributed] is not installed")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *sys.path])
    env[workloads.SOCKETS_BELOW] = str(os.getpid())
    return env


def _sockets_of_a_job(tmp_path: Path, backend: str) -> list[list[Any]]:
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json
            import manyhands as mh
            import workloads

            found = mh.map(workloads.listening_sockets, range(8), backend={backend!r}, workers=2)
            print(json.dumps(sorted({{tuple(s) for item in found for s in item}})))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=90, env=_env()
    )
    assert done.returncode == 0, done.stderr
    sockets: list[list[Any]] = json.loads(done.stdout)
    return sockets


def _assert_loopback_only(sockets: list[list[Any]]) -> None:
    exposed = [s for s in sockets if not _dask_cluster.is_loopback(s[0])]
    assert exposed == [], f"listening beyond loopback (ip, port, pid): {exposed}"


@needs_dask
def test_a_local_cluster_listens_on_loopback_only(tmp_path: Path) -> None:
    sockets = _sockets_of_a_job(tmp_path, "dask")
    # The scheduler (its comm and HTTP server), the worker command (two nannies), and each of
    # the two workers (its comm and HTTP server): before the fix, the workers' HTTP servers
    # listened on 0.0.0.0.
    assert len({pid for _, _, pid in sockets}) >= 4, sockets
    assert len(sockets) >= 8, sockets
    _assert_loopback_only(sockets)


def test_the_process_backend_listens_nowhere(tmp_path: Path) -> None:
    assert _sockets_of_a_job(tmp_path, "process") == []


@needs_dask
def test_the_cli_on_a_local_cluster_listens_on_loopback_only() -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "manyhands", "run", "workloads:listening_sockets"),
            *("--range", "8", "--backend", "dask", "--workers", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    sockets = [s for line in done.stdout.splitlines() for s in json.loads(line)["result"]]
    assert len({pid for _, _, pid in sockets}) >= 4, sockets
    _assert_loopback_only(sockets)


@needs_dask
def test_the_test_suites_own_cluster_listens_on_loopback_only(dask_cluster: DaskCluster) -> None:
    sockets = []
    for proc in dask_cluster.procs:
        root = psutil.Process(proc.pid)
        for process in [root, *root.children(recursive=True)]:
            sockets += [
                [s.laddr.ip, s.laddr.port, process.pid]
                for s in process.net_connections(kind="inet")
                if s.status == psutil.CONN_LISTEN
            ]
    assert len(sockets) >= 5, sockets  # the scheduler's comm and HTTP, two workers' each
    _assert_loopback_only(sockets)


@pytest.mark.parametrize(
    ("ip", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("fe80::1%eth0", False),
    ],
)
def test_what_counts_as_loopback(ip: str, loopback: bool) -> None:
    assert _dask_cluster.is_loopback(ip) is loopback


@needs_dask
def test_a_local_cluster_that_listens_elsewhere_is_stopped_unused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No Dask setting this suite could use opens a socket beyond loopback without really
    # exposing one, so the listing is what is replaced: the refusal and the clean-up are real.
    import dask

    monkeypatch.setattr(
        _dask_cluster.LoopbackCluster, "exposed", lambda self: ["0.0.0.0:43159 (pid 1)"]
    )
    refused = pytest.raises(mh.ClusterUnavailable, match=r"0\.0\.0\.0:43159 \(pid 1\)")
    with dask.config.set({"scheduler-address": None}), refused as info:
        mh.map(workloads.square, range(3), backend="dask", workers=1)
    assert "Dask(address='tcp://host:8786')" in str(info.value)
    # no_leaks (conftest) checks that the cluster's processes are gone.
