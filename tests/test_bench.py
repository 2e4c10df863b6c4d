"""manyhands.bench on real runs of small workloads: who wins, the chart's data, bad input.

Each workload is chosen so that the winner is clear by a wide margin on 2 CPUs (a sleep, a
tiny function, pure-Python CPU work, a coroutine), and the strategies are limited where the
point needs no more, to keep the suite short.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import manyhands as mh

from workloads import async_nap, busy, long_in_a_worker, sleepy, square

THREADED = ("threads", "lecture")  # the families whose strategies run on threads


def test_a_sleeping_function_runs_fastest_on_threads() -> None:
    comparison = mh.bench(sleepy, range(30), sample=30, progress=False)
    fastest = comparison.fastest
    assert fastest.family in THREADED or fastest.strategy == "auto", str(comparison)
    assert fastest.strategy != "multiprocessing.Pool"
    assert comparison.decision is not None
    assert comparison.decision.backend == "thread"
    loop = comparison.baseline.wall
    assert loop is not None
    assert fastest.wall is not None
    assert fastest.wall < loop / 3
    # the sweep ran from 2 threads up, wider while it paid
    widths = [t.workers for t in comparison.timings if t.family == "threads"]
    assert widths[:2] == [2, 4]
    assert widths == sorted(widths)
    assert "waiting" in comparison.reasons[0]
    assert {"thread-per-item", "ThreadPoolExecutor", "multiprocessing.Pool"} <= {
        t.strategy for t in comparison.timings
    }


def test_a_tiny_function_runs_fastest_in_the_loop() -> None:
    comparison = mh.bench(square, range(20_000), progress=False)
    assert comparison.sample == 20_000  # all of it: far less than a few seconds of loop
    assert comparison.fastest.strategy in ("loop", "auto"), str(comparison)
    assert comparison.decision is not None
    assert comparison.decision.backend == "serial"
    for timing in comparison.timings:
        if timing.family in ("threads", "processes"):
            assert (comparison.speedup(timing) or 0.0) < 1, (timing, str(comparison))


@pytest.mark.skipif(mh.available_cpus() < 2, reason="processes win only with 2 CPUs or more")
def test_pure_python_cpu_work_runs_fastest_on_processes() -> None:
    comparison = mh.bench(
        busy, range(40), sample=40, strategies=["threads:2", "processes:2"], repeats=1,
        progress=False,
    )  # fmt: skip
    threads = comparison.speedup(comparison.timing("threads:2")) or 0.0
    processes = comparison.speedup(comparison.timing("processes:2")) or 0.0
    assert 0 < threads < 1.3, str(comparison)
    assert processes > 1.15, str(comparison)
    assert comparison.fastest.strategy == "processes:2"
    assert any("GIL" in reason for reason in comparison.reasons), comparison.reasons


def test_a_coroutine_function_runs_fastest_on_asyncio() -> None:
    comparison = mh.bench(async_nap, range(20), sample=20, progress=False)
    names = [t.strategy for t in comparison.timings]
    assert names == ["loop", "auto", "asyncio", "asyncio.gather"]
    assert comparison.fastest.strategy in ("asyncio", "asyncio.gather", "auto"), str(comparison)
    assert comparison.decision is not None
    assert comparison.decision.backend == "asyncio"
    asyncio_speedup = comparison.speedup(comparison.timing("asyncio")) or 0.0
    assert asyncio_speedup > 4, str(comparison)


def test_a_run_past_its_budget_is_stopped_and_reported_as_more_than() -> None:
    comparison = mh.bench(
        sleepy, range(20), sample=20, strategies=["threads:1"], budget=0.1, progress=False
    )
    stopped = comparison.timing("threads:1")  # 20 x 20 ms on one thread: 0.4 s
    assert stopped.over_budget
    assert stopped.wall == 0.1
    assert stopped.runs == (0.1,)  # not run again in later rounds
    assert comparison.baseline.runs
    assert not comparison.baseline.over_budget
    assert len(comparison.baseline.runs) == 3
    text = str(comparison)
    assert "> 100 ms" in text
    assert "stopped past the budget (0.1 s)" in text


def test_a_stopped_process_strategy_kills_its_workers_rather_than_waiting(
    tmp_path: Path,
) -> None:
    items = [(str(tmp_path), os.getpid())]
    comparison = mh.bench(long_in_a_worker, items, strategies=["processes:1"], budget=0.3,
                          repeats=1, progress=False)  # fmt: skip
    assert comparison.timing("processes:1").over_budget
    # Its worker was stopped at the budget: the item it ran never reached its end.
    assert not (tmp_path / "finished").exists()


def test_the_table_the_dict_and_the_verdict_agree() -> None:
    comparison = mh.bench(sleepy, range(8), sample=8, strategies=["auto"], repeats=2,
                          progress=False)  # fmt: skip
    record = json.loads(json.dumps(comparison.to_dict()))  # plain data
    assert [s["name"] for s in record["strategies"]] == ["loop", "auto"]
    loop = record["strategies"][0]
    assert loop["speedup"] == 1.0
    assert len(loop["runs"]) == 2
    assert loop["per_item"] == pytest.approx(loop["wall"] / 8)
    assert record["fastest"] == comparison.fastest.strategy
    assert record["auto"]["backend"] == "thread"
    text = str(comparison)
    assert comparison.verdict in text
    assert "fn ran" in text
    assert text.splitlines()[2].split()[:2] == ["strategy", "wall"]


def test_the_chart_has_one_bar_per_strategy(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    comparison = mh.bench(sleepy, range(16), sample=16, repeats=1, progress=False,
                          strategies=["auto", "threads", "thread-per-item"])  # fmt: skip
    figure = comparison.plot(tmp_path / "bench.png")
    bars = figure.axes[0].patches
    assert len(bars) == len(comparison.timings)
    assert [bar.get_width() for bar in bars] == pytest.approx([t.wall for t in comparison.timings])
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert labels == [t.label for t in comparison.timings]
    sweep = figure.axes[1].lines[0]  # the thread-width sweep
    threads = [t for t in comparison.timings if t.family == "threads" and t.measured]
    assert list(sweep.get_xdata()) == [t.workers for t in threads]
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_chart_names_the_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["matplotlib"] = None  # as if it were not installed
        import manyhands as mh
        comparison = mh.bench(abs, [1, 2], strategies=["auto"], repeats=1, progress=False)
        print(comparison._repr_mimebundle_()["text/html"].count("<table>"))
        try:
            comparison.plot("x.png")
        except mh.MissingDependency as exc:
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.splitlines()[0] == "1"  # the table still shows
    assert "pip install 'manyhands[plot]'" in out.splitlines()[1]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"sample": 0}, "sample must be >= 1, got sample=0"),
        ({"sample": "5"}, "sample must be a whole number"),
        ({"strategies": ["threads", "fibers"]}, "unknown strategy 'fibers'; choose from loop"),
        ({"strategies": ["threads:0"]}, "'threads:0' needs a width >= 1"),
        ({"strategies": ["asyncio"]}, "'asyncio' does not apply to a plain (not async) function"),
        ({"budget": 0}, "budget must be a finite number of seconds > 0, got budget=0"),
        ({"budget": "5"}, "budget must be seconds (a number > 0) or None, got '5'"),
        ({"repeats": 0}, "repeats must be >= 1"),
    ],
)
def test_bad_arguments_are_named(arguments: dict[str, object], message: str) -> None:
    with pytest.raises((mh.ArgumentValueError, mh.ArgumentTypeError)) as raised:
        mh.bench(square, range(3), progress=False, **arguments)  # type: ignore[arg-type]
    assert message in str(raised.value)


def test_an_empty_input_is_refused() -> None:
    with pytest.raises(mh.ArgumentValueError, match="items is empty"):
        mh.bench(square, [], progress=False)
    with pytest.raises(mh.ArgumentValueError, match="items is empty"):
        mh.bench(square, iter([]), sample=5, progress=False)


def test_a_function_that_fails_in_the_loop_raises_its_own_error() -> None:
    def broken(x: int) -> int:
        raise KeyError(x)

    with pytest.raises(KeyError):
        mh.bench(broken, range(3), progress=False)


def test_a_strategy_that_fails_is_reported_and_the_others_still_run() -> None:
    comparison = mh.bench(lambda x: x, range(4), strategies=["multiprocessing.Pool", "auto"],
                          repeats=1, progress=False)  # fmt: skip
    pool = comparison.timing("multiprocessing.Pool")
    # The standard library pickles functions by reference: a lambda cannot travel (3.13's
    # pickle says "Can't get local object", earlier ones "Can't pickle local object").
    assert pool.error is not None
    assert "local object" in pool.error.lower()
    assert comparison.timing("auto").measured
    assert "multiprocessing.Pool() failed" in str(comparison)
