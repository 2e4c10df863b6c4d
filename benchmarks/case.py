"""Run one benchmark case in this fresh process; print its wall time and peak RSS as JSON.

    python benchmarks/case.py WORKLOAD TOOL [SPIN_ITERATIONS]

Imports happen before the clock starts; the timed part is the whole call, pool start-up and
shutdown included.
"""

from __future__ import annotations

import atexit
import importlib
import itertools
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import Pool
from typing import Any

import manyhands as mh

from workloads import async_sleep_50ms, crc, sleep_50ms, sleep_200ms, spin, spin_logging, square

CPUS = mh.available_cpus()
#: The address of a Dask cluster started before the clock, for the tools that need one.
DASK_ADDRESS = ""


def run_list(tool: str, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    if tool == "serial loop":
        return [fn(x) for x in items]
    if tool == "manyhands auto":
        return mh.map(fn, items)
    if tool == "manyhands process":
        return mh.map(fn, items, backend="process")
    if tool == "manyhands process, output=inherit":  # nothing forwarded: the cost's baseline
        return mh.map(fn, items, backend="process", output="inherit")
    if tool == "manyhands process, journal":
        # A fresh journal: every item is run and recorded (resume is measured separately).
        return mh.map(fn, items, backend="process", journal=fresh_journal())
    if tool == "manyhands dask":
        return mh.map(fn, items, backend=mh.Dask(address=DASK_ADDRESS))
    if tool == "manyhands dask, local cluster":
        return mh.map(fn, items, backend="dask")  # starts and stops a cluster: timed
    if tool == "dask client.map":
        import distributed

        with distributed.Client(DASK_ADDRESS, set_as_default=False) as client:
            return list(client.gather(client.map(fn, items, pure=False)))
    if tool == "manyhands thread":
        return mh.map(fn, items, backend="thread")
    if tool == "manyhands thread, workers=100":
        return mh.map(fn, items, backend="thread", workers=100)
    if tool == "multiprocessing.Pool":
        with Pool(CPUS) as pool:
            return pool.map(fn, items)
    if tool == "ProcessPoolExecutor":
        with ProcessPoolExecutor(CPUS) as executor:
            return list(executor.map(fn, items))
    if tool == "ThreadPoolExecutor":
        with ThreadPoolExecutor() as executor:
            return list(executor.map(fn, items))
    if tool == "ThreadPoolExecutor(10)":
        with ThreadPoolExecutor(10) as executor:
            return list(executor.map(fn, items))
    if tool == "joblib":
        import joblib

        return list(joblib.Parallel(n_jobs=CPUS)(joblib.delayed(fn)(x) for x in items))
    if tool == "mpire":
        import mpire

        with mpire.WorkerPool(n_jobs=CPUS) as pool:
            return list(pool.map(fn, items))
    raise SystemExit(f"unknown tool {tool!r}")


def import_for(tool: str) -> None:
    """Import the tool before the clock starts, and nothing the tool does not need (RSS).

    manyhands imports its modules on first use; like the anchors' imports at the top of this
    file, that is not part of the call being timed.
    """
    if tool in ("joblib", "mpire"):
        importlib.import_module(tool)
    if tool.startswith("manyhands"):
        backend = tool.split()[1].rstrip(",")
        for module in ("thread", "process", "serial", "aio"):
            if backend in ("auto", module):
                importlib.import_module(f"manyhands.backends.{module}")
        if backend == "auto":
            importlib.import_module("manyhands._core._auto")
        mh.map, mh.imap  # noqa: B018  (resolves the lazy attributes: imports _api, _pool)
        if backend in ("process", "auto", "dask"):
            importlib.import_module("cloudpickle")
        if backend == "dask":
            importlib.import_module("manyhands.backends.daskdist")
            importlib.import_module("manyhands.backends._dask_cluster")
    if tool == "dask client.map":
        importlib.import_module("distributed")


def start_cluster() -> None:
    """Start a scheduler and one single-threaded worker per CPU on 127.0.0.1 (not timed)."""
    global DASK_ADDRESS
    import distributed

    from manyhands.backends._dask_cluster import LoopbackCluster

    cluster = LoopbackCluster(CPUS)
    atexit.register(cluster.stop)
    with distributed.Client(cluster.address, set_as_default=False) as client:
        client.wait_for_workers(CPUS)
    DASK_ADDRESS = cluster.address


def fresh_journal() -> str:
    path = os.path.join(tempfile.mkdtemp(prefix="manyhands-bench-"), "journal.db")
    atexit.register(shutil.rmtree, os.path.dirname(path), True)
    return path


def first_thousand(tool: str) -> list[int]:
    def endless() -> Iterable[int]:
        return itertools.islice(itertools.count(), 10_000_000)

    if tool == "manyhands process":
        results = mh.imap(square, endless(), backend="process")
        first = list(itertools.islice(results, 1000))
        results.close()  # type: ignore[attr-defined]
        return first
    if tool == "multiprocessing.Pool":
        with Pool(CPUS) as pool:
            return list(itertools.islice(pool.imap(square, endless()), 1000))
    raise SystemExit(f"unknown tool {tool!r} for imap")


def main() -> None:
    workload, tool = sys.argv[1], sys.argv[2]
    iterations = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    import_for(tool)
    if tool in ("manyhands dask", "dask client.map"):
        start_cluster()
    started: float
    if workload == "imap 10M, first 1,000":
        started = time.perf_counter()
        results = first_thousand(tool)
        elapsed = time.perf_counter() - started
        expected: list[Any] = [square(x) for x in range(1000)]
    elif workload == "resume: 200,000 recorded x*x":
        journal = fresh_journal()
        mh.map(square, range(200_000), backend="process", journal=journal)  # not timed
        started = time.perf_counter()
        results = mh.map(square, range(200_000), backend="process", journal=journal)
        elapsed = time.perf_counter() - started
        expected = [square(x) for x in range(3)]
    else:
        fn: Callable[[Any], Any]
        if workload == "8 x 0.25 s CPU":
            fn, items = spin, [iterations] * 8
        elif workload == "20,000 x 100 us CPU":
            fn, items = spin, [iterations] * 20_000
        elif workload == "20,000 x 100 us CPU, logs INFO at WARNING":
            import logging

            logging.basicConfig(level=logging.WARNING)
            fn, items = spin_logging, [iterations] * 20_000
        elif workload in ("200,000 x x*x", "200,000 x x*x, threads"):
            fn, items = square, list(range(200_000))
        elif workload == "200 x 1 MiB crc32":
            fn, items = crc, [os.urandom(1 << 20) for _ in range(200)]
        elif workload == "1,000 x sleep(0.05)":
            fn, items = sleep_50ms, list(range(1000))
        elif workload == "50 x sleep(0.2), the lecture":
            fn, items = sleep_200ms, list(range(50))
        elif workload == "1,000 x async sleep(0.05)":
            fn, items = async_sleep_50ms, list(range(1000))
        else:
            raise SystemExit(f"unknown workload {workload!r}")
        started = time.perf_counter()
        results = run_list(tool, fn, items)
        elapsed = time.perf_counter() - started
        is_async = fn is async_sleep_50ms
        expected = items[:3] if is_async else [fn(x) for x in items[:3]]
    assert results[:3] == expected[:3], (results[:3], expected[:3])
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "rss_mb": rss_mb}))


if __name__ == "__main__":
    main()
