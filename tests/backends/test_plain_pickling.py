"""The C pickler where it pickles as cloudpickle would (``_plain``), cloudpickle elsewhere."""

from __future__ import annotations

import functools
import os
import pickle

import pytest

from manyhands._plain import ByValue, PlainPickler, by_reference
from manyhands.backends import _shared

import workloads
from fresh import run_python


def plain(obj: object) -> bytes:
    import io

    out = io.BytesIO()
    PlainPickler(out, protocol=5).dump(obj)
    return out.getvalue()


def test_what_an_importable_module_defines_goes_by_reference_in_the_same_bytes() -> None:
    import cloudpickle

    for obj in (workloads.square, functools.partial(workloads.add, 1), [os.getpid, len, 3]):
        assert plain(obj) == cloudpickle.dumps(obj, protocol=5)
    assert by_reference(workloads.square)
    assert by_reference(pickle.Pickler)


def test_what_must_travel_by_value_is_refused() -> None:
    def local(x: int) -> int:
        return x

    class Local:
        pass

    for obj in (local, lambda x: x, Local, Local(), functools.partial(local, 1)):
        with pytest.raises(ByValue):
            plain(obj)
    assert not by_reference(local)


def test_a_module_registered_to_pickle_by_value_is_refused() -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(workloads)
    try:
        assert not by_reference(workloads.square)
        with pytest.raises(ByValue):
            plain(workloads.square)
    finally:
        cloudpickle.unregister_pickle_by_value(workloads)
    assert by_reference(workloads.square)


def test_what_is_refused_is_pickled_by_cloudpickle_and_loads() -> None:
    offset = 5
    payload = _shared.dumps(lambda x: x + offset, share=False)
    assert pickle.loads(payload.data)(1) == 6


def test_a_process_job_of_an_importable_function_never_imports_cloudpickle() -> None:
    # 27 ms of imports, more beside busy threads: only what must travel by value needs it.
    code = (
        "import sys, manyhands, workloads\n"
        "assert manyhands.map(workloads.square, range(20), backend='process', workers=2)"
        " == [x * x for x in range(20)]\n"
        "assert manyhands.explain(workloads.busy, range(40)).evidence['function_bytes']\n"
        "print('cloudpickle' in sys.modules)\n"
    )
    out = run_python(code)
    assert out.stdout.strip() == "False", out.stderr
