"""The asyncio backend and amap/aimap: coroutines overlap, run on the right loop, bounded."""

from __future__ import annotations

import asyncio
import threading

import pytest

import manyhands as mh


class Barrier:
    """Opens when ``parties`` coroutines have arrived; counts how many ever ran at once."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.active = 0
        self.most_active = 0
        self.opened: asyncio.Event | None = None

    async def wait(self, x: int) -> int:
        if self.opened is None:
            self.opened = asyncio.Event()
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        self.arrived += 1
        if self.arrived >= self.parties:
            self.opened.set()
        await asyncio.wait_for(self.opened.wait(), timeout=30)
        self.active -= 1
        return x


def test_coroutines_run_concurrently_up_to_workers() -> None:
    barrier = Barrier(parties=50)  # only passes if 50 coroutines wait at the same time
    results = mh.map(barrier.wait, range(200), backend="asyncio", workers=50, chunksize=1)
    assert results == list(range(200))
    assert barrier.most_active == 50


def test_auto_sends_coroutine_functions_to_asyncio() -> None:
    barrier = Barrier(parties=100)
    assert mh.map(barrier.wait, range(100)) == list(range(100))


def test_sync_map_works_inside_a_running_loop() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async def main() -> list[int]:
        # A Jupyter cell is such a place: a loop runs in this thread, and map() blocks it.
        return mh.map(double, range(20))

    assert asyncio.run(main()) == [2 * x for x in range(20)]


def test_amap_runs_coroutines_on_the_callers_loop() -> None:
    seen: set[int] = set()

    async def where(x: int) -> int:
        seen.add(id(asyncio.get_running_loop()))
        await asyncio.sleep(0)
        return x

    async def main() -> tuple[list[int], int]:
        return await mh.amap(where, range(30)), id(asyncio.get_running_loop())

    results, caller_loop = asyncio.run(main())
    assert results == list(range(30))
    assert seen == {caller_loop}


def test_aimap_is_lazy_and_closes_cleanly() -> None:
    pulled: list[int] = []

    def numbers() -> object:
        for i in range(10_000):
            pulled.append(i)
            yield i

    async def square(x: int) -> int:
        await asyncio.sleep(0)
        return x * x

    async def main() -> list[int]:
        got = []
        results = mh.aimap(square, numbers())
        async for value in results:
            got.append(value)
            if len(got) == 5:
                break
        await results.aclose()  # type: ignore[attr-defined]
        return got

    assert asyncio.run(main()) == [0, 1, 4, 9, 16]
    assert len(pulled) < 10_000


def test_amap_with_a_plain_function_uses_threads_without_blocking_the_loop() -> None:
    release = threading.Event()

    def waits(x: int) -> int:
        release.wait(timeout=30)
        return x

    async def main() -> list[int]:
        task = asyncio.ensure_future(mh.amap(waits, range(4), backend="thread", workers=4))
        await asyncio.sleep(0)  # the loop is free while the threads wait...
        release.set()  # ...so this line runs, and the threads finish
        return await task

    assert asyncio.run(main()) == [0, 1, 2, 3]


def test_amap_raises_the_users_exception() -> None:
    async def fails(x: int) -> int:
        if x == 3:
            raise LookupError("no such page")
        return x

    async def main() -> list[int]:
        return await mh.amap(fails, range(10))

    with pytest.raises(LookupError, match="no such page") as caught:
        asyncio.run(main())
    assert any("item 3" in note for note in caught.value.__notes__)


def test_amap_checks_arguments_at_once() -> None:
    with pytest.raises(mh.ArgumentValueError, match="workers"):
        mh.aimap(abs, [1], workers=0)


def test_async_initializer_runs_first() -> None:
    state: dict[str, str] = {}

    async def connect() -> None:
        await asyncio.sleep(0)
        state["db"] = "open"

    async def use(x: int) -> str:
        return f"{state['db']}-{x}"

    with mh.Pool(backend="asyncio", workers=3, initializer=connect) as pool:
        assert list(pool.map(use, range(3))) == ["open-0", "open-1", "open-2"]


def test_amap_timeout_cancels_the_task_on_the_callers_loop() -> None:
    async def hangs_on_3(x: int) -> int:
        if x == 3:
            await asyncio.sleep(300)
        return x

    async def main() -> list[object]:
        return await mh.amap(hangs_on_3, range(6), timeout=0.2, errors="return")

    results = asyncio.run(main())
    assert results[:3] == [0, 1, 2]
    assert results[4:] == [4, 5]
    failure = results[3]
    assert isinstance(failure, mh.Failure)
    assert failure.kind == "timeout"
