"""Retries: the policy's delays, the engine's timers on a fake clock, and real backends."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import manyhands as mh
from manyhands._core._engine import Policy, Run
from manyhands._core._task import Job

import workloads
from conftest import Wrap
from doubles import Clock, Inline


@given(attempt=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_delays_are_full_jitter_under_the_exponential_ceiling(attempt: int, seed: int) -> None:
    policy = mh.Retry(attempts=50, backoff=0.1, max_delay=5.0)
    delay = policy.delay(attempt, random.Random(seed))
    assert 0.0 <= delay <= min(5.0, 0.1 * 2 ** (attempt - 1))


def test_retry_only_what_on_names() -> None:
    policy = mh.Retry(attempts=3, on=ConnectionError)
    assert policy.allows(ConnectionError("reset"), 1)
    assert not policy.allows(ValueError("bad"), 1)
    assert not policy.allows(ConnectionError("reset"), 3)  # three tries made: no fourth


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"attempts": 0}, mh.ArgumentValueError),
        ({"attempts": 1.5}, mh.ArgumentTypeError),
        ({"backoff": -1}, mh.ArgumentValueError),
        ({"on": "ValueError"}, mh.ArgumentTypeError),
    ],
)
def test_bad_retry_arguments(arguments: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        mh.Retry(**arguments)


def test_the_engine_waits_each_delay_on_its_timer() -> None:
    tries: dict[int, int] = {}

    def flaky(x: int) -> int:
        tries[x] = tries.get(x, 0) + 1
        if x == 1 and tries[x] < 3:
            raise ConnectionError("reset")
        return x

    clock, backend = Clock(), Inline()
    retry = mh.Retry(attempts=3, backoff=1.0, max_delay=60.0)
    rng = random.Random(4)
    run = Run(
        backend,
        Job(flaky, "map", stop_on_error=False),
        [0, 1, 2],
        report=lambda chunk, outcome: None,
        ordered=True,
        chunksize=1,
        policy=Policy(retry=retry),
        clock=clock,
        rng=rng,
    )
    delivered: list[Any] = []
    run.fill()
    for chunk, outcome in backend.outcomes[:]:
        delivered += [r for results in run.accept(chunk, outcome) for r in results]
    backend.outcomes.clear()
    assert delivered == [0]  # item 1 waits for its retry, so item 2 waits its turn
    mirror = random.Random(4)
    first_delay = retry.delay(1, mirror)
    assert run.next_timer() == pytest.approx(first_delay)
    clock.now += first_delay
    list(run.fire())
    (chunk, outcome) = backend.outcomes.pop()
    assert chunk.items == [1]  # only the failed item runs again
    assert list(run.accept(chunk, outcome)) == []  # failed again: a second, longer wait
    second_delay = retry.delay(2, mirror)
    assert run.next_timer() == pytest.approx(second_delay)
    clock.now += second_delay
    list(run.fire())
    (chunk, outcome) = backend.outcomes.pop()
    delivered += [r for results in run.accept(chunk, outcome) for r in results]
    assert delivered == [0, 1, 2]
    assert tries == {0: 1, 1: 3, 2: 1}
    assert run.finished


def test_only_the_failed_item_runs_again(backend: str, tmp_path: Path, wrap: Wrap) -> None:
    items = [(str(tmp_path), x) for x in range(10)]
    results = mh.map(wrap(workloads.calls_logged), items, backend=backend, retries=2, chunksize=5)
    assert results == list(range(10))
    calls = {int(p.stem): len(p.read_text().splitlines()) for p in tmp_path.glob("*.calls")}
    assert calls == {x: 2 if x == 3 else 1 for x in range(10)}


def test_exhausted_retries_return_a_failure_counting_every_try(backend: str, wrap: Wrap) -> None:
    retry = mh.Retry(attempts=3, backoff=0.001)
    results = mh.map(
        wrap(workloads.bad_raise), range(10), backend=backend, retries=retry, errors="return"
    )
    failure = results[7]
    assert isinstance(failure, mh.Failure)
    assert failure.attempts == 3
    assert failure.duration is not None


def test_exhausted_retries_raise_in_raise_mode(backend: str, wrap: Wrap) -> None:
    with pytest.raises(ValueError, match="item 7 is bad"):
        mh.map(wrap(workloads.bad_raise), range(10), backend=backend, retries=mh.Retry(2, 0.001))


def test_exceptions_outside_on_are_not_retried(tmp_path: Path) -> None:
    items = [(str(tmp_path), x) for x in range(5)]
    retry = mh.Retry(attempts=5, backoff=0.001, on=(ValueError,))
    results = mh.map(
        workloads.calls_logged, items, backend="thread", retries=retry, errors="return"
    )
    assert isinstance(results[3], mh.Failure)
    assert isinstance(results[3].exception, ConnectionError)
    assert results[3].attempts == 1


def test_crashes_and_timeouts_are_retried_too() -> None:
    results = mh.map(
        workloads.bad_exit, range(10), backend="process", workers=2, retries=mh.Retry(2, 0.001),
        errors="return",
    )  # fmt: skip
    assert isinstance(results[7], mh.Failure)
    assert (results[7].kind, results[7].attempts) == ("crash", 2)
