"""One surface: every map takes the same options, declared once, shown in every signature.

The one-call functions (``manyhands.map`` and the rest) and a Pool's methods share the
keyword options of ``_options.Keywords``; the type checker's view (``_keywords.py``) names
the same options with the same types; a Pool has every mapping method the module has.
"""

from __future__ import annotations

import asyncio
import inspect
import pydoc
from typing import Any, ForwardRef

import pytest

import manyhands as mh
from manyhands._keywords import CallKeywords, MapKeywords
from manyhands._options import CALL_KEYWORDS, KEYWORDS, Keywords
from manyhands._system import native_thread_limiter

import workloads

RUN = dict(KEYWORDS)
LAZY = {**RUN, "indexed": False}
ONE_CALL = {
    "map": {**CALL_KEYWORDS, **RUN},
    "starmap": {**CALL_KEYWORDS, **RUN},
    "amap": {**CALL_KEYWORDS, **RUN},
    "aimap": {**CALL_KEYWORDS, **RUN},
    "imap": {**CALL_KEYWORDS, **LAZY},
    "istarmap": {**CALL_KEYWORDS, **LAZY},
}
POOL = {"starmap": RUN, "amap": RUN, "aimap": RUN, "imap": LAZY, "istarmap": LAZY}


def keywords(fn: Any) -> dict[str, Any]:
    signature = inspect.signature(fn)
    return {
        name: parameter.default
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


def positional(fn: Any) -> list[str]:
    signature = inspect.signature(fn)
    return [
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY
    ]


@pytest.mark.parametrize("name", list(ONE_CALL))
def test_every_one_call_function_shows_every_option_with_its_default(name: str) -> None:
    fn = getattr(mh, name)
    assert keywords(fn) == ONE_CALL[name]
    assert list(keywords(fn))[:2] == ["backend", "workers"]
    assert positional(fn) == ["fn", "items"]


@pytest.mark.parametrize("name", list(POOL))
def test_every_pool_method_shows_the_same_options(name: str) -> None:
    with mh.Pool(backend="serial") as pool:
        assert keywords(getattr(pool, name)) == POOL[name]
        assert positional(getattr(pool, name)) == ["fn", "items"]
    assert positional(getattr(mh.Pool, name)) == ["self", "fn", "items"]


def test_help_shows_the_options_and_the_documentation() -> None:
    text = pydoc.render_doc(mh.map, renderer=pydoc.plaintext)
    assert "backend='auto'" in text
    assert "retries=0" in text
    assert "journal=None" in text
    assert "in parallel; results in input order" in text  # map's own docstring


def test_the_type_checkers_view_names_the_same_options_and_types() -> None:
    def annotations(typed: Any) -> dict[str, str]:
        return {
            name: value.__forward_arg__ if isinstance(value, ForwardRef) else str(value)
            for name, value in typed.__annotations__.items()
        }

    assert annotations(MapKeywords) == dict(Keywords.__annotations__)
    assert set(annotations(CallKeywords)) == set(KEYWORDS) | set(CALL_KEYWORDS)


def test_an_unknown_option_is_named_with_the_one_meant() -> None:
    with pytest.raises(TypeError, match=r"map\(\) got an unexpected keyword argument 'retry'"):
        mh.map(workloads.square, [1], retry=2)  # type: ignore[call-arg]
    with (
        mh.Pool(backend="serial") as pool,
        pytest.raises(TypeError, match=r"did you mean retries=\?"),
    ):
        pool.starmap(workloads.add, [(1, 2)], retry=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="indexed"):  # only the lazy maps take it
        mh.map(workloads.square, [1], indexed=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"did you mean workers=\?"):
        mh.imap(workloads.square, [1], worker=2)  # type: ignore[call-overload]


def test_the_pool_has_the_whole_surface(parallel_backend: str) -> None:
    async def twice(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    fn = twice if parallel_backend == "asyncio" else workloads.square
    expected = [2 * x for x in range(6)] if parallel_backend == "asyncio" else [0, 1, 4, 9, 16, 25]

    async def asynchronous(pool: mh.Pool) -> tuple[list[Any], list[Any]]:
        listed = await pool.amap(fn, range(6))
        lazy = [result async for result in pool.aimap(fn, range(6))]
        return listed, lazy

    with mh.Pool(backend=parallel_backend, workers=2) as pool:
        assert asyncio.run(asynchronous(pool)) == (expected, expected)
        assert list(pool.imap(fn, range(6), indexed=True)) == list(enumerate(expected))
        decision = pool.explain(fn, range(6))
        assert decision.backend == parallel_backend
        assert decision.reasons[0] == f"backend={parallel_backend!r} was given"
        # processes also say what their native libraries' threads get, and so do threads
        # where such a library is loaded (numpy, by an earlier test); the others say no more
        said = 2 if parallel_backend == "process" else 1
        if parallel_backend == "thread" and native_thread_limiter() is not None:
            said = 2
        assert len(decision.reasons) == said


def test_a_pools_explain_runs_the_planner() -> None:
    with mh.Pool(workers=2) as pool:
        decision = pool.explain(workloads.sleepy, range(20))
    assert decision.backend == "thread"
    assert any("waits" in reason for reason in decision.reasons)


def test_grouped_options_are_typed_records() -> None:
    journal = mh.Journal("run.db", retry_failed=True)
    assert journal._replace(mismatch="rerun") == mh.Journal("run.db", True, "rerun")
    assert mh.Dask(address="tcp://127.0.0.1:8786").client is None
    with pytest.raises(mh.ArgumentTypeError, match=r"manyhands\.Dask"):
        mh.map(workloads.square, [1], backend=3)  # type: ignore[arg-type]
    with pytest.raises(mh.ArgumentValueError, match="pass one"):
        mh.Pool(backend=mh.Dask(address="tcp://127.0.0.1:1", client=object()))
