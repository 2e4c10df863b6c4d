"""manyhands: make slow loops fast and safe.

    import manyhands as mh
    results = mh.map(work, items)                    # in input order
    for result in mh.imap(work, endless_generator):  # lazy, bounded memory
        ...
    with mh.Pool(backend="process") as pool:         # warm workers, a concurrent.futures.Executor
        future = pool.submit(work, item)

The names below are imported on first use (PEP 562), so ``import manyhands`` costs almost
nothing, and a worker process imports only the modules it runs.
"""

from __future__ import annotations

import sys

# Not ``typing.TYPE_CHECKING``: importing typing would cost every worker process ~10 ms.
# Type checkers treat any constant of this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._api import aimap, amap, explain, imap, istarmap, map, starmap
    from ._bench import bench
    from ._bench_report import Comparison, Timing
    from ._core._decision import Decision
    from ._core._failure import Failure, Retry
    from ._errors import (
        ArgumentTypeError,
        ArgumentValueError,
        ClusterUnavailable,
        JournalError,
        JournalInUse,
        JournalMismatch,
        ManyhandsError,
        MissingDependency,
        PoolClosedError,
        RemoteError,
        RemoteTraceback,
        SerializationError,
        TaskTimeout,
        WorkerCrashed,
    )
    from ._executors import ProcessPoolExecutor, ThreadPoolExecutor
    from ._journal_status import JournalItem, JournalStatus, journal_status
    from ._options import Dask, Journal, Processes
    from ._pool import Pool
    from ._sharing import Shared, shared
    from ._stats import PoolStatistics
    from ._system import available_cpus

__all__ = [
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

__version__ = "0.1.0"

_HOME = {
    "Dask": "_options",
    "Decision": "_core._decision",
    "Journal": "_options",
    "Processes": "_options",
    "Failure": "_core._failure",
    "Retry": "_core._failure",
    "TaskTimeout": "_errors",
    "aimap": "_api",
    "bench": "_bench",
    "Comparison": "_bench_report",
    "Timing": "_bench_report",
    "amap": "_api",
    "explain": "_api",
    "imap": "_api",
    "istarmap": "_api",
    "map": "_api",
    "starmap": "_api",
    "ArgumentTypeError": "_errors",
    "ArgumentValueError": "_errors",
    "JournalError": "_errors",
    "JournalInUse": "_errors",
    "JournalMismatch": "_errors",
    "JournalItem": "_journal_status",
    "JournalStatus": "_journal_status",
    "journal_status": "_journal_status",
    "ManyhandsError": "_errors",
    "MissingDependency": "_errors",
    "ClusterUnavailable": "_errors",
    "PoolClosedError": "_errors",
    "RemoteError": "_errors",
    "RemoteTraceback": "_errors",
    "SerializationError": "_errors",
    "WorkerCrashed": "_errors",
    "Pool": "_pool",
    "ProcessPoolExecutor": "_executors",
    "ThreadPoolExecutor": "_executors",
    "PoolStatistics": "_stats",
    "available_cpus": "_system",
    "Shared": "_sharing",
    "shared": "_sharing",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'manyhands' has no attribute {name!r}")
    # ``__import__``, not ``importlib.import_module``: the ``importlib`` package is 0.3 ms.
    __import__(f"{__name__}.{module}")
    value = getattr(sys.modules[f"{__name__}.{module}"], name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
