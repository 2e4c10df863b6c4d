"""Worker processes that each run items on threads (``manyhands.Processes(threads=N)``): what
runs at once there, and what a crash or a stopped item costs the items beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

import manyhands as mh

import workloads


def test_a_worker_runs_its_threads_items_at_once() -> None:
    # Three items meet at a barrier inside one worker: only threads running them at once pass.
    results = mh.map(
        workloads.meets, [0, 2, 3], backend=mh.Processes(threads=3), workers=1, chunksize=1
    )
    assert [x for x, _, _ in results] == [0, 2, 3]
    assert len({pid for _, pid, _ in results}) == 1
    assert len({thread for _, _, thread in results}) == 3


def test_lines_and_failures_keep_to_their_items_while_threads_share_a_worker() -> None:
    results = mh.map(
        workloads.meets,
        [0, 1, 2],
        backend=mh.Processes(threads=3),
        workers=1,
        chunksize=1,
        errors="return",
        output="capture",
    )
    failure = results[1]
    assert isinstance(failure, mh.Failure)
    assert isinstance(failure.exception, ValueError)
    assert failure.output == "start 1\nend 1\n"  # its own lines, none of the others'


def test_a_crash_beside_running_items_fails_only_the_item_that_crashed(tmp_path: Path) -> None:
    items = [(str(tmp_path), x) for x in range(6)]
    results = mh.map(
        workloads.dies_among_threads,
        items,
        backend=mh.Processes(threads=3),
        workers=1,
        chunksize=1,
        errors="return",
    )
    assert [r.index for r in results if isinstance(r, mh.Failure)] == [1]
    assert [r for r in results if not isinstance(r, mh.Failure)] == [0, 2, 3, 4, 5]
    crash = results[1]
    assert crash.kind == "crash"
    assert crash.exitcode == 3
    # Which of the three killed the worker was unknown: each ran again, alone, in a new one.
    for x in (0, 1, 2):
        pids = {p.name.rsplit("-", 1)[1] for p in tmp_path.glob(f"ran-{x}-*")}
        assert len(pids) == 2, (x, pids)


def test_threads_must_be_a_positive_whole_number() -> None:
    with pytest.raises(mh.ArgumentValueError, match=r"Processes\(threads=0\).*at least 1"):
        mh.map(workloads.square, [1], backend=mh.Processes(threads=0))
    with pytest.raises(mh.ArgumentValueError, match=r"threads=2\.5"):
        mh.Pool(backend=mh.Processes(threads=2.5))  # type: ignore[arg-type]


def test_one_thread_is_the_process_backend() -> None:
    with mh.Pool(backend=mh.Processes(), workers=1) as pool:
        assert list(pool.map(workloads.square, [3])) == [9]
        assert pool.statistics().backends == ("process",)
