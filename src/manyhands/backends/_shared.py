"""Large buffers, shared between the caller and its worker processes instead of copied: the
arrays a job's function reaches (its closure, its defaults, the objects it is bound to), the
arrays in a chunk's items, and the arrays a worker's results hold.

    sender                                            receiver
    ------                                            --------
    pickle(obj, protocol=5, buffer_callback=...)      descriptor arrives with the message
      buffers of 1 MiB or more: out of band ──┐       mmap(fd, ACCESS_COPY); close(fd)
      the rest: in the pickle (small)         │       pickle.loads(data, buffers=views)
    written once into an unnamed file in      │         (numpy arrays on the mapped pages:
    shared memory (/dev/shm: O_TMPFILE) ──────┘          no copy; a write copies that page
    its descriptor travels with the message              for this process alone)
    over the worker's Unix socket (SCM_RIGHTS)

The function goes caller -> each worker (written once per job, mapped by every worker), items
caller -> one worker, results worker -> caller (the caller's arrays then live on the mapped
pages, freed with the last array that uses them). Protocol 5 (PEP 574) hands buffers that
support it (numpy arrays, Arrow and pandas data built on them) to ``buffer_callback`` instead
of copying them into the pickle. The file has no name, so nothing can leak: the kernel frees it
when the last descriptor and the last mapping are gone (the payload dropped, the workers
stopped, the caller killed). Where descriptors cannot travel (Windows), everything stays in
the pickle, as before.
"""

from __future__ import annotations

import os
import pickle

from .._system import LARGE_BUFFER, SHARES_BUFFERS

TYPE_CHECKING = False  # a worker imports this module: typing stays off its start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

    Spans = tuple[tuple[int, int], ...]

__all__ = ["Payload", "discard", "dumps", "loads", "modules_of"]
#: Each buffer starts at a multiple of this in the file (what numpy's SIMD loops like).
_ALIGN = 64


class Payload:
    """A pickled object: the pickle, and where its shared buffers lie in ``file``."""

    __slots__ = ("__weakref__", "data", "file", "spans")

    def __init__(self, data: bytes, spans: Spans, file: IO[bytes] | None):
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

    @property
    def nbytes(self) -> int:
        """The pickle's size and its shared buffers'."""
        return len(self.data) + sum(size for _, size in self.spans)

    def wire(self) -> tuple[bytes, Spans]:
        """What the message carries (the descriptor travels beside it)."""
        return self.data, self.spans


def dumps(
    obj: object,
    *,
    share: bool = True,
    plain_first: bool = False,
    before_copy: Callable[[bytes], object] | None = None,
) -> Payload:
    """``obj`` pickled by cloudpickle, its large buffers in a shared file; raises what
    pickling raises.

    ``share=False``, or where descriptors cannot travel: all in the pickle. ``plain_first``:
    try the standard library's C pickler first (fast; by reference), and cloudpickle only for
    what it cannot name. ``before_copy(pickle)`` is called when there are large buffers to
    write, before they are written: what can start meanwhile (worker processes, and their
    imports: ``modules_of``) starts then.
    """
    buffers: list[pickle.PickleBuffer] = []
    share = share and SHARES_BUFFERS

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        if not share:
            return True
        with memoryview(buffer) as view:
            large = view.nbytes >= LARGE_BUFFER and view.contiguous
        if large:
            buffers.append(buffer)
        return not large  # False: out of band

    data: bytes | None = None
    if plain_first:
        try:
            data = pickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
        except Exception:
            buffers.clear()  # of the attempt that failed
    if data is None:
        import cloudpickle

        data = cloudpickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
    if not buffers:
        return Payload(data, (), None)
    if before_copy is not None:
        before_copy(data)
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


def loads(data: bytes | bytearray, spans: Spans, fds: list[int]) -> Any:
    """The object ``dumps`` pickled, its buffers mapped from the descriptor that came with
    it (closed here, and any other in ``fds``); copy-on-write, so that a process writing to
    an array writes its own."""
    if not spans:
        discard(fds)
        return pickle.loads(data)
    import mmap

    fd, *others = fds
    discard(others)
    try:
        end = max(offset + size for offset, size in spans)
        mapped = mmap.mmap(fd, end, access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)
    whole = memoryview(mapped)
    return pickle.loads(data, buffers=[whole[offset : offset + size] for offset, size in spans])


def modules_of(data: bytes) -> list[str]:
    """The modules (imported here) that unpickling ``data`` will import, in order: a worker
    can import them while it waits for the buffers (``import numpy`` takes 0.1 s)."""
    import pickletools
    import sys

    memo: dict[int, object] = {}
    pushed: list[object] = []  # what each opcode pushed, when a string
    found: dict[str, None] = {}
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        if name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            pushed.append(memo.get(arg))  # type: ignore[arg-type]
        elif name == "STACK_GLOBAL":
            if len(pushed) >= 2 and isinstance(pushed[-2], str):
                found[pushed[-2]] = None
            pushed.append(None)
        elif name == "GLOBAL" and isinstance(arg, str):
            found[arg.split(" ", 1)[0]] = None
            pushed.append(None)
        elif name not in ("FRAME", "PROTO", "STOP"):
            pushed.append(arg if isinstance(arg, str) and "UNICODE" in name else None)
    return [module for module in found if module in sys.modules and module != "__main__"]


def discard(fds: list[int]) -> None:
    """Close descriptors that came with a message and will not be mapped."""
    for fd in fds:
        os.close(fd)


def _unnamed_file() -> IO[bytes]:
    """A file in shared memory (tmpfs) where there is one, with no name (O_TMPFILE on
    Linux; elsewhere removed as soon as it is made)."""
    import tempfile

    folder = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.TemporaryFile(dir=folder)
