"""Large buffers a function reaches travel to worker processes once, through shared memory,
and are read there without a copy; so do the large buffers of items, to their worker, and of
results, back to the caller. Nothing is left behind (an unnamed file: no name to leak).
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest

import manyhands as mh
from manyhands._system import SHARES_BUFFERS
from memory import MiB, open_fds, shm_mapped, shm_names, shmem

from workloads import (
    Blob,
    blob_seen,
    makes_blob,
    reads_blob,
    reads_blob_then_dies_on,
    writes_blob,
)

pytestmark = pytest.mark.skipif(
    not SHARES_BUFFERS, reason="descriptors cannot travel over sockets here (Windows)"
)


def test_a_large_buffer_in_the_closure_is_mapped_in_each_worker_not_copied() -> None:
    data = bytearray(os.urandom(MiB) * 16)  # 16 MiB
    with mh.Pool(backend="process", workers=2) as pool:
        seen = list(pool.imap(reads_blob(Blob(data)), range(6)))
    assert {(kind, holder, crc) for kind, holder, crc, _ in seen} == {
        ("memoryview", "mmap", zlib.crc32(data))
    }
    assert len({pid for *_, pid in seen}) == 2  # both workers, one mapping each


def test_a_small_buffer_travels_in_the_pickle() -> None:
    data = bytearray(b"x" * 1000)
    (kind, holder, crc, _), *_ = mh.map(reads_blob(Blob(data)), range(1), backend="process")
    assert kind != "memoryview" or holder != "mmap"
    assert crc == zlib.crc32(data)


def test_large_items_are_mapped_in_their_worker() -> None:
    blobs = [Blob(bytearray([n]) * (2 * MiB)) for n in range(4)]
    small = Blob(bytearray(b"y" * 100))
    with mh.Pool(backend="process", workers=2) as pool:
        seen = list(pool.map(blob_seen, [*blobs, small], chunksize=2))
    for (kind, holder, crc, _), blob in zip(seen, blobs, strict=False):
        assert (kind, holder, crc) == ("memoryview", "mmap", zlib.crc32(blob.data))
    assert seen[-1][1] != "mmap"  # a small one travels in the pickle
    assert seen[-1][2] == zlib.crc32(small.data)


def test_large_results_come_back_on_shared_pages_and_are_freed_with_them() -> None:
    gc.collect()  # an earlier test's results, not this one's
    names, fds = shm_names(), open_fds()
    before = shm_mapped()
    with mh.Pool(backend="process", workers=2) as pool:
        results = list(pool.map(makes_blob, range(6)))
    assert [bytes(r.data[:1]) * len(r.data) == bytes(r.data) for r in results] == [True] * 6
    assert [r.data[0] for r in results] == list(range(6))
    holders = {type(getattr(r.data, "obj", r.data)).__name__ for r in results}
    assert holders == {"mmap"}  # not copied out of a pickle
    results[0].data[1] = 99  # the caller's result is its own to write
    assert results[0].data[1] == 99
    during = shm_mapped()
    if before is not None and during is not None:  # six files of 2 MiB, mapped here
        assert during - before >= 12 * MiB, (before, during)
    del results
    gc.collect()
    after = shm_mapped()
    if before is not None and after is not None:
        assert after <= before, (before, during, after)  # unmapped with the last result
    assert shm_names() <= names
    assert open_fds() <= fds


def test_a_worker_writing_to_shared_data_writes_its_own_copy() -> None:
    data = bytearray(2 * MiB)
    with mh.Pool(backend="process", workers=1) as pool:
        assert list(pool.imap(writes_blob(Blob(data)), [7, 9])) == [7, 9]
    assert data[0] == 0  # the caller's is untouched (copy on write)


def test_nothing_is_left_after_the_job_or_a_worker_crash() -> None:
    data = bytearray(8 * MiB)
    names, fds = shm_names(), open_fds()
    fn = reads_blob_then_dies_on(Blob(data), bad=3)
    with mh.Pool(backend="process", workers=2) as pool:
        results = list(pool.imap(fn, range(8), errors="return"))
    assert isinstance(results[3], mh.Failure)
    assert results[3].kind == "crash"
    crc = zlib.crc32(data)  # the worker started in the dead one's place got the data too
    assert [r for i, r in enumerate(results) if i != 3] == [crc] * 7
    del fn, pool, results
    gc.collect()
    assert shm_names() <= names
    assert open_fds() <= fds  # the shared file's descriptor is closed with the job's payload


def test_nothing_is_left_when_the_caller_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        import manyhands as mh
        from workloads import Blob, reads_blob
        data = bytearray(32 * {MiB})
        fn = reads_blob(Blob(data))
        with mh.Pool(backend="process", workers=2) as pool:
            list(pool.imap(fn, range(2)))
            print("mapped", flush=True)
            time.sleep(60)
        """
    )
    gc.collect()
    names, before = shm_names(), shmem()
    caller = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert caller.stdout is not None
        assert caller.stdout.readline().strip() == "mapped"
        children = [int(pid) for pid in _children(caller.pid)]
        assert len(children) == 2
        for child in children:  # each worker maps the 32 MiB (``shmem()`` is machine-wide)
            mapped = shm_mapped(child)
            assert mapped is None or mapped >= 32 * MiB, (child, mapped)
        caller.send_signal(signal.SIGKILL)
        caller.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)  # the workers notice their caller is gone and exit
        assert not any(_alive(pid) for pid in children)
        # ... and were freed with the last process that had them. The figure is the
        # machine's: other processes may hold shared memory for a moment meanwhile.
        deadline = time.monotonic() + 10
        while before is not None and time.monotonic() < deadline:
            after = shmem()
            if after is not None and after - before < 4 * MiB:
                break
            time.sleep(0.05)
        else:
            assert before is None, (before, shmem())
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()
    assert shm_names() <= names  # nothing named was ever made


def _children(pid: int) -> list[str]:
    import psutil

    return [str(child.pid) for child in psutil.Process(pid).children()]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_numpy_arrays_in_the_closure_are_views_of_the_shared_pages() -> None:
    np = pytest.importorskip("numpy")  # a benchmark dependency
    array = np.arange(4 * MiB, dtype=np.float64)  # 32 MiB

    def where(x: int) -> tuple[bool, str, float]:
        base = array
        while getattr(base, "base", None) is not None:
            base = base.base
        return bool(array.flags.owndata), type(getattr(base, "obj", base)).__name__, float(array[x])

    assert mh.map(where, [5], backend="process") == [(False, "mmap", 5.0)]


def test_the_modules_a_pickle_imports_are_found_without_unpickling_it() -> None:
    import collections
    import decimal

    import cloudpickle

    from manyhands.backends._shared import modules_of

    value = [decimal.Decimal("1.5"), collections.OrderedDict(a=Blob(bytearray(8)))]
    data = cloudpickle.dumps(value, protocol=5)
    found = modules_of(data)
    assert {"decimal", "collections", "workloads"} <= set(found)
    assert "__main__" not in found
    assert modules_of(cloudpickle.dumps(["decimal", 3], protocol=5)) == []  # a string is data
