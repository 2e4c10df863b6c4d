"""errors="return": every item keeps its place; failures become Failure records."""

from __future__ import annotations

import manyhands as mh

import workloads
from conftest import Wrap


def test_failures_take_their_items_places(backend: str, wrap: Wrap) -> None:
    results = mh.map(wrap(workloads.fail_on({3, 8})), range(12), backend=backend, errors="return")
    assert [r for i, r in enumerate(results) if i not in (3, 8)] == [
        x for x in range(12) if x not in (3, 8)
    ]
    for index in (3, 8):
        failure = results[index]
        assert isinstance(failure, mh.Failure)
        assert (failure.index, failure.item, failure.kind) == (index, index, "error")
        assert isinstance(failure.exception, ValueError)
        assert f"item {index} is bad" in failure.traceback
        assert failure.attempts == 1
        assert failure.duration is not None
        assert failure.duration >= 0


def test_imap_and_unordered_return_failures_too(backend: str, wrap: Wrap) -> None:
    lazy = list(mh.imap(wrap(workloads.fail_on({5})), range(10), backend=backend, errors="return"))
    assert isinstance(lazy[5], mh.Failure)
    unordered = mh.map(
        wrap(workloads.fail_on({5})), range(10), backend=backend, errors="return", ordered=False
    )
    assert sorted(r for r in unordered if not isinstance(r, mh.Failure)) == [
        x for x in range(10) if x != 5
    ]
    assert [f.index for f in unordered if isinstance(f, mh.Failure)] == [5]


def test_pool_methods_take_the_failure_options(backend: str, wrap: Wrap) -> None:
    with mh.Pool(backend=backend, workers=2) as pool:
        results = list(pool.map(wrap(workloads.fail_on({1})), range(4), errors="return", retries=1))
        stats = pool.statistics()
    assert isinstance(results[1], mh.Failure)
    assert results[1].attempts == 2
    assert (stats.items_done, stats.items_failed) == (3, 1)
