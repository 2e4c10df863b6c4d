"""Worker processes limit their native libraries' threads: workers x threads <= CPUs."""

from __future__ import annotations

import pytest

import manyhands as mh
from manyhands.backends._limits import VARIABLES

from workloads import environment


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_each_worker_gives_blas_and_openmp_a_share_of_the_cpus(
    workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    expected = str(max(1, mh.available_cpus() // workers))
    with mh.Pool(backend="process", workers=workers) as pool:
        seen = list(pool.imap(environment, VARIABLES))
    assert seen == [expected] * len(VARIABLES)


def test_a_variable_the_caller_set_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the user's own choice
    with mh.Pool(backend="process", workers=2) as pool:
        omp, openblas = pool.map(environment, ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"])
    assert omp == "7"
    assert openblas == str(max(1, mh.available_cpus() // 2))


def test_explain_reports_the_limit() -> None:
    decision = mh.explain(abs, range(10), backend="process", workers=2)
    threads = max(1, mh.available_cpus() // 2)
    assert any(f"BLAS and OpenMP get {threads} thread" in reason for reason in decision.reasons)


def test_the_caller_and_threads_are_not_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert mh.map(environment, ["OPENBLAS_NUM_THREADS"], backend="thread") == [None]
