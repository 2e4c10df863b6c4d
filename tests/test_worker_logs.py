"""What process workers log reaches the caller's logging as records, through its own loggers.

Real worker processes; pytest's ``caplog`` is the caller's handler (on the root logger), so
a record counts only if it came through the caller's logger hierarchy.
"""

from __future__ import annotations

import logging

import pytest

import manyhands as mh

import workloads
from fresh import run_python


def records_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name.startswith("tests.worker")]


def test_worker_records_reach_the_callers_loggers_with_their_item(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # the root logger's level
    caplog.handler.setLevel(logging.DEBUG)  # the handler takes whatever the loggers pass
    verbose = logging.getLogger("tests.worker.verbose")
    verbose.setLevel(logging.DEBUG)  # one logger of the caller's more verbose than the rest
    try:
        with mh.Pool(backend="process", workers=2) as pool:
            assert pool.starmap(workloads.logs, [(x,) for x in range(5)]) == list(range(5))
    finally:
        verbose.setLevel(logging.NOTSET)
    seen = {(r.name, r.levelname, r.getMessage()) for r in records_of(caplog)}
    for x in range(5):
        assert ("tests.worker", "INFO", f"info from item {x}") in seen
        assert ("tests.worker", "WARNING", f"warning from item {x}") in seen
        assert ("tests.worker.verbose", "DEBUG", f"verbose debug from item {x}") in seen
        assert ("tests.worker", "DEBUG", f"debug from item {x}") not in seen  # never made
    for record in records_of(caplog):
        assert record.manyhands_item == int(record.getMessage().split()[-1])  # type: ignore[attr-defined]
        assert record.manyhands_worker.startswith("process-")  # type: ignore[attr-defined]
        assert record.processName == record.manyhands_worker  # type: ignore[attr-defined]
    (failed,) = [r for r in records_of(caplog) if r.levelno == logging.ERROR]
    assert "ValueError: three" in (failed.exc_text or "")
    warning = next(r for r in records_of(caplog) if r.levelno == logging.WARNING)
    # An extra= value that does not pickle (a lock) arrives as its repr.
    assert warning.lock.startswith("<unlocked _thread.lock")  # type: ignore[attr-defined]


def test_levels_follow_the_caller_at_the_start_of_each_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with mh.Pool(backend="process", workers=1) as pool:
        pool.starmap(workloads.logs, [(0,)])
        assert any(r.levelno == logging.INFO for r in records_of(caplog))
        caplog.clear()
        logging.getLogger("tests.worker").setLevel(logging.ERROR)
        try:
            pool.starmap(workloads.logs, [(3,)])  # the same warm worker, a new job
        finally:
            logging.getLogger("tests.worker").setLevel(logging.NOTSET)
    assert {r.levelname for r in records_of(caplog)} == {"ERROR"}


def test_a_callers_handler_that_raises_does_not_stop_the_pool(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            raise RuntimeError("a broken filter")

    logger = logging.getLogger("tests.worker")
    broken = Broken()
    logger.addFilter(broken)
    try:
        with mh.Pool(backend="process", workers=1) as pool:
            assert pool.starmap(workloads.logs, [(x,) for x in range(3)]) == [0, 1, 2]
    finally:
        logger.removeFilter(broken)


def test_the_initializers_records_arrive_too(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with mh.Pool(backend="process", workers=1, initializer=workloads.logs, initargs=(7,)) as pool:
        pool.submit(workloads.square, 2).result()
    messages = [r.getMessage() for r in records_of(caplog)]
    assert "info from item 7" in messages
    assert all(r.manyhands_item is None for r in records_of(caplog))  # type: ignore[attr-defined]


def test_thread_workers_records_carry_their_item_too(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert mh.map(workloads.logs, range(6), backend="thread", workers=3) == list(range(6))
    infos = [r for r in records_of(caplog) if r.levelno == logging.INFO]
    assert sorted(r.getMessage() for r in infos) == [f"info from item {x}" for x in range(6)]
    for record in infos:
        assert record.manyhands_item == int(record.getMessage().split()[-1])  # type: ignore[attr-defined]
        assert record.manyhands_worker.startswith("manyhands-thread-")  # type: ignore[attr-defined]
    logging.getLogger("tests.worker").info("from the test itself")  # not a worker's
    assert not hasattr(caplog.records[-1], "manyhands_item")


def test_worker_prints_reach_the_callers_current_streams_in_whole_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import contextlib
    import io

    redirected = io.StringIO()
    with contextlib.redirect_stdout(redirected):
        # Two workers printing 4,000-character lines at once: no line may split another.
        assert mh.map(workloads.prints, range(8), backend="process", workers=2) == list(range(8))
    lines = redirected.getvalue().splitlines()
    assert len(lines) == 8 * 50
    assert all(len(line) == 4000 and len(set(line)) == 1 for line in lines)
    assert sorted({line[0] for line in lines}) == list("abcdefgh")
    err = capsys.readouterr().err  # stderr went to the caller's sys.stderr (pytest's here)
    assert sorted(line for line in err.splitlines() if line.startswith("stderr of")) == [
        f"stderr of item {x}" for x in range(8)
    ]


def test_a_workers_stdout_still_answers_what_code_asks_of_a_stream() -> None:
    assert mh.map(workloads.stream_facts, [0], backend="process") == [(False, False, True)]


def test_a_caller_without_logging_leaves_its_workers_without_it_and_loses_no_warning() -> None:
    # Importing logging is 10-17 ms of a worker's start: a caller that has not imported it
    # has no handler for its records, so workers import it only once their own code does.
    # Here the function imports it in its first call: that call's warning is printed by the
    # worker's last resort (its stderr reaches the caller's), the next ones travel as records
    # and the caller's last resort prints them.
    code = (
        "import sys, manyhands, workloads\n"
        "print(manyhands.map(workloads.has_logging, range(2), backend='process', workers=1))\n"
        "manyhands.map(workloads.logs, range(3), backend='process', workers=1, chunksize=1)\n"
    )
    out = run_python(code)
    assert out.stdout.strip() == "[False, False]", out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning from")]
    assert sorted(warnings) == [f"warning from item {x}" for x in range(3)], out.stderr
    assert "info from item" not in out.stderr  # below the default level, as in the caller
