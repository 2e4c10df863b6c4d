"""The journal: every finished item recorded in a real SQLite file, and skipped on the next run.

Side effects are counted in a file that every call appends to, so "not computed again" is
observed, not assumed; the contract tests run on every backend.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import manyhands as mh

from conftest import Wrap
from workloads import counted, counted_other, gated, gated_first, square


def inputs(folder: Path, xs: Any) -> list[tuple[str, int]]:
    return [(str(folder), x) for x in xs]


def calls(folder: Path) -> Counter[int]:
    path = folder / "calls"
    return Counter(int(line) for line in path.read_text().split()) if path.exists() else Counter()


def recorded(journal: Path) -> dict[int, str]:
    """What the journal file holds now, as a reader in another process would see it."""
    try:
        conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        try:
            return dict(conn.execute("SELECT idx, status FROM items"))
        finally:
            conn.close()
    except sqlite3.OperationalError:  # not created yet
        return {}


def test_a_second_run_returns_the_stored_results_without_running_them(
    tmp_path: Path, backend: str, wrap: Wrap
) -> None:
    journal = tmp_path / "run.db"
    fn = wrap(counted)
    first = mh.map(fn, inputs(tmp_path, range(30)), backend=backend, journal=journal)
    assert first == [x * x for x in range(30)]
    assert recorded(journal) == dict.fromkeys(range(30), "done")
    assert calls(tmp_path) == Counter(range(30))

    again = mh.map(fn, inputs(tmp_path, range(30)), backend=backend, journal=journal)
    assert again == first
    assert calls(tmp_path) == Counter(range(30))  # nothing ran twice


def test_auto_resumes_too_and_a_pool_counts_only_what_ran(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    assert mh.map(counted, inputs(tmp_path, range(20)), journal=journal)[-1] == 361
    with mh.Pool() as pool:
        results = list(pool.map(counted, inputs(tmp_path, range(25)), journal=journal))
        assert pool.statistics().items_done == 5
    assert results == [x * x for x in range(25)]
    assert calls(tmp_path) == Counter(range(25))


def test_a_longer_input_runs_only_the_new_items(tmp_path: Path, parallel_backend: str) -> None:
    journal = str(tmp_path / "run.db")
    mh.map(counted, inputs(tmp_path, range(10)), backend=parallel_backend, journal=journal)
    results = mh.map(
        counted, inputs(tmp_path, range(25)), backend=parallel_backend, journal=journal
    )
    assert results == [x * x for x in range(25)]
    assert calls(tmp_path) == Counter(range(25))
    assert mh.journal_status(journal).total == 25


def test_failures_are_returned_from_the_journal_until_retry_failed(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    xs = [1, -2, 3, -4]
    first = mh.map(counted, inputs(tmp_path, xs), journal=journal, errors="return")
    assert [type(r).__name__ for r in first] == ["int", "Failure", "int", "Failure"]

    again = mh.map(counted, inputs(tmp_path, xs), journal=journal, errors="return")
    assert calls(tmp_path) == Counter(xs)  # the failures were not run again
    failure = again[1]
    assert isinstance(failure, mh.Failure)
    assert (failure.index, failure.kind, failure.attempts) == (1, "error", 1)
    assert isinstance(failure.exception, ValueError)
    assert "negative: -2" in failure.traceback
    assert failure.item == (str(tmp_path), -2)

    mh.map(
        counted,
        inputs(tmp_path, xs),
        journal=mh.Journal(journal, retry_failed=True),
        errors="return",
    )
    assert calls(tmp_path) == Counter({1: 1, 3: 1, -2: 2, -4: 2})


def test_a_recorded_failure_raises_in_its_place_with_the_fix_in_a_note(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    xs = [1, 2, -3, 4]
    mh.map(counted, inputs(tmp_path, xs), journal=journal, errors="return", backend="process")
    seen = []
    with pytest.raises(ValueError, match="negative: -3") as caught:
        for result in mh.imap(counted, inputs(tmp_path, xs), journal=journal):
            seen.append(result)
    assert seen == [1, 4]  # the results before the failure were delivered first
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "failed in an earlier run" in notes
    assert "Journal(path, retry_failed=True)" in notes
    assert "raised for item 2" in notes
    assert "negative: -3" in str(caught.value.__cause__)  # the worker's traceback
    assert calls(tmp_path) == Counter(xs)


def test_a_journal_of_another_function_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    mh.map(counted, inputs(tmp_path, range(5)), journal=journal)
    with pytest.raises(mh.JournalMismatch, match="counted_other") as caught:
        mh.map(counted_other, inputs(tmp_path, range(5)), journal=journal)
    assert "Journal(path, mismatch='rerun')" in str(caught.value)
    assert recorded(journal) == dict.fromkeys(range(5), "done")  # nothing lost

    rerun = mh.Journal(journal, mismatch="rerun")
    mh.map(counted_other, inputs(tmp_path, range(5)), journal=rerun)
    assert calls(tmp_path) == Counter({x: 2 for x in range(5)})
    assert mh.journal_status(journal).function == "workloads:counted_other"


def test_changed_items_are_refused_or_run_again(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    mh.map(counted, inputs(tmp_path, range(6)), journal=journal)
    changed = inputs(tmp_path, [0, 1, 2, 30, 4, 5])
    with pytest.raises(mh.JournalMismatch, match="item 3") as caught:
        mh.map(counted, changed, journal=journal)
    assert "the items changed" in str(caught.value)

    results = mh.map(counted, changed, journal=mh.Journal(journal, mismatch="rerun"))
    assert results == [0, 1, 4, 900, 16, 25]
    assert calls(tmp_path) == Counter({0: 1, 1: 1, 2: 1, 3: 1, 30: 1, 4: 1, 5: 1})


def test_equal_items_are_recognised_whatever_the_process_hash_seed(tmp_path: Path) -> None:
    # A set of strings pickles in an order that depends on PYTHONHASHSEED: the fingerprint
    # must not, or a resumed run in another process would refuse its own journal.
    journal = tmp_path / "run.db"
    script = textwrap.dedent(
        f"""
        import manyhands as mh
        items = [frozenset({{"alpha", "beta", "gamma", "delta"}}), {{"k": {{"x", "y", "z"}}}}]
        print(mh.map(len, items, journal={str(journal)!r}, backend="serial"))
        """
    )
    for seed in ("1", "2", "3"):
        out = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PYTHONHASHSEED": seed, "PATH": "", "PYTHONPATH": ":".join(sys.path)},
            check=False,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[4, 1]"
    status = mh.journal_status(journal)
    assert (status.done, status.runs) == (2, 3)


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    results = mh.imap(gated, inputs(tmp_path, range(4)), backend="thread", journal=journal)
    assert next(results) == 0  # the first run is under way and holds the journal
    with pytest.raises(mh.JournalInUse, match="this process"):
        mh.map(gated, inputs(tmp_path, range(4)), backend="thread", journal=journal)
    (tmp_path / "open").touch()
    assert list(results) == [1, 2, 3]
    # Once it has ended, the journal is free again.
    assert mh.map(gated, inputs(tmp_path, range(4)), journal=journal) == [0, 1, 2, 3]


def test_a_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    script = textwrap.dedent(
        f"""
        import sys
        import manyhands as mh
        from workloads import gated
        items = [({str(tmp_path)!r}, x) for x in range(3)]
        results = mh.imap(gated, items, backend="thread", journal={str(journal)!r})
        print(next(results), flush=True)
        print(list(results), flush=True)
        """
    )
    env = {"PYTHONPATH": ":".join(sys.path), "PATH": ""}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "0"  # it holds the journal now
        with pytest.raises(mh.JournalInUse, match=rf"pid {proc.pid}"):
            mh.map(gated, inputs(tmp_path, range(3)), journal=journal)
    finally:
        (tmp_path / "open").touch()
        out, _ = proc.communicate(timeout=60)
    assert out.strip() == "[1, 2]"


def test_records_are_written_while_the_run_goes_on(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    results = mh.imap(gated, inputs(tmp_path, range(3)), backend="thread", journal=journal)
    assert next(results) == 0
    # A result the caller has seen is in the file already: a kill now would not lose it.
    assert recorded(journal) == {0: "done"}
    status = mh.journal_status(journal)
    assert (status.state, status.done, status.total) == ("running", 1, 3)
    (tmp_path / "open").touch()
    assert list(results) == [1, 2]
    assert mh.journal_status(journal).state == "finished"


def test_results_not_yet_delivered_are_written_within_a_moment(tmp_path: Path) -> None:
    # Item 0 holds up delivery in order; items 1-3 finish behind it and must reach the file
    # anyway (FLUSH_AFTER), while the consumer still waits for item 0.
    journal = tmp_path / "run.db"
    results = mh.imap(
        gated_first, inputs(tmp_path, range(4)), backend="thread", workers=4, journal=journal
    )
    first: list[int] = []
    consumer = threading.Thread(target=lambda: first.append(next(results)))
    consumer.start()
    try:
        deadline = time.monotonic() + 30
        while recorded(journal) != dict.fromkeys([1, 2, 3], "done"):
            assert time.monotonic() < deadline, recorded(journal)
            time.sleep(0.01)  # polling the file the run writes: the file is the signal
        assert first == []  # item 0 still runs: nothing was delivered
    finally:
        (tmp_path / "open").touch()
        consumer.join(30)
    assert first == [0]
    assert list(results) == [1, 2, 3]
    assert not consumer.is_alive()


def test_an_executor_map_closed_early_is_recorded_as_stopped(tmp_path: Path) -> None:
    # Pool.map's engine runs on a driver thread and ends through its stop(): that end is a
    # stop, not the job's finish. Items after the first wait on a gate until it is closed.
    journal = tmp_path / "run.db"
    items = [(str(tmp_path), x) for x in range(50)]
    with mh.Pool(backend="thread", workers=2) as pool:
        results = pool.map(gated, items, journal=journal)
        assert next(results) == 0
        results.close()  # type: ignore[attr-defined]
        (tmp_path / "open").touch()  # the running items may end now
    status = mh.journal_status(journal)
    assert status.state == "stopped"
    assert 1 <= status.done < 50
    with mh.Pool(backend="thread", workers=2) as pool:
        assert list(pool.map(gated, items, journal=journal)) == list(range(50))
    assert mh.journal_status(journal).state == "finished"


def test_a_consumer_that_stops_early_keeps_what_finished(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"

    def endless() -> Any:
        x = 0
        while True:
            yield (str(tmp_path), x)
            x += 1

    results = mh.imap(counted, endless(), backend="thread", workers=2, journal=journal)
    first = [next(results) for _ in range(50)]
    results.close()  # type: ignore[attr-defined]
    status = mh.journal_status(journal)
    assert status.state == "stopped"
    assert status.total is None
    assert status.done >= 50
    before = calls(tmp_path)
    again = mh.imap(counted, endless(), backend="thread", workers=2, journal=journal)
    assert [next(again) for _ in range(50)] == first
    again.close()  # type: ignore[attr-defined]
    assert all(calls(tmp_path)[x] == before[x] for x in range(50))


def test_unordered_and_indexed_results_come_back_from_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    items = inputs(tmp_path, range(40))
    mh.map(counted, items[:20], backend="process", journal=journal)
    pairs = list(
        mh.imap(counted, items, backend="process", journal=journal, ordered=False, indexed=True)
    )
    assert sorted(pairs) == [(x, x * x) for x in range(40)]
    assert calls(tmp_path) == Counter(range(40))


def test_pool_methods_and_amap_take_a_journal(tmp_path: Path) -> None:
    with mh.Pool(backend="process", workers=2) as pool:
        assert list(pool.map(square, range(10), journal=tmp_path / "a.db")) == [
            x * x for x in range(10)
        ]
        assert pool.starmap(pow, [(2, 3)], journal=tmp_path / "b.db") == [8]
        assert list(pool.imap(square, range(3), journal=tmp_path / "a.db")) == [0, 1, 4]
        assert pool.statistics().items_done == 11  # the three from the journal did not run
    results = asyncio.run(mh.amap(square, range(5), journal=tmp_path / "c.db"))
    assert results == [0, 1, 4, 9, 16]
    assert mh.journal_status(tmp_path / "c.db").done == 5


def test_a_result_that_cannot_be_pickled_is_not_recorded_and_runs_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = tmp_path / "run.db"
    ran: list[int] = []

    def make(x: int) -> Any:
        ran.append(x)
        return threading.Lock() if x == 1 else x

    first = mh.map(make, range(3), backend="thread", journal=journal)
    assert isinstance(first[1], type(threading.Lock()))
    assert "cannot be pickled into journal" in caplog.text
    assert recorded(journal) == {0: "done", 2: "done"}
    mh.map(make, range(3), backend="thread", journal=journal)
    assert sorted(ran) == [0, 1, 1, 2]


def test_a_file_that_is_not_a_journal_is_refused_untouched(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("my notes\n" * 100)
    with pytest.raises(mh.JournalError, match="not a SQLite database"):
        mh.map(square, range(3), journal=text)
    assert text.read_text() == "my notes\n" * 100

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
    with pytest.raises(mh.JournalError, match="not a manyhands journal"):
        mh.map(square, range(3), journal=other)
    with pytest.raises(mh.JournalError, match="cannot be opened"):
        mh.map(square, range(3), journal=tmp_path / "no" / "such" / "folder.db")
    with pytest.raises(mh.JournalError, match="no journal"):
        mh.journal_status(tmp_path / "absent.db")


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"journal": 3}, mh.ArgumentTypeError, "journal must be the path of a file"),
        ({"journal": ""}, mh.ArgumentValueError, "not a file path"),
        ({"journal": ":memory:"}, mh.ArgumentValueError, "not a file path"),
        ({"retry_failed": True}, mh.ArgumentTypeError, "did you mean"),
        ({"journal": mh.Journal("j.db", mismatch="x")}, mh.ArgumentValueError, "'raise'"),
        ({"journal": mh.Journal("j.db", retry_failed=1)}, mh.ArgumentTypeError, "retry_failed"),
        ({"journal": mh.Journal("")}, mh.ArgumentValueError, "not a file path"),
        ({"indexed": "yes"}, mh.ArgumentTypeError, "indexed must be True or False"),
    ],
)
def test_bad_journal_arguments_name_the_parameter(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        mh.imap(square, range(3), **options)
