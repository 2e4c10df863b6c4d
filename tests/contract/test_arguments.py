"""Bad arguments: the error names the parameter and the value, and says what is accepted."""

from __future__ import annotations

from typing import Any

import pytest

import manyhands as mh

import workloads

CASES: list[tuple[dict[str, Any], type[Exception], list[str]]] = [
    ({"workers": 0}, mh.ArgumentValueError, ["workers", "0", ">= 1"]),
    ({"workers": -3}, mh.ArgumentValueError, ["workers", "-3"]),
    ({"workers": "4"}, mh.ArgumentTypeError, ["workers", "'4'", "whole number"]),
    ({"workers": True}, mh.ArgumentTypeError, ["workers", "True"]),
    ({"workers": 2.5}, mh.ArgumentTypeError, ["workers", "2.5"]),
    ({"chunksize": 0}, mh.ArgumentValueError, ["chunksize", "0", "None"]),
    ({"chunksize": -1}, mh.ArgumentValueError, ["chunksize", "-1"]),
    ({"chunksize": 1.5}, mh.ArgumentTypeError, ["chunksize", "1.5"]),
    ({"backend": "gpu"}, mh.ArgumentValueError, ["backend", "'gpu'", "'process'", "'thread'"]),
    ({"backend": None}, mh.ArgumentTypeError, ["backend", "None"]),
    ({"ordered": "yes"}, mh.ArgumentTypeError, ["ordered", "'yes'", "True or False"]),
    ({"progress": 1}, mh.ArgumentTypeError, ["progress", "1", "True or False"]),
    ({"errors": "ignore"}, mh.ArgumentValueError, ["errors='ignore'", "'raise'", "'return'"]),
    ({"timeout": 0}, mh.ArgumentValueError, ["timeout", "0", "None for no limit"]),
    ({"timeout": "5"}, mh.ArgumentTypeError, ["timeout", "'5'", "seconds"]),
    ({"timeout": float("inf")}, mh.ArgumentValueError, ["timeout", "inf"]),
    ({"retries": -1}, mh.ArgumentValueError, ["retries", "-1", ">= 0"]),
    ({"retries": "3"}, mh.ArgumentTypeError, ["retries", "'3'", "manyhands.Retry"]),
    ({"timeout": 2, "chunksize": 10}, mh.ArgumentValueError, ["timeout=2", "chunksize=10"]),
    ({"timeout": 2, "backend": "serial"}, mh.ArgumentValueError, ["timeout=2", "'serial'"]),
]


@pytest.mark.parametrize(("options", "error", "words"), CASES)
@pytest.mark.parametrize("entry", ["map", "imap", "starmap"])
def test_bad_option_is_named(
    entry: str, options: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as caught:
        getattr(mh, entry)(workloads.square, [1, 2], **options)
    message = str(caught.value)
    for word in words:
        assert word in message, (word, message)
    assert isinstance(caught.value, mh.ManyhandsError)


def test_bad_arguments_raise_builtin_types_too() -> None:
    with pytest.raises(ValueError, match="workers"):
        mh.map(workloads.square, [1], workers=0)
    with pytest.raises(TypeError, match="chunksize"):
        mh.map(workloads.square, [1], chunksize="7")


def test_non_callable_fn() -> None:
    with pytest.raises(mh.ArgumentTypeError, match=r"fn must be callable, got 42 \(int\)"):
        mh.map(42, [1, 2])  # type: ignore[call-overload]


def test_calling_the_function_instead_of_passing_it_is_explained() -> None:
    with pytest.raises(TypeError, match="not its result"):
        mh.map(workloads.square(3), [1])  # type: ignore[call-overload]


@pytest.mark.parametrize("items", [5, None, 3.0])
def test_non_iterable_items(items: Any) -> None:
    with pytest.raises(mh.ArgumentTypeError, match="items must be iterable"):
        mh.map(workloads.square, items)


def test_a_string_as_items_is_refused() -> None:
    with pytest.raises(mh.ArgumentTypeError, match=r"split into characters.*\['abc'\]"):
        mh.map(workloads.identity, "abc")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"backend": "nope"}, ["backend", "'nope'"]),
        ({"workers": 0}, ["workers", "0"]),
        ({"initializer": 3}, ["initializer", "callable"]),
        ({"initializer": workloads.set_state, "initargs": 5}, ["initargs", "(5,)"]),
        ({"initargs": (1,)}, ["initargs", "without an initializer"]),
    ],
)
def test_pool_arguments_are_checked(options: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(mh.ManyhandsError) as caught:
        mh.Pool(**options)
    for word in words:
        assert word in str(caught.value)


def test_arguments_are_checked_before_any_work_starts() -> None:
    pulled: list[int] = []

    def recording() -> Any:
        pulled.append(1)
        yield 1

    with pytest.raises(mh.ArgumentValueError):
        mh.imap(workloads.square, recording(), chunksize=0)
    assert pulled == []


@pytest.mark.parametrize("backend", ["serial", "thread", "process"])
def test_an_async_function_on_a_backend_that_only_calls_it_is_refused(backend: str) -> None:
    # Called without being awaited, it would return coroutine objects as its results.
    words = ["fn=async_sleepy", "async def", f"backend={backend!r}", "backend='asyncio'"]
    with pytest.raises(mh.ArgumentValueError) as raised:
        mh.map(workloads.async_sleepy, range(3), backend=backend)
    assert all(word in str(raised.value) for word in words), str(raised.value)
    with mh.Pool(backend=backend, workers=1) as pool, pytest.raises(mh.ArgumentValueError):
        list(pool.imap(workloads.async_sleepy, range(3)))
    # auto and asyncio await it
    assert mh.map(workloads.async_sleepy, range(3)) == [0, 1, 2]
    assert mh.map(workloads.async_sleepy, range(3), backend="asyncio") == [0, 1, 2]


def test_an_async_function_is_refused_on_dask_before_any_cluster_is_reached() -> None:
    with pytest.raises(mh.ArgumentValueError, match="backend='dask' calls it without awaiting"):
        mh.map(workloads.async_sleepy, range(3), backend=mh.Dask(address="tcp://127.0.0.1:9"))
