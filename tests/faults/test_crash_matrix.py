"""One bad item never costs the others: each way an item can go wrong, on each backend.

The matrix is data: a case names the function (item 7 misbehaves, the others return
themselves), the backends it applies to, the options, and what the one Failure must say.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

import manyhands as mh

import workloads


@dataclass(frozen=True)
class Case:
    name: str
    fn: Any
    backends: tuple[str, ...]
    kind: str
    raises: type[BaseException]
    options: dict[str, Any] = field(default_factory=dict)
    exitcode: int | None = None
    signal: int | None = None
    message: str = ""


POSIX = sys.platform != "win32"
CASES = [
    Case("raise", workloads.bad_raise, ("serial", "thread", "process", "processes-threads",
         "asyncio"), "error", ValueError, message="item 7 is bad"),
    Case("exit", workloads.bad_exit, ("process", "processes-threads"), "crash",
         mh.WorkerCrashed, exitcode=3, message="exited with code 3"),
    Case("unpicklable result", workloads.bad_result, ("process", "processes-threads"), "error",
         mh.SerializationError, message="cannot be pickled to send it back"),
    Case("hang", workloads.bad_hang, ("thread", "process", "processes-threads"), "timeout",
         mh.TaskTimeout, options={"timeout": 1}, message="ran longer than timeout=1 s"),
    Case("hang", workloads.bad_hang_async, ("asyncio",), "timeout", mh.TaskTimeout,
         options={"timeout": 1}, message="ran longer than timeout=1 s"),
]  # fmt: skip
if POSIX:
    CASES += [
        Case("SIGKILL", workloads.bad_sigkill, ("process", "processes-threads"), "crash",
             mh.WorkerCrashed, signal=signal.SIGKILL, message="ran out of memory"),
        Case("segfault", workloads.bad_segfault, ("process", "processes-threads"), "crash",
             mh.WorkerCrashed, signal=signal.SIGSEGV, message="SIGSEGV"),
    ]  # fmt: skip

#: "processes-threads": worker processes that run three items at once each, on threads.
BACKEND = {"processes-threads": mh.Processes(threads=3)}
PARAMS = [
    pytest.param(case, BACKEND.get(backend, backend), id=f"{case.name}-{backend}")
    for case in CASES
    for backend in case.backends
]


@pytest.fixture(autouse=True)
def release_abandoned_threads() -> Any:
    workloads.RELEASE.clear()
    yield
    workloads.RELEASE.set()  # a thread abandoned at its deadline may now return
    import threading

    for thread in threading.enumerate():
        if thread.name.startswith("manyhands-thread"):
            thread.join(timeout=30)


@pytest.mark.parametrize(("case", "backend"), PARAMS)
def test_one_bad_item_fails_alone(case: Case, backend: Any) -> None:
    results = mh.map(
        case.fn, range(20), backend=backend, workers=2, errors="return", **case.options
    )
    failures = [result for result in results if isinstance(result, mh.Failure)]
    assert [f.index for f in failures] == [7], failures
    assert [r for r in results if not isinstance(r, mh.Failure)] == [x for x in range(20) if x != 7]
    failure = failures[0]
    assert failure.kind == case.kind
    assert failure.item == 7
    assert failure.attempts == 1
    assert isinstance(failure.exception, case.raises)
    assert case.message in str(failure.exception)
    assert failure.exitcode == case.exitcode
    assert failure.signal == case.signal
    assert failure.traceback


@pytest.mark.parametrize(("case", "backend"), PARAMS)
def test_raise_mode_raises_the_exact_error(case: Case, backend: Any) -> None:
    with pytest.raises(case.raises, match=case.message.replace("(", r"\(")) as caught:
        mh.map(case.fn, range(20), backend=backend, workers=2, **case.options)
    assert any("item 7" in note for note in caught.value.__notes__)


def test_abandoned_threads_are_reported_when_they_pile_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    with caplog.at_level(logging.WARNING, logger="manyhands"):
        results = mh.map(
            workloads.bad_hang_every, range(8), backend="thread", workers=2, timeout=0.2,
            errors="return",
        )  # fmt: skip
    assert all(isinstance(r, mh.Failure) for r in results)
    messages = [r.getMessage() for r in caplog.records]
    assert any("threads are still running items that timed out" in m for m in messages)


def test_a_crash_inside_a_chunk_is_traced_to_its_item() -> None:
    # Items 5-9 travel together; the worker dies at item 7. The chunk's items are re-run one
    # at a time, so 7 alone fails, the other four complete, and no other chunk is disturbed.
    results = mh.map(
        workloads.bad_exit, range(20), backend="process", workers=2, chunksize=5, errors="return"
    )
    assert [r.index for r in results if isinstance(r, mh.Failure)] == [7]
    assert [r for r in results if not isinstance(r, mh.Failure)] == [x for x in range(20) if x != 7]
    assert results[7].kind == "crash"
    assert results[7].exitcode == 3
