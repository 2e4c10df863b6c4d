"""What workers print reaches the caller whole lines at a time, and stays with failed items.

Real threads, worker processes, a real Dask cluster (the session's, on 127.0.0.1) and a real
journal file. ``contextlib.redirect_stdout`` stands for any caller's stream (a notebook cell,
pytest's ``capsys``): forwarded lines must land in the caller's *current* ``sys.stdout``.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import manyhands as mh

import workloads

WHERE = ["serial", "thread", "process", "asyncio", "dask"]


def backend_for(name: str, request: pytest.FixtureRequest) -> Any:
    if name == "dask":
        return mh.Dask(address=request.getfixturevalue("dask_cluster").address)
    return name


def fn_for(backend: str) -> Any:
    return workloads.says_async if backend == "asyncio" else workloads.says


def run_capturing(fn: Any, items: Any, **options: Any) -> tuple[list[Any], str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        results = mh.map(fn, items, errors="return", **options)
    return results, out.getvalue(), err.getvalue()


def test_a_stream_installed_for_a_job_is_never_freed() -> None:
    # print() in another thread may hold sys.stdout as a borrowed reference while a job's
    # start or end replaces it; a freed stream crashes the interpreter (CPython gh-130163).
    refs = mh.map(workloads.stdout_ref, range(2), backend="thread", workers=2)
    again = mh.map(workloads.stdout_ref, range(2), backend="thread", workers=2)
    gc.collect()
    assert all(ref() is not None for ref in refs)
    assert refs[0]() is again[0]() is not sys.stdout  # reused for the same stream, not new


@pytest.mark.parametrize("name", ["thread", "process", "asyncio", "dask"])
def test_lines_reach_the_callers_current_stream_whole(
    name: str, request: pytest.FixtureRequest
) -> None:
    backend = backend_for(name, request)
    results, out, err = run_capturing(fn_for(name), range(8), backend=backend, workers=2)
    assert [r for r in results if not isinstance(r, mh.Failure)] == [0, 1, 2, 4, 5, 6, 7]
    # Each line was written in two parts; none may be split by another item's.
    assert sorted(out.splitlines()) == sorted(f"item {x} says hello" for x in range(8))
    if name != "asyncio":
        assert sorted(err.splitlines()) == sorted(f"item {x} on stderr" for x in range(8))


@pytest.mark.parametrize("name", WHERE)
def test_a_failed_items_output_is_on_its_failure(name: str, request: pytest.FixtureRequest) -> None:
    backend = backend_for(name, request)
    results, _, _ = run_capturing(fn_for(name), range(5), backend=backend, workers=2)
    failure = results[3]
    assert isinstance(failure, mh.Failure)
    if name == "serial":  # the caller's own thread keeps its output as a loop's: not kept
        assert failure.output == ""
        return
    assert "item 3 says hello\n" in failure.output
    assert "item 2" not in failure.output
    assert "item 4" not in failure.output


@pytest.mark.parametrize("name", WHERE)
def test_tag_prefixes_each_line_with_its_items_index(
    name: str, request: pytest.FixtureRequest
) -> None:
    backend = backend_for(name, request)
    _, out, _ = run_capturing(fn_for(name), range(5), backend=backend, workers=2, output="tag")
    assert sorted(out.splitlines()) == [f"{x}\titem {x} says hello" for x in range(5)]


@pytest.mark.parametrize("name", WHERE)
def test_capture_keeps_each_items_output_in_the_journal_and_writes_none(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend = backend_for(name, request)
    journal = tmp_path / "run.db"
    results, out, _ = run_capturing(
        fn_for(name), range(5), backend=backend, workers=2, output="capture", journal=journal
    )
    assert out == ""
    failure = results[3]
    assert isinstance(failure, mh.Failure)
    assert failure.output.startswith("item 3 says hello\n")
    with contextlib.closing(sqlite3.connect(journal)) as conn:
        kept = dict(conn.execute("SELECT idx, output FROM items"))
    assert {index: text.splitlines()[0] for index, text in kept.items()} == {
        x: f"item {x} says hello" for x in range(5)
    }


def test_a_crashing_items_last_words_from_python_and_c_are_kept(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    results, out, err = run_capturing(
        workloads.dies_after_saying, range(4), backend="process", workers=2, journal=journal
    )
    crashed = results[2]
    assert isinstance(crashed, mh.Failure)
    assert crashed.kind == "crash"
    assert "python line of item 2\n" in crashed.output
    assert "last words of item 2, from C\n" in crashed.output
    assert "last words of item 2, from C" in err  # forwarded as well, to the caller's stderr
    assert "python line of item 0" in out
    status = mh.journal_status(journal)
    assert "last words of item 2, from C" in status.failures[0].output
    assert "| last words of item 2, from C" in str(status)


def test_a_timed_out_items_output_is_on_its_failure() -> None:
    gate = threading.Event()
    before = set(threading.enumerate())
    try:
        results, _, _ = run_capturing(
            workloads.says_then_waits, [gate], backend="thread", timeout=0.2
        )
    finally:
        gate.set()  # the abandoned thread's call returns; it ends
        for thread in set(threading.enumerate()) - before:
            thread.join(30)
    (failure,) = results
    assert isinstance(failure, mh.Failure)
    assert failure.kind == "timeout"
    assert failure.output == "started, now stuck\n"


def test_inherit_leaves_worker_processes_writing_to_their_descriptors(
    capfd: pytest.CaptureFixture[str],
) -> None:
    results, out, _ = run_capturing(
        workloads.says, range(3), backend="process", workers=1, output="inherit"
    )
    assert results == [0, 1, 2]
    assert out == ""
    assert sorted(capfd.readouterr().out.splitlines()) == [f"item {x} says hello" for x in range(3)]


def test_thread_streams_are_the_callers_again_after_the_job() -> None:
    before = (sys.stdout, sys.stderr)
    mh.map(workloads.says, range(4), backend="thread", workers=2, errors="return")
    assert (sys.stdout, sys.stderr) == before
    # A print from another thread of the caller while chunks run goes straight through.
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        mh.map(print, ["from a worker"], backend="thread")
        print("from the caller")
    assert out.getvalue() == "from a worker\nfrom the caller\n"


@pytest.mark.parametrize("name", ["thread", "process", "asyncio", "dask"])
def test_records_reach_caplog_with_their_item_on_every_worker_kind(
    name: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    backend = backend_for(name, request)
    fn = workloads.logs_async if name == "asyncio" else workloads.logs
    assert mh.map(fn, range(4), backend=backend, workers=2) == list(range(4))
    infos = [r for r in caplog.records if r.name == "tests.worker" and r.levelno == logging.INFO]
    assert sorted(r.getMessage() for r in infos) == [f"info from item {x}" for x in range(4)]
    for record in infos:
        assert record.manyhands_item == int(record.getMessage().split()[-1])  # type: ignore[attr-defined]
        assert record.manyhands_worker  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.name == "tests.worker" and r.levelno < logging.INFO]


def test_a_bad_output_value_names_the_choices() -> None:
    with pytest.raises(mh.ArgumentValueError, match=r"output must be one of 'forward', 'tag'"):
        mh.map(abs, [1], output="quiet")


def test_a_format_1_journal_is_read_and_upgraded(tmp_path: Path) -> None:
    journal = tmp_path / "old.db"
    mh.map(workloads.square, range(3), journal=journal, backend="serial")
    with contextlib.closing(sqlite3.connect(journal)) as conn:  # as an earlier version wrote it
        conn.execute("ALTER TABLE items DROP COLUMN output")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'format'")
        conn.commit()
    assert mh.journal_status(journal).done == 3  # read as it is
    assert mh.map(workloads.square, range(5), journal=journal, backend="serial") == [
        0, 1, 4, 9, 16
    ]  # fmt: skip
    with contextlib.closing(sqlite3.connect(journal)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == ("2",)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
def test_no_pipe_is_left_open_after_crashes_and_retired_workers() -> None:
    def open_descriptors() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    mh.map(abs, [1], backend="process")  # whatever a first call opens for good
    before = open_descriptors()
    for _ in range(2):
        run_capturing(workloads.dies_after_saying, range(4), backend="process", workers=2)
        with mh.ProcessPoolExecutor(2, max_tasks_per_child=1) as pool:
            assert list(pool.map(abs, range(-3, 3))) == [3, 2, 1, 0, 1, 2]
    assert open_descriptors() == before


@pytest.mark.parametrize("name", ["serial", "thread", "asyncio", "dask"])
def test_inherit_intercepts_nothing_and_keeps_nothing(
    name: str, request: pytest.FixtureRequest
) -> None:
    backend = backend_for(name, request)
    results, out, _ = run_capturing(
        fn_for(name), range(5), backend=backend, workers=2, output="inherit"
    )
    failure = results[3]
    assert isinstance(failure, mh.Failure)
    assert failure.output == ""
    if name == "dask":  # printed in the Dask worker processes, where they run
        assert "says hello" not in out
    else:  # written by the caller's own process, to its sys.stdout, as it was
        assert out.count("says hello") == 5
