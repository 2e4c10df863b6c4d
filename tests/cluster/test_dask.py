"""backend="dask" on a real cluster: `dask scheduler` and `dask worker` subprocesses on
127.0.0.1, or the local cluster manyhands starts for a call. The contract suite (map, imap,
errors, retries, journal) runs on "dask" too, through the ``backend`` fixture.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import BrokenExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest

import manyhands as mh

import workloads
from conftest import HAS_DASK, TESTS, DaskCluster

pytestmark = pytest.mark.skipif(not HAS_DASK, reason="dask[distributed] is not installed")


@pytest.fixture
def no_default_address() -> Any:
    """Neither address= nor client=, and no DASK_SCHEDULER_ADDRESS: a local cluster."""
    import dask

    with dask.config.set({"scheduler-address": None}):
        yield


def _refuses_connections(address: str) -> bool:
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


# -- where the work runs -----------------------------------------------------------------


@pytest.mark.usefixtures("no_default_address")
def test_without_an_address_a_local_cluster_runs_the_call_and_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="manyhands"):
        pids = mh.map(workloads.pid_of, range(40), backend="dask")
    assert os.getpid() not in pids
    started = next(r.message for r in caplog.records if "started a local Dask" in r.message)
    scheduler = re.search(r"scheduler (tcp://127\.0\.0\.1:\d+)", started)
    assert scheduler is not None, started
    assert re.search(r"dashboard http://127\.0\.0\.1:\d+/status", started), started
    assert any("stopped the local Dask cluster" in r.message for r in caplog.records)
    # Stopped by the time the call returns (no_leaks also checks that no process is left).
    assert _refuses_connections(scheduler.group(1))


@pytest.mark.usefixtures("no_default_address")
def test_a_pool_keeps_its_local_cluster_until_shutdown() -> None:
    with mh.Pool(backend="dask", workers=1) as pool:
        first = list(pool.map(workloads.pid_of, range(10)))
        assert pool.submit(workloads.pid_of, 0).result() == first[0]  # the same worker
    assert len(set(first)) == 1
    assert pool.statistics().items_done == 11  # no_leaks: the cluster is gone with the Pool


def test_an_unguarded_script_runs_on_a_local_cluster(tmp_path: Path) -> None:
    # No `if __name__ == "__main__":`: Dask's LocalCluster would start a cluster again in
    # each worker; manyhands' local cluster does not import the caller's __main__.
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import manyhands as mh

            def cube(x):
                return x ** 3

            print(sum(mh.map(cube, range(100), backend="dask")))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=90, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sum(x**3 for x in range(100)))


def test_address_runs_on_that_cluster(dask_cluster: DaskCluster) -> None:
    pids = mh.map(workloads.pid_of, range(50), backend=mh.Dask(address=dask_cluster.address))
    assert set(pids) <= set(dask_cluster.worker_pids().values())


def test_a_client_is_used_as_given_and_left_open(dask_cluster: DaskCluster) -> None:
    import distributed

    with dask_cluster.client() as client:
        squares = mh.map(workloads.square, range(300), backend=mh.Dask(client=client))
        assert squares == [x * x for x in range(300)]
        assert client.status == "running"
        with mh.Pool(backend=mh.Dask(client=client)) as pool:
            assert pool.starmap(workloads.add, [(i, i) for i in range(20)]) == list(range(0, 40, 2))
        assert client.status == "running"
    with pytest.raises(ValueError, match="No clients found"):
        distributed.default_client()  # nothing global was set


def test_a_large_function_travels_once_and_works(dask_cluster: DaskCluster) -> None:
    import distributed

    blob = os.urandom(3 << 20)  # pickled with the function: larger than the scatter limit
    handle = mh.shared(list(range(1000)))  # travels by value, inside the function

    def size_plus(x: int) -> int:
        return len(blob) + len(handle.value) + x

    def large_keys(dask_scheduler: Any) -> list[str]:
        return [str(ts.key) for ts in dask_scheduler.tasks.values() if (ts.nbytes or 0) > 3e6]

    with (
        distributed.Client(dask_cluster.address, set_as_default=False) as client,
        mh.Pool(backend=mh.Dask(client=client)) as pool,
    ):
        results = list(pool.map(size_plus, range(30)))
        assert results == [len(blob) + 1000 + x for x in range(30)]
        # One object of the function's size on the cluster, whatever the number of tasks:
        # it was scattered once, and each task refers to it.
        assert len(client.run_on_scheduler(large_keys)) == 1


def test_initializer_runs_on_each_worker_before_its_items(dask_cluster: DaskCluster) -> None:
    with mh.Pool(
        backend=mh.Dask(address=dask_cluster.address),
        initializer=workloads.set_state,
        initargs=("ready",),
    ) as pool:
        assert list(pool.map(workloads.get_state, range(40))) == ["ready"] * 40


def test_a_failing_initializer_breaks_the_pool_with_its_error(dask_cluster: DaskCluster) -> None:
    with (
        mh.Pool(
            backend=mh.Dask(address=dask_cluster.address),
            initializer=workloads.raise_in_initializer,
        ) as pool,
        pytest.raises(BrokenExecutor, match="initializer failed") as caught,
    ):
        list(pool.map(workloads.square, range(10)))
    cause = caught.value.__cause__
    assert isinstance(cause, RuntimeError)
    assert "cannot open the database" in str(cause)
    assert "initializer" in "\n".join(getattr(cause, "__notes__", []))


def test_progress_bar_counts_every_item(
    dask_cluster: DaskCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    mh.map(
        workloads.square, range(200), backend=mh.Dask(address=dask_cluster.address), progress=True
    )
    assert "200/200" in capsys.readouterr().err


def test_amap_runs_on_the_cluster_without_blocking_the_loop(dask_cluster: DaskCluster) -> None:
    async def main() -> list[int]:
        return await mh.amap(
            workloads.square, range(100), backend=mh.Dask(address=dask_cluster.address)
        )

    assert asyncio.run(main()) == [x * x for x in range(100)]


# -- failures ----------------------------------------------------------------------------


def test_a_worker_killed_mid_run_loses_no_item(tmp_path: Path) -> None:
    cluster = DaskCluster(tmp_path)
    try:
        before = cluster.worker_pids()
        items = [(str(tmp_path), x) for x in range(60)]
        results = mh.imap(workloads.marked_gate, items, backend=mh.Dask(address=cluster.address))
        first = [next(results) for _ in range(20)]  # items 0-19 pass the gate
        # Wait until a worker is inside a gated item, so that it dies with work in hand.
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            running = {int(p.name.rsplit("-", 1)[1]) for p in tmp_path.glob("started-*")}
            victim = next(iter(running & set(before.values())), None)
            time.sleep(0.01)  # waits on files the workers write
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        psutil.Process(victim).wait(timeout=30) if psutil.pid_exists(victim) else None
        (tmp_path / "open").touch()
        rest = list(results)
        assert first + rest == [x * x for x in range(60)]
        assert victim not in cluster.worker_pids().values()  # it died; its nanny replaced it
    finally:
        cluster.stop()


def test_one_item_that_kills_its_worker_fails_alone(dask_cluster: DaskCluster) -> None:
    results = mh.map(
        workloads.bad_exit,
        range(12),
        backend=mh.Dask(address=dask_cluster.address),
        errors="return",
    )
    assert [r for i, r in enumerate(results) if i != 7] == [x for x in range(12) if x != 7]
    failure = results[7]
    assert isinstance(failure, mh.Failure)
    assert isinstance(failure.exception, mh.WorkerCrashed)
    assert "Dask worker" in str(failure.exception)


@pytest.mark.usefixtures("no_default_address")
def test_a_timed_out_item_is_reported_and_its_worker_restarted(tmp_path: Path) -> None:
    # One worker: the items after the hung one can run only once that worker is restarted.
    items = [(str(tmp_path), x) for x in range(6)]
    results = mh.map(
        workloads.gated_first, items, backend="dask", workers=1, timeout=1, errors="return"
    )
    assert isinstance(results[0], mh.Failure)
    assert isinstance(results[0].exception, mh.TaskTimeout)
    assert results[1:] == [1, 2, 3, 4, 5]


def test_on_a_given_cluster_a_timed_out_item_is_reported_and_its_result_dropped(
    dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    # The hung item's thread runs on (it is not ours to kill): no other item may be queued
    # behind it, or that one times out too (every sixth did, before they were kept away).
    items = [(str(tmp_path), x) for x in range(20)]
    try:
        results = mh.map(
            workloads.gated_first,
            items,
            backend=mh.Dask(address=dask_cluster.address),
            timeout=1,
            errors="return",
        )
    finally:
        (tmp_path / "open").touch()  # the worker's thread cannot be killed: let it end
    assert isinstance(results[0], mh.Failure)
    assert isinstance(results[0].exception, mh.TaskTimeout)
    assert results[1:] == list(range(1, 20))


def test_a_killed_caller_takes_its_local_cluster_with_it(tmp_path: Path) -> None:
    script = tmp_path / "caller.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(TESTS)!r})
            import manyhands as mh
            import workloads

            items = [({str(tmp_path)!r}, x) for x in range(40)]
            for result in mh.imap(workloads.marked_gate, items, backend="dask"):
                print(result, flush=True)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    caller = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert caller.stdout is not None
        for _ in range(20):
            assert caller.stdout.readline()  # items 0-19 done: the cluster is up and busy
        cluster = psutil.Process(caller.pid).children(recursive=True)
        assert cluster
        caller.kill()
        caller.wait()
        _, alive = psutil.wait_procs(cluster, timeout=30)
        assert not alive, f"left running after the caller died: {alive}"
    finally:
        caller.kill()
        caller.wait()
        (tmp_path / "open").touch()


# -- arguments ----------------------------------------------------------------------------


def test_where_dask_connects_is_checked(dask_cluster: DaskCluster) -> None:
    with (
        dask_cluster.client() as client,
        pytest.raises(mh.ArgumentValueError, match="pass one"),
    ):
        mh.map(
            workloads.square,
            range(3),
            backend=mh.Dask(address=dask_cluster.address, client=client),
        )
    with pytest.raises(TypeError, match=r"Dask\(client=\) must be a distributed\.Client"):
        mh.map(workloads.square, range(3), backend=mh.Dask(client="tcp://127.0.0.1:1"))
    with pytest.raises(TypeError, match=r"Dask\(address=\) must be a scheduler address"):
        mh.map(workloads.square, range(3), backend=mh.Dask(address=8786))
    with pytest.raises(TypeError, match="unexpected keyword argument 'address'"):
        mh.map(workloads.square, range(3), backend="dask", address=dask_cluster.address)


# distributed keeps its event-loop thread after a Client failed to connect (2026.8: the
# failed start is never undone); it serves every later Client of the process.
@pytest.mark.leaves_thread("IO loop")
def test_an_address_where_nobody_listens_is_named() -> None:
    import dask
    import distributed  # noqa: F401  (its config defaults must exist before config.set)

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(mh.ClusterUnavailable, match=re.escape(f"Dask(address={address!r})")),
    ):
        mh.map(workloads.square, range(3), backend=mh.Dask(address=address))


def test_without_dask_the_error_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    with pytest.raises(mh.MissingDependency, match=re.escape("pip install 'manyhands[dask]'")):
        mh.map(workloads.square, range(3), backend="dask")
    assert issubclass(mh.MissingDependency, ImportError)
    assert issubclass(mh.ClusterUnavailable, ConnectionError)


def test_the_cli_runs_on_a_cluster_by_address(dask_cluster: DaskCluster) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), *sys.path]))
    done = subprocess.run(
        [
            *(sys.executable, "-m", "manyhands", "run", "workloads:square", "--range", "30"),
            *("--backend", "dask", "--address", dask_cluster.address),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [f'{{"index": {i}, "result": {i * i}}}' for i in range(30)]


def test_the_cli_says_where_its_local_cluster_runs() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *sys.path])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "manyhands",
            "run",
            "workloads:square",
            "--range",
            "5",
            "--backend",
            "dask",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"started a local Dask cluster.*scheduler tcp://127\.0\.0\.1:", done.stderr)
    assert len(done.stdout.splitlines()) == 5
