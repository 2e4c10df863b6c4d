"""Shared fixtures: every test runs under a leak check; contract tests run on every backend."""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

# Workload functions live in an importable module so process workers load them by reference.
sys.path.insert(0, str(Path(__file__).parent))

BACKENDS = ["serial", "thread", "process", "asyncio"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(params=["thread", "process", "asyncio"])
def parallel_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


@pytest.fixture
def wrap(request: pytest.FixtureRequest) -> Wrap:
    """The workload as the backend under test runs it: an ``async def`` for asyncio."""
    names = set(request.fixturenames)
    backend = next(
        (request.getfixturevalue(n) for n in ("backend", "parallel_backend") if n in names), None
    )
    if backend != "asyncio":
        return lambda fn: fn
    return as_coroutine_function


def as_coroutine_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)  # a real suspension point, as in I/O code
        return fn(*args, **kwargs)

    return run


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves a thread or a child process behind.

    manyhands joins its threads and reaps its workers before a call returns, so the check is
    exact: no grace period, no sleeping.
    """
    threads_before = set(threading.enumerate())
    me = psutil.Process()
    children_before = {child.pid for child in me.children(recursive=True)}
    yield
    leaked_threads = [
        thread
        for thread in threading.enumerate()
        if thread not in threads_before and thread.is_alive()
    ]
    leaked_children = [
        child for child in me.children(recursive=True) if child.pid not in children_before
    ]
    for child in leaked_children:  # clean up so that one leak does not fail every later test
        child.kill()
    assert not leaked_threads, f"threads left running: {leaked_threads}"
    assert not leaked_children, f"child processes left running: {leaked_children}"
