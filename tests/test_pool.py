"""Pool: warm workers, the Executor interface, initializers, statistics, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from concurrent.futures import BrokenExecutor, Future, as_completed
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures.thread import BrokenThreadPool
from typing import Any

import pytest

import manyhands as mh

import workloads


def test_pool_map_imap_starmap(backend: str) -> None:
    with mh.Pool(backend=backend, workers=2) as pool:
        assert list(pool.map(workloads.square, range(100))) == [x * x for x in range(100)]
        assert list(pool.imap(workloads.square, iter(range(50)))) == [x * x for x in range(50)]
        assert pool.starmap(workloads.add, [(1, 2), (3, 4)]) == [3, 7]
        assert sorted(pool.imap(workloads.square, range(10), ordered=False)) == sorted(
            x * x for x in range(10)
        )


def test_process_workers_stay_warm_between_calls() -> None:
    with mh.Pool(backend="process", workers=2) as pool:
        first = set(pool.imap(workloads.pid_of, range(200), chunksize=1))
        second = set(pool.imap(workloads.pid_of, range(200), chunksize=1))
    assert first == second
    assert len(first) == 2


def test_submit_returns_futures(backend: str) -> None:
    with mh.Pool(backend=backend, workers=2) as pool:
        futures = [pool.submit(workloads.add, i, b=i) for i in range(20)]
        assert all(isinstance(future, Future) for future in futures)
        assert sorted(f.result() for f in as_completed(futures)) == [2 * i for i in range(20)]


def test_submitted_exception_is_the_users_own(backend: str) -> None:
    with mh.Pool(backend=backend, workers=2) as pool:
        future = pool.submit(workloads.fail_at_5, 5)
        error = future.exception()
    assert isinstance(error, KeyError)


def test_pool_works_with_run_in_executor(parallel_backend: str) -> None:
    async def main(pool: mh.Pool) -> list[int]:
        loop = asyncio.get_running_loop()
        calls = [loop.run_in_executor(pool, workloads.square, i) for i in range(10)]
        return list(await asyncio.gather(*calls))

    with mh.Pool(backend=parallel_backend, workers=2) as pool:
        assert asyncio.run(main(pool)) == [i * i for i in range(10)]


def test_initializer_runs_in_each_worker(backend: str) -> None:
    with mh.Pool(
        backend=backend, workers=2, initializer=workloads.set_state, initargs=("ready",)
    ) as pool:
        assert list(pool.map(workloads.get_state, range(20))) == ["ready"] * 20


def test_a_failing_initializer_breaks_the_pool_as_the_standard_librarys_do(
    backend: str,
) -> None:
    if backend == "serial":  # the initializer runs in the caller, at once
        with pytest.raises(RuntimeError, match="cannot open the database") as raised:
            mh.Pool(backend=backend, initializer=workloads.raise_in_initializer)
        assert any("initializer" in note for note in raised.value.__notes__)
        return
    expected = {"thread": BrokenThreadPool, "process": BrokenProcessPool}.get(
        backend, BrokenExecutor
    )
    with mh.Pool(backend=backend, workers=2, initializer=workloads.raise_in_initializer) as pool:
        with pytest.raises(expected) as caught:
            list(pool.map(workloads.square, range(10)))
        cause = caught.value.__cause__
        assert isinstance(cause, RuntimeError)
        assert "cannot open the database" in str(cause)
        assert any("initializer" in note for note in cause.__notes__)
        assert "initializer" in str(caught.value)
        with pytest.raises(expected):
            pool.submit(workloads.square, 3).result()
        with pytest.raises(expected):  # broken for good, as BrokenThreadPool's pools are
            pool.submit(workloads.square, 4)


def test_statistics_count_items_and_busy_time(backend: Any) -> None:
    with mh.Pool(backend=backend, workers=2) as pool:
        list(pool.map(workloads.tiny_work, range(500)))
        pool.submit(workloads.square, 3).result()
        with pytest.raises(ValueError, match="bad"):
            list(pool.map(workloads.fail_on({0}), [0]))
        stats = pool.statistics()
    assert stats.items_done == 501
    assert stats.items_failed == 1
    # Processes(threads=...) is the process backend, its workers running threads.
    assert stats.backends == ("process" if isinstance(backend, mh.Processes) else backend,)
    assert stats.busy
    assert all(seconds >= 0 for seconds in stats.busy.values())
    assert stats.elapsed > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.items_done = 0  # type: ignore[misc]


def test_closed_pool_refuses_work(backend: str) -> None:
    pool = mh.Pool(backend=backend)
    pool.shutdown()
    with pytest.raises(mh.PoolClosedError, match="shut down"):
        pool.map(workloads.square, [1])
    with pytest.raises(mh.PoolClosedError):
        pool.submit(workloads.square, 1)
    pool.shutdown()  # twice is fine


def test_shutdown_waits_for_submitted_work(parallel_backend: str) -> None:
    pool = mh.Pool(backend=parallel_backend, workers=2)
    futures = [pool.submit(workloads.tiny_work, i) for i in range(200)]
    pool.shutdown(wait=True)
    assert [f.result() for f in futures] == list(range(200))


def test_shutdown_can_cancel_queued_futures() -> None:
    started = threading.Event()
    all_cancelled = threading.Event()

    def first_call() -> str:
        started.set()
        all_cancelled.wait(timeout=30)  # released by the last queued future's cancellation
        return "finished"

    pool = mh.Pool(backend="thread", workers=1)
    running = pool.submit(first_call)
    queued = [pool.submit(workloads.square, i) for i in range(50)]
    queued[-1].add_done_callback(lambda _: all_cancelled.set())
    assert started.wait(timeout=30)
    pool.shutdown(wait=True, cancel_futures=True)
    assert running.result() == "finished"
    assert all(future.cancelled() for future in queued)


def test_auto_backend_pool_records_what_it_used() -> None:
    with mh.Pool(workers=2) as pool:
        assert list(pool.map(workloads.square, range(10))) == [x * x for x in range(10)]
        assert pool.statistics().backends  # the backend auto chose


def test_shutdown_from_a_future_callback_does_not_deadlock() -> None:
    pool = mh.Pool(backend="process", workers=1)
    called = threading.Event()

    def stop_the_pool(_: Future[int]) -> None:
        pool.shutdown()  # runs on the pool's reader thread
        called.set()

    future = pool.submit(workloads.square, 4)
    future.add_done_callback(stop_the_pool)
    assert future.result() == 16
    assert called.wait(timeout=60)
    for thread in threading.enumerate():
        if thread.name == "manyhands-shutdown":
            thread.join(timeout=60)
    # The leak check (conftest) asserts that the workers and the reader are gone.
