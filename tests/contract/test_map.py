"""The map/imap/starmap contract, run on every backend."""

from __future__ import annotations

import gc
import itertools
import time
import zlib
from collections.abc import Iterator

import pytest

import manyhands as mh
from manyhands import RemoteTraceback
from manyhands._core._engine import MAX_HELD_ITEMS

import workloads
from conftest import Wrap


def test_map_returns_results_in_input_order(backend: str, wrap: Wrap) -> None:
    assert mh.map(wrap(workloads.square), range(1000), backend=backend) == [
        x * x for x in range(1000)
    ]


def test_unordered_map_returns_each_result_exactly_once(backend: str, wrap: Wrap) -> None:
    results = mh.map(wrap(workloads.tiny_work), range(2000), backend=backend, ordered=False)
    assert sorted(results) == list(range(2000))


def test_empty_input_gives_empty_list(backend: str, wrap: Wrap) -> None:
    assert mh.map(wrap(workloads.square), [], backend=backend) == []
    assert list(mh.imap(wrap(workloads.square), iter([]), backend=backend)) == []


def test_generator_input(backend: str, wrap: Wrap) -> None:
    def numbers() -> Iterator[int]:
        yield from range(500)

    assert mh.map(wrap(workloads.square), numbers(), backend=backend) == [x * x for x in range(500)]


def test_starmap_unpacks_each_item(backend: str, wrap: Wrap) -> None:
    pairs = [(i, 2 * i) for i in range(300)]
    assert mh.starmap(wrap(workloads.add), pairs, backend=backend) == [3 * i for i in range(300)]


def test_lambdas_and_closures_work(backend: str, wrap: Wrap) -> None:
    offset = 7
    assert mh.map(wrap(lambda x: x + offset), range(50), backend=backend) == [
        x + 7 for x in range(50)
    ]


def test_fixed_chunksize(backend: str, wrap: Wrap) -> None:
    results = mh.map(wrap(workloads.square), range(101), backend=backend, chunksize=10)
    assert results == [x * x for x in range(101)]


def test_explicit_workers(backend: str, wrap: Wrap) -> None:
    assert mh.map(wrap(workloads.square), range(20), backend=backend, workers=3) == [
        x * x for x in range(20)
    ]


def test_large_items(backend: str, wrap: Wrap) -> None:
    blobs = [bytes([i]) * (1 << 20) for i in range(40)]
    assert mh.map(wrap(workloads.crc), blobs, backend=backend) == [zlib.crc32(b) for b in blobs]


def test_imap_is_lazy_and_bounded_on_an_endless_generator(backend: str, wrap: Wrap) -> None:
    pulled = 0

    def endless() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    results = mh.imap(wrap(workloads.square), endless(), backend=backend)
    first = [next(results) for _ in range(1000)]
    results.close()  # type: ignore[attr-defined]
    assert first == [x * x for x in range(1000)]
    # Bounded: the engine holds at most MAX_HELD_ITEMS items, plus one chunk (<= 8,192).
    assert pulled <= 1000 + MAX_HELD_ITEMS + 8192


def test_imap_pulls_nothing_before_iteration(backend: str, wrap: Wrap) -> None:
    pulled: list[int] = []

    def recording() -> Iterator[int]:
        for i in range(10):
            pulled.append(i)
            yield i

    results = mh.imap(wrap(workloads.square), recording(), backend=backend)
    assert pulled == []
    assert list(results) == [x * x for x in range(10)]


def test_breaking_out_of_imap_stops_the_work(backend: str, wrap: Wrap) -> None:
    seen = []
    for result in mh.imap(wrap(workloads.square), range(100_000), backend=backend):
        seen.append(result)
        if len(seen) == 10:
            break
    assert seen == [x * x for x in range(10)]
    # The leak check (conftest) asserts that every worker is gone.


