"""The memory guard: below the floor no new slot starts, one always runs, it says so once."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import manyhands as mh
from manyhands._core._engine import Policy, Run
from manyhands._core._task import Job

import workloads
from doubles import Clock, Inline


def guarded_run(backend: Inline, floor: int, available: Any, clock: Clock | None = None) -> Run:
    """A six-item job of single-item chunks under a memory floor of ``floor`` bytes."""
    return Run(
        backend,
        Job(workloads.square, "map"),
        range(6),
        report=lambda chunk, outcome: None,
        ordered=True,
        chunksize=1,
        policy=Policy(memory_floor=floor),
        clock=clock or Clock(),
        available_memory=available,
    )


def test_no_new_slot_starts_while_memory_is_short(caplog: pytest.LogCaptureFixture) -> None:
    clock, backend = Clock(), Inline()
    memory = {"available": 10 * 2**20}  # 10 MB, under a 100 MB floor
    run = guarded_run(backend, 100 * 2**20, lambda: memory["available"], clock)
    clock.now += 1.0  # the guard first looks after half a second of the job
    with caplog.at_level(logging.WARNING, logger="manyhands"):
        run.fill()
        assert len(backend.outcomes) == 1  # one slot always runs: the job cannot stall
        assert run.next_timer() is not None  # the guard looks again on a timer
        clock.now += 1.0
        list(run.fire())
        run.fill()
        assert len(backend.outcomes) == 1  # still short: still waiting
    warnings = [r.getMessage() for r in caplog.records if "memory_floor" in r.getMessage()]
    assert len(warnings) == 1, warnings  # said once
    assert "10 MB of memory available, under the floor of 100 MB" in warnings[0]

    memory["available"] = 10 * 2**30  # memory came back
    clock.now += 1.0
    list(run.fire())
    run.fill()
    assert len(backend.outcomes) == 6
    delivered: list[Any] = []
    for chunk, outcome in backend.outcomes:
        delivered += [r for results in run.accept(chunk, outcome) for r in results]
    assert delivered == [x * x for x in range(6)]


def test_zero_turns_the_guard_off() -> None:
    backend = Inline()
    run = guarded_run(backend, 0, lambda: 0)
    run.fill()
    assert len(backend.outcomes) == 6


def test_memory_floor_is_checked() -> None:
    with pytest.raises(mh.ArgumentValueError, match="memory_floor"):
        mh.map(workloads.square, [1], memory_floor=-5)
    assert mh.map(workloads.square, [1, 2], memory_floor=0) == [1, 4]


def test_short_jobs_never_look() -> None:
    looked: list[int] = []
    backend = Inline()
    run = guarded_run(backend, 100 * 2**20, lambda: looked.append(1) or 0)
    run.fill()
    assert len(backend.outcomes) == 6
    assert looked == []
