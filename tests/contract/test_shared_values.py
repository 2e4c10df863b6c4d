"""``manyhands.shared(value)`` on every backend: shared memory with processes where
descriptors travel, the value itself in threads, the caller and event loops, a copy on Dask
and on Windows. What is shared and freed is tested in ``tests/backends``."""

from __future__ import annotations

import manyhands as mh

from workloads import reads_handle


def test_a_handle_works_on_every_backend(backend: str) -> None:
    handle = mh.shared(list(range(1000)))
    results = mh.map(reads_handle(handle), range(3), backend=backend)
    assert [size for *_, size in results] == [1000, 1000, 1000]
