"""``manyhands.shared(value)``: a value written once into shared memory, mapped and unpickled
once by each worker process, for every job that uses it, and freed with its handle."""

from __future__ import annotations

import gc
import threading

import pytest

import manyhands as mh
from manyhands._system import SHARES_BUFFERS
from memory import MiB, open_fds, shm_names, shm_open

from workloads import reads_handle, reads_handle_too

pytestmark = pytest.mark.skipif(
    not SHARES_BUFFERS, reason="descriptors cannot travel over sockets here (Windows)"
)


def test_each_worker_unpickles_a_handle_once_for_every_job_that_uses_it() -> None:
    table = {n: str(n) for n in range(50_000)}  # no buffers: detection alone cannot share it
    handle = mh.shared(table)
    with mh.Pool(backend="process", workers=2) as pool:
        first = set(pool.map(reads_handle(handle), range(20)))
        second = set(pool.map(reads_handle_too(handle), range(20)))
    assert {size for *_, size in first | second} == {50_000}
    # (pid, identity of that worker's copy): the second job found the first job's copies.
    seen = {(pid, ident) for pid, ident, _ in first}
    assert {(pid, ident) for pid, ident, _ in second} <= seen
    assert len({pid for pid, _ in seen}) == len(seen)  # one copy per worker
    assert handle.nbytes is not None
    assert handle.nbytes > 50_000


def test_a_handle_is_the_value_itself_in_threads_and_the_caller() -> None:
    table = {"a": 1}
    handle = mh.shared(table)
    assert handle.value is table
    results = mh.map(lambda _: handle.value is table, range(4), backend="thread")
    assert results == [True] * 4
    assert handle.nbytes is None  # nothing was written: no process needed it


def test_arrays_in_a_handle_are_views_of_the_shared_pages_in_a_worker() -> None:
    np = pytest.importorskip("numpy")  # a benchmark dependency
    handle = mh.shared({"small": np.arange(10), "big": np.ones(MiB)})

    def where(_: int) -> list[tuple[bool, str]]:
        seen = []
        for name in ("small", "big"):
            base = handle.value[name]
            owns = bool(base.flags.owndata)
            while getattr(base, "base", None) is not None:
                base = base.base
            seen.append((owns, type(getattr(base, "obj", base)).__name__))
        return seen

    # Every buffer of a handle's value is shared, however small: the whole value is.
    assert mh.map(where, [0], backend="process") == [[(False, "mmap"), (False, "mmap")]]


def test_the_shared_copy_lives_with_the_handle_and_is_freed_with_it() -> None:
    gc.collect()  # what earlier tests left to the collector is freed before, not during
    names, fds = shm_names(), open_fds()
    before = shm_open()
    handle = mh.shared(bytearray(24 * MiB))  # in band: the handle's whole pickle is shared
    fn = reads_handle(handle)
    assert mh.map(fn, range(2), backend="process")[0][2] == 24 * MiB
    del fn
    gc.collect()
    kept = shm_open()  # the job is over, the handle still holds its copy for the next
    handle.close()
    gc.collect()
    after = shm_open()
    if before is not None and kept is not None and after is not None:
        assert kept - before >= 24 * MiB, (before, kept, after)
        assert after <= before, (before, kept, after)
    assert shm_names() <= names
    assert open_fds() <= fds
    # Closed, it still works: the next job that needs it writes a new copy.
    assert mh.map(reads_handle(handle), range(1), backend="process")[0][2] == 24 * MiB


def test_a_handle_passed_as_an_item_or_returned_travels_as_a_copy() -> None:
    handle = mh.shared([1, 2, 3])
    (back,) = mh.map(lambda h: mh.shared([*h.value, 4]), [handle], backend="process")
    assert isinstance(back, mh.Shared)
    assert back.value == [1, 2, 3, 4]


def test_bad_uses_say_what_to_do() -> None:
    handle = mh.shared(1)
    with pytest.raises(TypeError, match=r"already shared .* pass it as it is"):
        mh.shared(handle)
    locked = mh.shared(threading.Lock())
    with pytest.raises(mh.SerializationError, match="cannot be pickled"):
        mh.map(reads_handle(locked), range(1), backend="process")


def test_the_planner_counts_a_handle_once_as_shared_bytes() -> None:
    from manyhands._core._auto import pickled_size

    handle = mh.shared(bytearray(8 * MiB))
    shared: list[int] = []
    size = pickled_size(reads_handle(handle), shared)
    assert size is not None
    assert shared[0] >= 8 * MiB
    assert size - shared[0] < MiB  # the function itself is small
