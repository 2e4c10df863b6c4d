"""The ``concurrent.futures.Executor`` contract, on every executor manyhands offers.

Code written against ``Executor`` must work unchanged on ``manyhands.Pool`` (threads and
processes) and on the drop-in ``manyhands.ThreadPoolExecutor`` / ``ProcessPoolExecutor``:
``map``'s semantics (an iterator, iterables zipped, the timeout from the call, ``buffersize``),
``submit`` with ``wait``, ``as_completed`` and ``asyncio.wrap_future``, ``shutdown``'s
guarantees, the ``BrokenExecutor`` family, and no reference kept to a finished call.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import (
    BrokenExecutor,
    Executor,
    Future,
    as_completed,
    wait,
)
from concurrent.futures import (
    TimeoutError as FuturesTimeout,
)
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures.thread import BrokenThreadPool
from pathlib import Path
from typing import Any

import pytest

import manyhands as mh

import workloads

Make = Callable[..., Executor]

EXECUTORS: dict[str, Make] = {
    "Pool-thread": lambda workers=2, **kw: mh.Pool(backend="thread", workers=workers, **kw),
    "Pool-process": lambda workers=2, **kw: mh.Pool(backend="process", workers=workers, **kw),
    "ThreadPoolExecutor": lambda workers=2, **kw: mh.ThreadPoolExecutor(workers, **kw),
    "ProcessPoolExecutor": lambda workers=2, **kw: mh.ProcessPoolExecutor(workers, **kw),
}


@pytest.fixture(params=list(EXECUTORS))
def make(request: pytest.FixtureRequest) -> Make:
    return EXECUTORS[request.param]


def is_processes(executor: Executor) -> bool:
    return getattr(executor, "_kind", "") == "process"


class Thing:
    """A weakly referenceable object with a method, to follow references to calls."""

    def __init__(self, value: int) -> None:
        self.value = value

    def method(self, x: int) -> Thing:
        return Thing(self.value + x)


# -- map ------------------------------------------------------------------------------------


def test_map_is_an_iterator_over_the_iterables_zipped(make: Make) -> None:
    with make() as executor:
        results = executor.map(pow, range(10), range(10))
        assert isinstance(results, Iterator)
        assert not isinstance(results, list)
        assert list(results) == [pow(i, i) for i in range(10)]
        assert list(executor.map(pow, [2, 3, 4], [1, 2])) == [2, 9]  # the shortest ends it
        assert list(executor.map(workloads.square, [])) == []
        assert list(executor.map(ord, "abc")) == [97, 98, 99]  # any iterable, as zip takes
        assert list(executor.map(workloads.square, range(200), chunksize=16)) == [
            x * x for x in range(200)
        ]


def test_map_raises_each_exception_at_its_place(make: Make) -> None:
    with make() as executor:
        results = executor.map(workloads.fail_at_5, range(10))
        assert [next(results) for _ in range(5)] == [0, 1, 2, 3, 4]
        with pytest.raises(KeyError):
            next(results)
        with pytest.raises(StopIteration):  # as the standard library's: the iterator ends
            next(results)


def test_map_reads_its_iterables_and_starts_at_the_call(make: Make, tmp_path: Path) -> None:
    pulled: list[int] = []

    def inputs() -> Iterator[tuple[str, float]]:
        for index in range(3):
            pulled.append(index)
            yield (str(tmp_path / f"started-{index}"), 0.0)

    with make() as executor:
        results = executor.map(workloads.touch_then_wait, inputs())
        assert pulled == [0, 1, 2]  # read at the call, before any next()
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started-*"))) < 3:  # the work runs without next()
            assert time.monotonic() < deadline, "map's calls did not start before next()"
            time.sleep(0.01)
        assert sorted(results) == sorted(str(tmp_path / f"started-{i}") for i in range(3))


def test_map_timeout_counts_from_the_call(make: Make, tmp_path: Path) -> None:
    gate = str(tmp_path)
    with make(workers=1) as executor:
        executor.submit(workloads.square, 1).result()  # warm: a worker is up
        # The call waits for a file, not a clock: a loaded machine cannot finish it early.
        results = executor.map(workloads.gated_first, [(gate, 0)], timeout=0.3)
        threading.Event().wait(0.35)  # past the timeout, counted from the call
        try:
            asked = time.monotonic()
            with pytest.raises(FuturesTimeout):
                next(results)
            assert time.monotonic() - asked < 0.3  # counted from next(), it would wait 0.3 s
            with pytest.raises(StopIteration):
                next(results)
        finally:
            (tmp_path / "open").touch()  # the call ends, and the pool can shut down


def test_buffersize_bounds_the_calls_ahead_of_what_is_yielded(make: Make) -> None:
    pulled = itertools.count()

    def endless() -> Iterator[int]:
        while True:
            yield next(pulled)

    with make() as executor:
        results = executor.map(workloads.square, endless(), buffersize=3)
        assert [next(results) for _ in range(5)] == [0, 1, 4, 9, 16]
        read = next(pulled)  # how many the map pulled, plus this one
        assert 5 <= read <= 5 + 3 + 1
        results.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"timeout": "1"}, ["timeout", "'1'"]),
        ({"chunksize": 0}, ["chunksize", ">= 1"]),
        ({"buffersize": 0}, ["buffersize", ">= 1"]),
        ({"buffersize": 2, "errors": "return"}, ["buffersize", "imap"]),
    ],
)
def test_map_names_a_bad_argument(arguments: dict[str, Any], words: list[str]) -> None:
    with (
        mh.Pool(backend="thread", workers=1) as pool,
        pytest.raises((TypeError, ValueError)) as caught,
    ):
        pool.map(workloads.square, [1], **arguments)
    for word in words:
        assert word in str(caught.value)


# -- submit and futures ----------------------------------------------------------------------


def test_futures_work_with_wait_as_completed_and_asyncio(make: Make) -> None:
    with make() as executor:
        futures = [executor.submit(pow, 2, i) for i in range(10)]
        done, not_done = wait(futures)
        assert len(done) == 10
        assert not not_done
        assert sorted(f.result() for f in as_completed(futures)) == [2**i for i in range(10)]

        async def awaited() -> int:
            return int(await asyncio.wrap_future(executor.submit(pow, 3, 3)))

        assert asyncio.run(awaited()) == 27


def test_no_reference_is_kept_to_a_finished_call(make: Make) -> None:
    with make() as executor:
        refs: list[weakref.ref[Any]] = []
        for index in range(50):  # a bound method per call, as a server submits per request
            thing = Thing(index)
            argument = Thing(index)
            future = executor.submit(thing.method, argument.value)
            result = future.result()
            refs += [weakref.ref(thing), weakref.ref(argument), weakref.ref(result)]
            del thing, argument, future, result
        mapped = Thing(0)
        assert [r.value for r in executor.map(mapped.method, range(5))] == [0, 1, 2, 3, 4]
        refs.append(weakref.ref(mapped))
        del mapped
        gc.collect()
        alive = [ref() for ref in refs if ref() is not None]
        assert alive == [], f"{len(alive)} objects kept alive by a running executor"


# -- shutdown -------------------------------------------------------------------------------


def test_shutdown_cancels_only_what_has_not_started(make: Make, tmp_path: Path) -> None:
    executor = make(workers=2)
    gate = str(tmp_path)
    running = [executor.submit(workloads.gated_first, (gate, 0)) for _ in range(2)]
    queued = [executor.submit(workloads.square, i) for i in range(20)]
    deadline = time.monotonic() + 60
    while not all(future.running() for future in running):
        assert time.monotonic() < deadline, "the first two calls never started"
        time.sleep(0.005)
    executor.shutdown(wait=False, cancel_futures=True)
    (tmp_path / "open").touch()
    assert [future.result(timeout=60) for future in running] == [0, 0]  # they complete
    assert all(future.cancelled() for future in queued)
    executor.shutdown(wait=True)  # a second call waits for the workers to be gone


def test_shutdown_right_after_submitting_lets_the_taken_calls_complete(make: Make) -> None:
    executor = make(workers=5)
    futures = [executor.submit(workloads.square, i) for i in range(50)]
    executor.shutdown(wait=True, cancel_futures=True)
    kept = [future for future in futures if not future.cancelled()]
    assert len(kept) >= (5 if not is_processes(executor) else 1)  # as the standard library
    assert all(future.result() == futures.index(future) ** 2 for future in kept)


def test_shutdown_waits_for_every_mapped_call(make: Make) -> None:
    executor = make()
    results = executor.map(workloads.tiny_work, range(300))
    executor.shutdown(wait=True)
    assert list(results) == list(range(300))
    with pytest.raises(mh.PoolClosedError):
        executor.submit(workloads.square, 1)
    with pytest.raises(RuntimeError):  # the standard library's type, for Executor code
        executor.map(workloads.square, [1])


# -- broken pools ---------------------------------------------------------------------------


def test_a_failing_initializer_breaks_the_executor(make: Make) -> None:
    with make(initializer=workloads.raise_in_initializer) as executor:
        expected = BrokenProcessPool if is_processes(executor) else BrokenThreadPool
        future = executor.submit(workloads.square, 2)
        error = future.exception(timeout=60)
        assert isinstance(error, expected)
        assert isinstance(error, BrokenExecutor)
        assert isinstance(error.__cause__, RuntimeError)
        assert "cannot open the database" in str(error.__cause__)
        with pytest.raises(expected):
            list(executor.map(workloads.square, range(4)))
        with pytest.raises(expected):
            executor.submit(workloads.square, 3)


# -- the drop-in executors ------------------------------------------------------------------


def test_a_dying_worker_fails_only_its_own_future() -> None:
    with mh.ProcessPoolExecutor(2) as executor:
        futures = {x: executor.submit(workloads.bad_exit, x) for x in range(10)}
        assert isinstance(futures[7].exception(timeout=60), mh.WorkerCrashed)
        assert {x: f.result() for x, f in futures.items() if x != 7} == {
            x: x for x in range(10) if x != 7
        }
        assert executor.submit(workloads.square, 3).result() == 9  # still usable


def test_lambdas_run_in_processes() -> None:
    offset = 10
    with mh.ProcessPoolExecutor(2) as executor:
        assert list(executor.map(lambda x: x + offset, range(3))) == [10, 11, 12]
        assert executor.submit(lambda: offset * 2).result() == 20


def test_thread_name_prefix_names_the_threads() -> None:
    with mh.ThreadPoolExecutor(2, thread_name_prefix="crawler") as executor:
        name = executor.submit(workloads.record_thread, None).result()
    assert name.startswith("crawler_")


def test_max_tasks_per_child_replaces_workers() -> None:
    with mh.ProcessPoolExecutor(1, max_tasks_per_child=2) as executor:
        pids = [executor.submit(workloads.pid_of, None).result() for _ in range(6)]
    assert len(set(pids)) == 3
    assert all(pids.count(pid) == 2 for pid in set(pids))


def test_the_constructors_take_the_standard_librarys_arguments() -> None:
    import multiprocessing

    with mh.ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=workloads.set_state,
        initargs=("ready",),
    ) as executor:
        assert executor.submit(workloads.get_state, None).result() == "ready"
    with mh.ThreadPoolExecutor(
        max_workers=1,
        thread_name_prefix="x",
        initializer=workloads.set_state,
        initargs=("set",),
    ) as executor:
        assert executor.submit(workloads.get_state, None).result() == "set"


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: mh.ThreadPoolExecutor(0), ["max_workers", ">= 1"]),
        (lambda: mh.ProcessPoolExecutor(-1), ["max_workers", ">= 1"]),
        (lambda: mh.ThreadPoolExecutor(thread_name_prefix=3), ["thread_name_prefix", "3"]),
        (lambda: mh.ProcessPoolExecutor(max_tasks_per_child=0), ["max_tasks_per_child"]),
        (lambda: mh.ProcessPoolExecutor(mp_context="spawn"), ["mp_context", "get_context"]),
    ],
)
def test_bad_constructor_arguments_are_named(build: Callable[[], Any], words: list[str]) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        build()
    for word in words:
        assert word in str(caught.value)


def test_a_fork_context_is_refused_with_the_reason() -> None:
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method on this platform")
    with pytest.raises(ValueError, match="fresh interpreters") as caught:
        mh.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    assert "mp_context" in str(caught.value)


def test_executors_are_pools_and_executors() -> None:
    for cls in (mh.ThreadPoolExecutor, mh.ProcessPoolExecutor):
        assert issubclass(cls, mh.Pool)
        assert issubclass(cls, Executor)
    future: Future[int]
    with mh.ThreadPoolExecutor(1) as executor:
        future = executor.submit(workloads.square, 4)
        assert list(executor.imap(workloads.square, range(3))) == [0, 1, 4]  # and more
    assert future.result() == 16
