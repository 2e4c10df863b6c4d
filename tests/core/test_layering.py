"""The architecture, checked: _core knows no backend, the surface is pinned, import is cheap."""

from __future__ import annotations

import ast
import copy
import pickle
import subprocess
import sys
import types
from pathlib import Path

import pytest

import manyhands

PACKAGE = Path(manyhands.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


#: The layers that compose _core and the backends: neither may import them.
ABOVE = {
    ".._api",
    ".._pool",
    ".._executors",
    ".._executor_map",
    ".._keywords",
    ".._run",
    ".._options",
    ".._progress",
    ".._journal",
    ".._cli",
    ".._stats",
}


def test_core_imports_no_backend_and_nothing_above_it() -> None:
    for path in (PACKAGE / "_core").glob("*.py"):
        for module in imported_modules(path):
            assert "backends" not in module, (path.name, module)
            assert module not in ABOVE, (path.name, module)


def protocol_members() -> set[str]:
    from manyhands._core._protocol import Backend

    members = set(Backend.__annotations__)
    members |= {name for name in vars(Backend) if not name.startswith("_")}
    return members


def test_every_backend_implements_exactly_the_protocol() -> None:
    # A backend that grows members beyond the protocol is a policy living in the wrong
    # place (the auto router once needed bind, forget, delegate and a decisions attribute).
    import importlib

    from manyhands.backends import _REGISTRY

    expected = protocol_members()
    assert expected == {"name", "capabilities", "workers", "submit", "stop", "shutdown"}
    for name, (module, class_name) in _REGISTRY.items():
        cls = getattr(importlib.import_module(module), class_name)
        public = {member for member in dir(cls) if not member.startswith("_")}
        public |= {member for member in getattr(cls, "__annotations__", {}) if member[0] != "_"}
        assert public == expected, (name, sorted(public ^ expected))


def test_auto_is_a_stage_of_the_engine_not_a_backend() -> None:
    from manyhands.backends import _REGISTRY, BACKEND_NAMES

    assert "auto" in BACKEND_NAMES
    assert "auto" not in _REGISTRY
    assert not (PACKAGE / "backends" / "auto.py").exists()
    assert (PACKAGE / "_core" / "_auto.py").exists()


def test_layers_import_only_downwards() -> None:
    # Backends use _core (and the leaf modules beside it), never the layers that compose them.
    for path in (PACKAGE / "backends").glob("*.py"):
        for module in imported_modules(path):
            assert module not in ABOVE, (path.name, module)


def test_public_surface_is_pinned() -> None:
    assert manyhands.__all__ == [
        "ArgumentTypeError",
        "ArgumentValueError",
        "ClusterUnavailable",
        "Comparison",
        "Dask",
        "Decision",
        "Failure",
        "Journal",
        "JournalError",
        "JournalInUse",
        "JournalItem",
        "JournalMismatch",
        "JournalStatus",
        "ManyhandsError",
        "MissingDependency",
        "Pool",
        "PoolClosedError",
        "PoolStatistics",
        "ProcessPoolExecutor",
        "Processes",
        "RemoteError",
        "RemoteTraceback",
        "Retry",
        "SerializationError",
        "Shared",
        "TaskTimeout",
        "ThreadPoolExecutor",
        "Timing",
        "WorkerCrashed",
        "aimap",
        "amap",
        "available_cpus",
        "bench",
        "explain",
        "imap",
        "istarmap",
        "journal_status",
        "map",
        "shared",
        "starmap",
    ]
    for name in manyhands.__all__:
        assert getattr(manyhands, name) is not None


def test_every_manyhands_exception_derives_from_manyhands_error() -> None:
    for name in manyhands.__all__:
        value = getattr(manyhands, name)
        # RemoteTraceback only carries a worker's traceback text; it is never raised itself.
        is_exception = isinstance(value, type) and issubclass(value, BaseException)
        if is_exception and name != "RemoteTraceback":
            assert issubclass(value, manyhands.ManyhandsError), name


def heavy_modules_after(statement: str, heavy: set[str]) -> list[str]:
    """Which of ``heavy`` a fresh interpreter has loaded after running ``statement``."""
    code = f"import sys; {statement}; print(sorted(set({sorted(heavy)!r}) & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: list[str] = ast.literal_eval(out.stdout.strip())
    return loaded


def test_the_import_probe_sees_what_is_imported() -> None:
    assert heavy_modules_after("import json", {"json", "tomllib"}) == ["json"]


def test_import_is_cheap() -> None:
    optional = {"cloudpickle", "tqdm", "psutil", "subprocess", "concurrent.futures", "dask"}
    optional |= {"sqlite3", "argparse", "json"}  # the journal and the command line's
    assert heavy_modules_after("import manyhands", optional | {"matplotlib"}) == []


#: What a tiny job's first call must not import: together 50 ms of a 60 ms first call before
#: they were taken off its path (bytecode compiled, this machine).
FIRST_CALL_HEAVY = {"typing", "dataclasses", "inspect", "concurrent.futures", "logging"}
FIRST_CALL_HEAVY |= {"json", "re", "random", "enum", "contextlib", "cloudpickle", "tqdm", "psutil"}
FIRST_CALL_HEAVY |= {"asyncio", "queue", "heapq", "importlib"}  # each 0.3-0.6 ms with its C part


@pytest.mark.parametrize("backend", ["auto", "serial", "thread"])
def test_a_tiny_first_call_imports_only_what_it_uses(backend: str) -> None:
    statement = (
        "import manyhands as mh; "
        f"assert mh.map(abs, [-1, 2], backend={backend!r}) == [1, 2]; "
        f"assert list(mh.imap(abs, [-3], backend={backend!r})) == [3]"
    )
    assert heavy_modules_after(statement, FIRST_CALL_HEAVY) == []


#: Our own modules a job's probe alone does not need: the log-record factory (no record can be
#: made before ``logging`` is imported) and the BLAS limit (one thread). 0.2-0.3 ms each.
PROBE_UNUSED = {"manyhands.backends._worker_logs", "manyhands.backends._limits"}


@pytest.mark.parametrize("backend", ["auto", "serial"])
def test_a_tiny_first_call_leaves_the_log_factory_and_thread_limit_unloaded(backend: str) -> None:
    statement = (
        f"import manyhands as mh; assert mh.map(abs, [-1, 2], backend={backend!r}) == [1, 2]"
    )
    assert heavy_modules_after(statement, PROBE_UNUSED) == []
    # A program that logs gets its records attributed: the factory loads with its first chunk.
    logged = f"import logging; {statement}"
    assert heavy_modules_after(logged, PROBE_UNUSED) == ["manyhands.backends._worker_logs"]


def test_the_records_without_typing_behave_as_typing_makes_them() -> None:
    # _core/_records stands in for typing.NamedTuple at run time: the same class body gives
    # the same record under both.
    import typing

    from manyhands._core import _records

    body = {
        "__module__": __name__,
        "__qualname__": "Point",
        "__doc__": "A point.",
        "__annotations__": {"x": "int", "y": "int"},
        "y": 0,
        "norm": property(lambda self: abs(self.x) + abs(self.y)),
    }
    ours = types.new_class("Point", (_records.NamedTuple,), exec_body=lambda ns: ns.update(body))
    theirs = types.new_class("Point", (typing.NamedTuple,), exec_body=lambda ns: ns.update(body))
    for make in (ours, theirs):
        point = make(3, -4)
        assert (point.x, point.y, point.norm, make(1).y) == (3, -4, 7, 0)
        assert make(y=2, x=1) == (1, 2)
        assert repr(point) == "Point(x=3, y=-4)"
        assert make.__doc__ == "A point."
        assert point._replace(y=1) == make(3, 1)
        assert make._fields == ("x", "y")
        assert make._field_defaults == {"y": 0}
        assert make.__match_args__ == ("x", "y")
        assert point._asdict() == {"x": 3, "y": -4}
        assert make._make([5, 6]) == (5, 6)
        assert make.__qualname__ == "Point"
        assert (make.x.__doc__, make.y.__doc__) == (
            "Alias for field number 0",
            "Alias for field number 1",
        )
        assert copy.copy(point) == point
        assert copy.deepcopy(point) == point
        assert tuple.__eq__(point, (3, -4))
        assert isinstance(point, tuple)
        assert not hasattr(point, "__dict__")
        with pytest.raises(AttributeError):
            point.x = 1  # type: ignore[misc]
        with pytest.raises(TypeError):
            make()  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            make(1, 2, 3)  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            make._make([1])
        # As namedtuple raises it on this version (a TypeError from 3.13 on).
        unexpected = TypeError if sys.version_info >= (3, 13) else ValueError
        with pytest.raises(unexpected, match="unexpected field names"):
            point._replace(z=1)  # type: ignore[call-arg]
    # A record of more fields than have a __new__ written out is namedtuple's own.
    many = {f"f{index}": "int" for index in range(len(_records._NEW) + 1)}
    wide = types.new_class(
        "Wide",
        (_records.NamedTuple,),
        exec_body=lambda ns: ns.update({"__module__": __name__, "__annotations__": many}),
    )
    assert wide(*range(len(many)))._asdict() == {name: int(name[1:]) for name in many}
    # Records pickle by reference, as namedtuple's do.
    from manyhands import Journal

    journal = Journal("run.db", retry_failed=True)
    assert pickle.loads(pickle.dumps(journal)) == journal
    assert type(pickle.loads(pickle.dumps(journal))) is Journal
    with pytest.raises(TypeError, match="without a default follows"):
        types.new_class(
            "Bad",
            (_records.NamedTuple,),
            exec_body=lambda ns: ns.update(
                {"__module__": __name__, "__annotations__": {"a": "int", "b": "int"}, "a": 1}
            ),
        )


def test_worker_start_up_path_stays_lean() -> None:
    heavy = {"typing", "dataclasses", "inspect", "cloudpickle", "concurrent.futures"}
    statement = "from manyhands.backends import _worker"
    assert heavy_modules_after(statement, heavy | {"multiprocessing"}) == []
