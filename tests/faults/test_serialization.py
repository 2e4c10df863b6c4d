"""What cannot be pickled fails fast, and says whether the function, an item or a result."""

from __future__ import annotations

import threading

import pytest

import manyhands as mh

import workloads


def test_unpicklable_function_is_named() -> None:
    lock = threading.Lock()

    def holds_a_lock(x: int) -> int:
        with lock:
            return x

    with pytest.raises(mh.SerializationError) as caught:
        mh.map(holds_a_lock, range(10), backend="process")
    assert caught.value.what == "function"
    assert "holds_a_lock" in str(caught.value)
    assert "lock" in str(caught.value)
    assert "backend='thread'" in str(caught.value)


def test_unpicklable_item_is_named_by_index() -> None:
    items: list[object] = [1, 2, 3, workloads.Unpicklable(), 5]
    with pytest.raises(mh.SerializationError) as caught:
        mh.map(workloads.identity, items, backend="process", chunksize=1)
    assert caught.value.what == "item"
    assert caught.value.index == 3
    assert "item 3" in str(caught.value)
    assert "Unpicklable refuses" in str(caught.value)


def test_unpicklable_result_fails_that_item() -> None:
    with pytest.raises(mh.SerializationError) as caught:
        mh.map(workloads.return_lock, range(6), backend="process")
    assert caught.value.what == "result"
    assert "cannot be pickled to send it back" in str(caught.value)
    assert any("item 3" in note for note in caught.value.__notes__)


def test_unpicklable_results_are_fine_on_threads() -> None:
    results = mh.map(workloads.return_lock, range(6), backend="thread")
    assert results[:3] == [0, 1, 2]
    assert isinstance(results[3], type(threading.Lock()))


def test_exception_that_cannot_be_unpickled_arrives_as_remote_error() -> None:
    with pytest.raises(mh.RemoteError) as caught:
        mh.map(workloads.raise_odd_exception, range(5), backend="process")
    assert caught.value.type_name == "workloads.ExceptionWithRequiredArgs"
    assert "42: no" in str(caught.value)
    assert isinstance(caught.value.__cause__, mh.RemoteTraceback)
    assert "raise_odd_exception" in caught.value.__cause__.text


def test_unpicklable_initializer_fails_when_the_pool_is_created() -> None:
    lock = threading.Lock()
    with pytest.raises(mh.SerializationError) as caught:
        mh.Pool(backend="process", initializer=workloads.set_state, initargs=(lock,))
    assert caught.value.what == "initializer"