def test_an_exception_in_the_consumer_stops_the_work(backend: str, wrap: Wrap) -> None:
    with pytest.raises(RuntimeError, match="consumer failed"):
        for result in mh.imap(wrap(workloads.square), range(100_000), backend=backend):
            if result > 100:
                raise RuntimeError("consumer failed")


def test_an_exception_from_the_input_propagates(backend: str, wrap: Wrap) -> None:
    def broken() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("input file vanished")

    with pytest.raises(OSError, match="input file vanished"):
        mh.map(wrap(workloads.square), broken(), backend=backend)


def test_user_exception_type_is_kept_with_a_note_naming_the_item(backend: str, wrap: Wrap) -> None:
    with pytest.raises(ValueError, match="item 5 is bad") as caught:
        mh.map(wrap(workloads.fail_on({5})), range(20), backend=backend)
    notes = getattr(caught.value, "__notes__", [])
    assert any("item 5" in note for note in notes), notes


def test_lowest_failing_index_is_raised_in_ordered_mode(backend: str, wrap: Wrap) -> None:
    with pytest.raises(ValueError, match="item 3 is bad"):
        mh.map(wrap(workloads.fail_on({3, 70, 150})), range(200), backend=backend)


def test_imap_delivers_results_before_the_failing_item(backend: str, wrap: Wrap) -> None:
    got = []
    with pytest.raises(KeyError):
        for result in mh.imap(wrap(workloads.fail_at_5), range(50), backend=backend):
            got.append(result)
    assert got == [0, 1, 2, 3, 4]


def test_unordered_mode_raises_the_user_exception(backend: str, wrap: Wrap) -> None:
    with pytest.raises(ValueError, match="is bad"):
        mh.map(wrap(workloads.fail_on({10, 20})), range(100), backend=backend, ordered=False)


def test_process_errors_carry_the_worker_traceback() -> None:
    with pytest.raises(KeyError) as caught:
        mh.map(workloads.fail_at_5, range(10), backend="process")
    cause = caught.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "fail_at_5" in cause.text
    assert "raise KeyError(x)" in cause.text


def test_in_process_errors_keep_their_own_traceback() -> None:
    with pytest.raises(KeyError) as caught:
        mh.map(workloads.fail_at_5, range(10), backend="thread")
    frames = [entry.name for entry in caught.traceback]
    assert "fail_at_5" in frames


def test_progress_bar_counts_items(
    backend: str, wrap: Wrap, capsys: pytest.CaptureFixture[str]
) -> None:
    assert mh.map(wrap(workloads.square), range(30), backend=backend, progress=True) == [
        x * x for x in range(30)
    ]
    err = capsys.readouterr().err
    assert "30/30" in err


def test_dropping_an_unfinished_imap_cleans_up(backend: str, wrap: Wrap) -> None:
    results = mh.imap(wrap(workloads.square), range(100_000), backend=backend)
    assert next(results) == 0
    del results
    gc.collect()  # the generator may sit in a reference cycle on other interpreters
    # The leak check (conftest) asserts that every worker is gone.


@pytest.mark.realtime
def test_breaking_out_stops_running_process_work_promptly() -> None:
    # Items after the first sleep for 300 s in the workers. Waiting for them would take
    # minutes; killing them takes milliseconds. 30 s of slack covers any slow machine.
    started = time.perf_counter()
    for result in mh.imap(workloads.first_fast_then_slow, range(10), backend="process"):
        assert result == 0
        break
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("ordered", [True, False])
def test_indexed_pairs_say_which_item_each_result_is_for(
    backend: str, wrap: Wrap, ordered: bool
) -> None:
    pairs = list(
        mh.imap(wrap(workloads.square), range(300), backend=backend, ordered=ordered, indexed=True)
    )
    assert sorted(pairs) == [(x, x * x) for x in range(300)]
    if ordered:
        assert pairs == sorted(pairs)
    star = list(mh.istarmap(wrap(workloads.add), [(x, 1) for x in range(50)], backend=backend,
                            ordered=ordered, indexed=True))  # fmt: skip
    assert sorted(star) == [(x, x + 1) for x in range(50)]
