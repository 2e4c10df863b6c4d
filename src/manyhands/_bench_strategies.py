"""What ``manyhands.bench`` runs: the loop, manyhands' backends, and the lecture's own forms.

Each strategy is a ``run(fn, sample, deadline, decisions)`` that returns True when it ran the
whole sample and False when it stopped at ``deadline`` (``time.monotonic()``; None: none);
``decisions`` collects what auto decided. What a stopped strategy leaves running (a thread
cannot be killed) is waited for by the caller, off the clock. An exception is the
strategy's failure (the standard library refusing to pickle a lambda, say), reported in its
row.

The hand-written forms are the lecture's (``../shared/seed``), with the standard library:
one thread per item, started and then joined; ``ThreadPoolExecutor(max_workers=10)``;
``multiprocessing.Pool()`` in a ``with`` block, as a program would write them.
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ._core._decision import Decision

__all__ = ["LECTURE", "Strategy", "coroutine_strategies", "strategy"]

Run = Callable[[Callable[..., Any], list[Any], "float | None", list[Decision]], bool]

#: The lecture's pool of threads.
LECTURE_THREADS = 10


@dataclass(frozen=True)
class Strategy:
    """One way of running the sample: its name (what ``strategies=`` takes), its label in
    the table, its family (``loop``, ``threads``, ``processes``, ``asyncio``, ``auto``,
    ``lecture``), its width, and how it runs."""

    name: str
    label: str
    family: str
    workers: int | None
    run: Run


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


# -- the loop ----------------------------------------------------------------------------


def _loop(fn: Callable[..., Any], sample: list[Any], deadline: float | None, _: Any) -> bool:
    last = len(sample) - 1
    for index, item in enumerate(sample):
        fn(item)
        if deadline is not None and time.monotonic() >= deadline:
            return index == last
    return True


# -- manyhands' own backends -------------------------------------------------------------


def _manyhands(kind: str, workers: int | None) -> Run:
    def run(
        fn: Callable[..., Any], sample: list[Any], deadline: float | None, seen: list[Decision]
    ) -> bool:
        from ._options import RunOptions
        from ._run import Runner
        from ._stats import StatisticsRecorder

        # The path manyhands.map takes (a runner for the call, its workers fresh), with a
        # recorder for auto's decisions and a stop at the deadline.
        recorder = StatisticsRecorder()
        options = RunOptions.checked({}, entry="bench()", backend=kind)
        runner = Runner(kind, workers=workers, one_call=True)
        over = None if deadline is None else (lambda: time.monotonic() >= deadline)
        done = 0
        try:
            for results in runner.chunks(
                (fn, "map", sample, options), listeners=[recorder], stop=over
            ):
                done += len(results)
        finally:
            seen.extend(recorder.snapshot().decisions)
        return done == len(sample)

    return run


# -- the lecture's hand-written forms ------------------------------------------------------


def _thread_per_item(
    fn: Callable[..., Any], sample: list[Any], deadline: float | None, _: Any
) -> bool:
    failures: list[BaseException] = []

    def work(item: Any) -> None:
        try:
            fn(item)
        except BaseException as exc:  # reported as the strategy's failure
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(item,), daemon=True) for item in sample]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(_remaining(deadline))
        if thread.is_alive():
            return False
    if failures:
        raise failures[0]
    return True


def _thread_pool(fn: Callable[..., Any], sample: list[Any], deadline: float | None, _: Any) -> bool:
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as FuturesTimeout

    pool = ThreadPoolExecutor(max_workers=LECTURE_THREADS)
    try:
        list(pool.map(fn, sample, timeout=_remaining(deadline)))
    except FuturesTimeout:
        pool.shutdown(wait=False, cancel_futures=True)
        return False
    pool.shutdown(wait=True)  # what the lecture's ``with`` block does
    return True


def _process_pool(
    fn: Callable[..., Any], sample: list[Any], deadline: float | None, _: Any
) -> bool:
    import multiprocessing

    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads may deadlock: the meter's
        # thread is bench's own, and a program of this form has none.
        warnings.filterwarnings("ignore", message=r".*fork\(\)", category=DeprecationWarning)
        with multiprocessing.Pool() as pool:  # its end terminates the workers
            result = pool.map_async(fn, sample)
            try:
                result.get(_remaining(deadline))
            except multiprocessing.TimeoutError:
                return False
    return True


# -- coroutine functions ---------------------------------------------------------------------


def _in_own_loop(main: Coroutine[Any, Any, bool], deadline: float | None) -> bool:
    """Run ``main`` on a fresh event loop on a thread of its own (a notebook's thread has a
    running loop already): True when it ended, False when ``deadline`` cut it short."""
    outcome: list[Any] = []

    async def bounded() -> bool:
        try:
            return await asyncio.wait_for(main, _remaining(deadline))
        except asyncio.TimeoutError:
            return False

    def body() -> None:
        try:
            outcome.append(asyncio.run(bounded()))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=body, name="manyhands-bench-loop")
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return bool(outcome[0])


def _async_loop(fn: Callable[..., Any], sample: list[Any], deadline: float | None, _: Any) -> bool:
    async def main() -> bool:
        for item in sample:
            await fn(item)
        return True

    return _in_own_loop(main(), deadline)


def _gather(fn: Callable[..., Any], sample: list[Any], deadline: float | None, _: Any) -> bool:
    async def main() -> bool:
        await asyncio.gather(*(fn(item) for item in sample))
        return True

    return _in_own_loop(main(), deadline)


def _manyhands_async(kind: str) -> Run:
    def run(
        fn: Callable[..., Any], sample: list[Any], deadline: float | None, seen: list[Decision]
    ) -> bool:
        from ._options import RunOptions
        from ._run import Runner
        from ._stats import StatisticsRecorder

        recorder = StatisticsRecorder()
        options = RunOptions.checked({}, entry="bench()", backend=kind)

        async def main() -> bool:
            runner = Runner(kind, workers=None, one_call=True)
            runner = runner.on_loop(asyncio.get_running_loop())
            done = 0
            try:
                async for results in runner.achunks(
                    (fn, "map", sample, options), listeners=[recorder]
                ):
                    done += len(results)
            finally:
                seen.extend(recorder.snapshot().decisions)
            return done == len(sample)

        return _in_own_loop(main(), deadline)

    return run


# -- the catalogue ---------------------------------------------------------------------------

#: The lecture's hand-written forms, by name.
LECTURE = ("thread-per-item", "ThreadPoolExecutor", "multiprocessing.Pool")


def strategy(name: str, workers: int | None = None) -> Strategy:
    """The strategy ``name`` (``threads`` and ``processes`` take their width) for a plain
    function."""
    if name == "loop":
        return Strategy("loop", "loop (for item in items)", "loop", 1, _loop)
    if name == "auto":
        return Strategy("auto", "manyhands auto", "auto", None, _manyhands("auto", None))
    if name == "threads":
        assert workers is not None
        label = f"manyhands threads x{workers}"
        return Strategy(
            f"threads:{workers}", label, "threads", workers, _manyhands("thread", workers)
        )
    if name == "processes":
        assert workers is not None
        label = f"manyhands processes x{workers}"
        run = _manyhands("process", workers)
        return Strategy(f"processes:{workers}", label, "processes", workers, run)
    if name == "thread-per-item":
        label = "a thread per item (start, join)"
        return Strategy(name, label, "lecture", None, _thread_per_item)
    if name == "ThreadPoolExecutor":
        label = f"ThreadPoolExecutor(max_workers={LECTURE_THREADS})"
        return Strategy(name, label, "lecture", LECTURE_THREADS, _thread_pool)
    if name == "multiprocessing.Pool":
        return Strategy(name, "multiprocessing.Pool()", "lecture", None, _process_pool)
    raise KeyError(name)


def coroutine_strategies(name: str) -> Strategy:
    """The strategy ``name`` for an ``async def`` function."""
    if name == "loop":
        return Strategy("loop", "loop (await each item)", "loop", 1, _async_loop)
    if name == "asyncio":
        return Strategy(
            "asyncio", "manyhands asyncio", "asyncio", None, _manyhands_async("asyncio")
        )
    if name == "asyncio.gather":
        return Strategy(name, "asyncio.gather(...)", "lecture", None, _gather)
    if name == "auto":
        return Strategy("auto", "manyhands auto", "auto", None, _manyhands_async("auto"))
    raise KeyError(name)
