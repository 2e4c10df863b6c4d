"""backend="auto" on real workloads: the decision records, and that results stay right."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

import manyhands as mh

import workloads


def test_explain_sleep_bound() -> None:
    decision = mh.explain(workloads.sleepy, range(100))
    assert decision.backend == "thread"
    assert decision.workers is None
    assert decision.evidence["cpu_ratio"] < 0.5


def test_explain_cpu_bound() -> None:
    decision = mh.explain(workloads.busy, range(50))
    expected = "process" if mh.available_cpus() > 1 else "serial"
    assert decision.backend == expected, decision
    assert decision.evidence["cpu_ratio"] > 0.5


def test_explain_trivial() -> None:
    decision = mh.explain(workloads.square, range(100_000))
    assert decision.backend == "serial"


def test_explain_async() -> None:
    assert mh.explain(workloads.async_sleepy, range(10)).backend == "asyncio"


def test_explain_respects_given_options() -> None:
    decision = mh.explain(workloads.square, range(10), backend="process", workers=3)
    assert (decision.backend, decision.workers) == ("process", 3)
    assert mh.explain(workloads.sleepy, range(10), workers=5, chunksize=2).chunksize == 2


def test_explain_on_empty_input() -> None:
    assert mh.explain(workloads.square, []).backend == "serial"


def test_explain_raises_the_probe_items_error() -> None:
    with pytest.raises(KeyError):
        mh.explain(workloads.fail_at_5, [5])


@pytest.mark.parametrize(
    ("fn", "expected", "backend"),
    [
        (workloads.sleepy, lambda x: x, "thread"),
        (workloads.square, lambda x: x * x, "serial"),
        (workloads.async_sleepy, lambda x: x, "asyncio"),
    ],
)
def test_real_runs_record_their_decision(
    fn: Callable[[int], int], expected: Callable[[int], int], backend: str
) -> None:
    items = range(50_000) if backend == "serial" else range(40)
    with mh.Pool() as pool:
        assert list(pool.map(fn, items)) == [expected(x) for x in items]
        decisions = pool.statistics().decisions
    assert [decision.backend for decision in decisions] == [backend]


def test_cpu_bound_run_goes_to_processes_and_stays_correct() -> None:
    # 0.72 s of work, so that processes pay whatever start-up the session has measured so
    # far: with 12 items (0.36 s) a full suite once decided serial, the start-up it had
    # measured making processes look no faster.
    with mh.Pool() as pool:
        assert list(pool.map(workloads.busy, range(24))) == list(range(24))
        decisions = pool.statistics().decisions
    expected = "process" if mh.available_cpus() > 1 else "serial"
    assert decisions[0].backend == expected, decisions[0]


def test_decision_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="manyhands"):
        mh.map(workloads.sleepy, range(10))
    assert any("auto decision: thread" in record.getMessage() for record in caplog.records)


def test_progress_bar_shows_the_decision(capsys: pytest.CaptureFixture[str]) -> None:
    mh.map(workloads.sleepy, range(10), progress=True)
    assert "sleepy [thread]" in capsys.readouterr().err


def test_auto_with_failures_raises_the_users_exception() -> None:
    with pytest.raises(ValueError, match="item 30 is bad"):
        mh.map(workloads.fail_on({30}), range(100))


@pytest.mark.skipif(mh.available_cpus() < 2, reason="processes need two CPUs to pay")
def test_a_decision_is_revised_once_when_the_work_changes() -> None:
    with mh.Pool() as pool:
        assert list(pool.map(workloads.fast_first_then_busy, range(80))) == list(range(80))
        decisions = pool.statistics().decisions
    # The trivial probe item reads as "run it here" (or, if the machine stalls during its few
    # microseconds, as waiting work for threads); either way the busy items that follow
    # must revise the decision, once, to processes.
    assert decisions[0].backend in ("serial", "thread")
    assert [(d.backend, d.revised) for d in decisions[1:]] == [("process", True)]


def test_explicit_workers_win_under_auto() -> None:
    with mh.Pool(workers=3) as pool:
        list(pool.map(workloads.sleepy, range(12)))
        (decision,) = pool.statistics().decisions
    assert (decision.backend, decision.workers) == ("thread", 3)


@pytest.mark.skipif(mh.available_cpus() < 2, reason="processes need two CPUs to pay")
def test_threads_chosen_for_waiting_are_revised_when_the_gil_stays_busy() -> None:
    with mh.Pool() as pool:
        assert list(pool.map(workloads.waits_then_computes, range(100))) == list(range(100))
        decisions = pool.statistics().decisions
    made = [(d.backend, d.revised) for d in decisions]
    # Off threads, to processes; or to this thread where the processes' start-up, measured
    # on a loaded machine, would not pay for the items left (a slower start, a later review).
    assert made[0] == ("thread", False), "\n".join(map(str, decisions))
    assert len(made) >= 2, "\n".join(map(str, decisions))
    assert made[1] in [("process", True), ("serial", True)], "\n".join(map(str, decisions))


def test_a_pools_auto_jobs_reuse_the_backends_they_opened() -> None:
    with mh.Pool() as pool:
        list(pool.map(workloads.square, range(100)))
        opened = dict(pool._runner.backends._opened)  # white box: a long-lived Pool must not grow
        for _ in range(5):
            list(pool.map(workloads.square, range(100)))
        assert pool._runner.backends._opened == opened


@pytest.fixture
def forgetful(monkeypatch: pytest.MonkeyPatch) -> None:
    """No function is remembered as tiny from the tests before (white box)."""
    from manyhands._core import _auto

    monkeypatch.setattr(_auto, "_tiny_code", {})


@pytest.mark.usefixtures("forgetful")
def test_a_later_job_of_a_tiny_function_probes_in_the_callers_thread() -> None:
    here = threading.get_ident()
    first = mh.map(workloads.nap_then_ident, [0] * 2000)
    assert first[0] != here  # the first job's probe ran on a thread of its own
    # and the rest here, tiny items (after a second probe on that thread, where the first
    # item, cold, was near a hand-off's time)
    assert set(first[2:]) == {here}
    second = mh.map(workloads.nap_then_ident, [0] * 2000)
    assert set(second) == {here}  # no thread, not even for the probe


@pytest.mark.usefixtures("forgetful")
def test_a_tiny_function_whose_items_turn_slow_is_decided_from_its_first_item() -> None:
    from manyhands._core import _auto

    here = threading.get_ident()
    mh.map(workloads.nap_then_ident, [0] * 2000)
    idents = mh.map(workloads.nap_then_ident, [0.02] * 40)
    assert idents[0] == here  # the probe, in this thread
    # Waiting work, measured on that item: the rest went to threads.
    assert here not in idents[1:]
    assert len(set(idents[1:])) >= 2
    assert _auto._code_of(workloads.nap_then_ident) not in _auto._tiny_code  # forgotten
    third = mh.map(workloads.nap_then_ident, [0] * 100)
    assert third[0] != here  # probed on a thread again


@pytest.mark.usefixtures("forgetful")
def test_a_job_with_a_timeout_probes_on_a_thread_even_for_a_tiny_function() -> None:
    here = threading.get_ident()
    mh.map(workloads.nap_then_ident, [0] * 2000)
    # A timeout must be able to stop the probe's item, which the caller's thread cannot.
    timed = mh.map(workloads.nap_then_ident, [0] * 20, timeout=5)
    assert timed[0] != here
