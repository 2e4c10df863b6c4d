"""The thread backend limits this process's BLAS and OpenMP threads while it runs, so that
its threads x theirs <= the CPUs, and restores them after; a caller's own variables win."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import manyhands as mh
from manyhands._system import available_cpus

np = pytest.importorskip("numpy")  # the library whose BLAS is limited (a bench dependency)
threadpoolctl = pytest.importorskip("threadpoolctl")  # the blas extra

#: More threads than CPUs: each thread's BLAS calls then get one thread, on any machine.
WIDE = 2 * available_cpus()


def blas_threads(_: object = None) -> int:
    pools = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    if not pools:
        pytest.skip("numpy is built without a BLAS that threadpoolctl knows")
    return int(pools[0]["num_threads"])


def test_blas_gets_one_thread_per_cpu_left_while_the_threads_run_then_its_own_back() -> None:
    with threadpoolctl.threadpool_limits(limits=3):  # the caller's setting, whatever it was
        assert blas_threads() == 3
        inside = mh.map(blas_threads, range(4), backend="thread", workers=WIDE)
        assert set(inside) == {1}
        assert blas_threads() == 3


def test_a_pool_holds_the_limit_for_its_life_and_two_pools_share_it() -> None:
    with threadpoolctl.threadpool_limits(limits=3):
        first = mh.Pool(backend="thread", workers=WIDE)
        second = mh.Pool(backend="thread", workers=WIDE)
        # imap and submit hand work over from the caller's thread (here the main one).
        assert set(first.imap(two_at_once(), range(2))) == {1}
        met = two_at_once()
        assert [f.result() for f in [second.submit(met, n) for n in range(2)]] == [1, 1]
        first.shutdown()
        assert blas_threads() == 1  # the second still runs
        second.shutdown()
        assert blas_threads() == 3


def test_one_thread_at_a_time_needs_no_limit() -> None:
    with threadpoolctl.threadpool_limits(limits=3), mh.Pool(backend="thread") as pool:
        assert pool.submit(blas_threads).result() == 3  # auto's probe: one item, alone


def two_at_once() -> Any:
    """``blas_threads``, once two threads run it together (so that two threads are there)."""
    both = threading.Barrier(2)

    def meet(_: object) -> int:
        both.wait(timeout=30)
        return blas_threads()

    return meet


def test_one_thread_is_not_limited() -> None:
    with threadpoolctl.threadpool_limits(limits=3):
        assert mh.map(blas_threads, range(2), backend="thread", workers=1) == [3, 3]


def test_the_callers_own_variable_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    with threadpoolctl.threadpool_limits(limits=3):
        assert set(mh.map(blas_threads, range(4), backend="thread", workers=WIDE)) == {3}


def test_explain_says_what_the_threads_native_libraries_get() -> None:
    decision = mh.explain(blas_threads, range(4), backend="thread", workers=WIDE)
    said = " ".join(decision.reasons)
    assert "BLAS and OpenMP get 1 thread while the job's threads run" in said
