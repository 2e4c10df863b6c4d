"""Large buffers a job's function reaches (the arrays in its closure, its defaults, the
objects it is bound to), shared with the worker processes instead of copied to each.

    caller                                            each worker process
    ------                                            -------------------
    cloudpickle.dumps(fn, protocol=5,                 fd arrives with the function's message
        buffer_callback=...)                          mmap(fd, ACCESS_COPY); close(fd)
      buffers of 1 MiB or more: out of band ──┐       pickle.loads(data, buffers=views)
      the rest: in the pickle (small)         │         (numpy arrays on the mapped pages:
    written once into an unnamed file in      │          no copy; a write copies that page
    shared memory (/dev/shm: O_TMPFILE) ──────┘          for this worker alone)
    its descriptor travels with the function
    over each worker's Unix socket (SCM_RIGHTS)

Protocol 5 (PEP 574) hands buffers that support it (numpy arrays, Arrow and pandas data built
on them) to ``buffer_callback`` instead of copying them into the pickle. The file has no name,
so nothing can leak: the kernel frees it when the last descriptor and the last mapping are
gone (the job's payload dropped here, the workers stopped, the caller killed). Where
descriptors cannot travel (Windows), everything stays in the pickle, as before.
"""

from __future__ import annotations

import os
import pickle

from .._system import LARGE_BUFFER, SHARES_BUFFERS

TYPE_CHECKING = False  # a worker imports this module: typing stays off its start-up
if TYPE_CHECKING:
    from typing import IO, Any

__all__ = ["Payload", "dumps", "loads"]
#: Each buffer starts at a multiple of this in the file (what numpy's SIMD loops like).
_ALIGN = 64


class Payload:
    """A pickled function: the pickle, and where its shared buffers lie in ``file``."""

    __slots__ = ("__weakref__", "data", "file", "spans")

    def __init__(self, data: bytes, spans: tuple[tuple[int, int], ...], file: IO[bytes] | None):
        self.data = data
        #: (offset, size) of each out-of-band buffer in ``file``, in pickling order.
        self.spans = spans
        self.file = file
        if file is not None:  # closed when the payload is dropped, without a ResourceWarning
            import weakref

            weakref.finalize(self, file.close)

    @property
    def fds(self) -> tuple[int, ...]:
        return () if self.file is None else (self.file.fileno(),)

    def wire(self) -> tuple[bytes, tuple[tuple[int, int], ...]]:
        """What the worker's message carries (the descriptor travels beside it)."""
        return self.data, self.spans


def dumps(obj: object) -> Payload:
    """``obj`` pickled with cloudpickle, its large buffers in a shared file; raises what
    pickling raises."""
    import cloudpickle

    buffers: list[pickle.PickleBuffer] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        with memoryview(buffer) as view:
            large = view.nbytes >= LARGE_BUFFER and view.contiguous
        if large:
            buffers.append(buffer)
        return not large  # False: out of band

    if not SHARES_BUFFERS:
        return Payload(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), (), None)
    data = cloudpickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
    if not buffers:
        return Payload(data, (), None)
    file = _unnamed_file()
    spans: list[tuple[int, int]] = []
    offset = 0
    try:
        for buffer in buffers:
            offset = -(-offset // _ALIGN) * _ALIGN
            with buffer.raw() as view:
                file.seek(offset)
                file.write(view)
                spans.append((offset, view.nbytes))
                offset += view.nbytes
        file.flush()
    except BaseException:
        file.close()
        raise
    return Payload(data, tuple(spans), file)


def loads(data: bytes | bytearray, spans: tuple[tuple[int, int], ...], fds: list[int]) -> Any:
    """The object ``dumps`` pickled, its buffers mapped from the descriptor that came with
    it (closed here); copy-on-write, so that a worker writing to an array writes its own."""
    if not spans:
        for fd in fds:
            os.close(fd)
        return pickle.loads(data)
    import mmap

    fd, *others = fds
    for other in others:
        os.close(other)
    try:
        end = max(offset + size for offset, size in spans)
        mapped = mmap.mmap(fd, end, access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)
    whole = memoryview(mapped)
    return pickle.loads(data, buffers=[whole[offset : offset + size] for offset, size in spans])


def _unnamed_file() -> IO[bytes]:
    """A file in shared memory (tmpfs) where there is one, with no name (O_TMPFILE on
    Linux; elsewhere removed as soon as it is made)."""
    import tempfile

    folder = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.TemporaryFile(dir=folder)
