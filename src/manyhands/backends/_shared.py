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

``shared(value)`` is the explicit form, for what detection cannot see (a large dict, a model,
a DataFrame of Python objects) and for data that several jobs use: the value is pickled into
one file of its own (pickle and buffers), the first time a job sends it to worker processes,
and kept until the handle is closed or dropped. A function's pickle refers to it by token
(``reducer_override``); each worker maps and unpickles it once, and keeps it while a function
that uses it stays in its cache.
"""

from __future__ import annotations

import io
import os
import pickle

from .._plain import PlainPickler
from .._sharing import Shared
from .._system import SHARES_BUFFERS, travels_shared

TYPE_CHECKING = False  # a worker imports this module: typing stays off its start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

    Spans = tuple[tuple[int, int], ...]
    #: What a function's message says of each handle it uses: (token, pickle size, spans).
    Refs = tuple[tuple[str, int, Spans], ...]

__all__ = ["Payload", "discard", "dumps", "loads", "modules_of", "pickled"]
#: Each buffer starts at a multiple of this in the file (what numpy's SIMD loops like).
_ALIGN = 64
#: Handles one function may use: each is a descriptor in its message (SCM_RIGHTS allows 253).
MAX_HANDLES = 200


class _SharedFile:
    """A handle's value in a file of its own: the pickle at offset 0, then its buffers."""

    __slots__ = ("__weakref__", "file", "size", "spans")

    def __init__(self, file: IO[bytes], size: int, spans: Spans) -> None:
        self.file = file
        self.size = size
        self.spans = spans
        import weakref

        weakref.finalize(self, file.close)

    @property
    def nbytes(self) -> int:
        return self.size + sum(size for _, size in self.spans)


class Payload:
    """A pickled object: the pickle, where its shared buffers lie in ``file``, and the
    shared files of the handles it uses (kept open as long as the payload)."""

    __slots__ = ("__weakref__", "data", "file", "handles", "refs", "spans")

    def __init__(
        self,
        data: bytes,
        spans: Spans,
        file: IO[bytes] | None,
        handles: tuple[tuple[str, _SharedFile], ...] = (),
    ):
        self.data = data
        #: (offset, size) of each out-of-band buffer in ``file``, in pickling order.
        self.spans = spans
        self.file = file
        self.handles = handles
        self.refs: Refs = tuple((token, part.size, part.spans) for token, part in handles)
        if file is not None:  # closed when the payload is dropped, without a ResourceWarning
            import weakref

            weakref.finalize(self, file.close)

    @property
    def fds(self) -> tuple[int, ...]:
        """Its own file's descriptor (when it has buffers), then each handle's."""
        own = () if self.file is None else (self.file.fileno(),)
        return own + tuple(part.file.fileno() for _, part in self.handles)

    @property
    def nbytes(self) -> int:
        """The pickle's size and its shared buffers' (not its handles')."""
        return len(self.data) + sum(size for _, size in self.spans)

    def wire(self) -> tuple[bytes, Spans, Refs]:
        """What the message carries (the descriptors travel beside it)."""
        return self.data, self.spans, self.refs


def dumps(
    obj: object,
    *,
    share: bool = True,
    handles: bool = False,
    before_copy: Callable[[bytes], object] | None = None,
) -> Payload:
    """``obj`` pickled (``pickled``: cloudpickle only where it must), its large buffers in a
    shared file; raises what pickling raises.

    ``share=False``, or where descriptors cannot travel: all in the pickle. ``handles``: a
    ``Shared`` met is referred to by its token, its value in a shared file of its own (a
    function's pickle; in items and results a handle travels by value).
    ``before_copy(pickle)`` is called when there is something large to write (buffers, or a
    handle's first copy), before it is written: what can start meanwhile (worker processes,
    and their imports: ``modules_of``) starts then.
    """
    buffers: list[pickle.PickleBuffer] = []
    share = share and SHARES_BUFFERS
    met: dict[str, Shared[Any]] = {}

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        if not share:
            return True
        with memoryview(buffer) as view:
            large = travels_shared(view)
        if large:
            buffers.append(buffer)
        return not large  # False: out of band

    if handles and share:
        data = _pickle_function(obj, out_of_band, met, restart=buffers.clear)
    else:
        data = pickled(obj, out_of_band, restart=buffers.clear)
    if len(met) > MAX_HANDLES:
        raise ValueError(
            f"a function uses {len(met)} manyhands.shared() handles; at most {MAX_HANDLES} "
            "can travel with one function: share one container of them instead"
        )
    uncopied = any(not handle.copied for handle in met.values())
    if before_copy is not None and (buffers or uncopied):
        before_copy(data)
    parts = tuple((token, handle.copy(_write_whole)) for token, handle in met.items())
    if not buffers:
        return Payload(data, (), None, parts)
    file = _unnamed_file()
    try:
        spans = _write_buffers(file, buffers, 0)
    except BaseException:
        file.close()
        raise
    return Payload(data, spans, file, parts)


def pickled(
    obj: object,
    buffer_callback: Callable[[pickle.PickleBuffer], bool] | None = None,
    *,
    restart: Callable[[], object] | None = None,
) -> bytes:
    """``obj`` pickled with the fast C pickler where it pickles as cloudpickle would
    (``_plain``); by cloudpickle where something must travel by value (in the caller, what
    ``__main__`` defines; in a worker, what came by value from there).

    Everything pickled by reference is importable on the other side: caller and workers
    share ``sys.path``. ``restart()`` is called before cloudpickle's try: what the failed one
    gave ``buffer_callback`` is void.
    """
    out = io.BytesIO()
    try:
        PlainPickler(out, protocol=5, buffer_callback=buffer_callback).dump(obj)
        return out.getvalue()
    except Exception:
        if restart is not None:
            restart()
    import cloudpickle

    data: bytes = cloudpickle.dumps(obj, protocol=5, buffer_callback=buffer_callback)
    return data


def _pickle_function(
    obj: object,
    out_of_band: Callable[[pickle.PickleBuffer], bool],
    met: dict[str, Shared[Any]],
    *,
    restart: Callable[[], object],
) -> bytes:
    """``obj`` (a function, with all it reaches) pickled with its ``Shared`` handles by
    token: ``_handle(token)`` in a worker gives the copy ``loads`` attached before. The C
    pickler first, as ``pickled``; cloudpickle where something must travel by value.

    ``reducer_override``, which the C pickler does not call for exact ints, strings, lists,
    dicts and tuples: a ``persistent_id`` (called for every object) made a closure over a
    dict of 300,000 tuples pickle in 534 ms instead of 156 ms."""
    out = io.BytesIO()
    try:
        _by_token(PlainPickler, met)(out, protocol=5, buffer_callback=out_of_band).dump(obj)
        return out.getvalue()
    except Exception:
        restart()
        met.clear()
    import cloudpickle

    out = io.BytesIO()
    _by_token(cloudpickle.Pickler, met)(out, protocol=5, buffer_callback=out_of_band).dump(obj)
    return out.getvalue()


def _by_token(base: type[pickle.Pickler], met: dict[str, Shared[Any]]) -> type[pickle.Pickler]:
    """A pickler like ``base`` that pickles each ``Shared`` by its token, into ``met``."""

    class Pickler(base):  # type: ignore[misc,valid-type]
        def reducer_override(self, value: object) -> object:
            if type(value) is Shared:
                met[value.token] = value
                return _handle, (value.token,)
            return super().reducer_override(value)

    return Pickler


def _handle(token: str) -> Shared[Any]:
    """In a worker: the handle ``loads`` attached for ``token``, as the function refers to it."""
    handle: Shared[Any] | None = None if _attached is None else _attached.get(token)
    if handle is None:
        raise pickle.UnpicklingError(f"manyhands.shared() value {token[:8]} did not come")
    return handle


def _write_buffers(file: IO[bytes], buffers: list[pickle.PickleBuffer], offset: int) -> Spans:
    spans: list[tuple[int, int]] = []
    for buffer in buffers:
        offset = -(-offset // _ALIGN) * _ALIGN
        with buffer.raw() as view:
            file.seek(offset)
            file.write(view)
            spans.append((offset, view.nbytes))
            offset += view.nbytes
    file.flush()
    return tuple(spans)


def _write_whole(value: object) -> _SharedFile:
    """``value`` pickled into a shared file of its own: the pickle, then its buffers (of any
    size: the whole value is shared)."""
    import cloudpickle

    buffers: list[pickle.PickleBuffer] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        with memoryview(buffer) as view:
            if not view.contiguous:
                return True  # in the pickle
        buffers.append(buffer)
        return False

    data = cloudpickle.dumps(value, protocol=5, buffer_callback=out_of_band)
    file = _unnamed_file()
    try:
        file.write(data)
        spans = _write_buffers(file, buffers, len(data))
    except BaseException:
        file.close()
        raise
    return _SharedFile(file, len(data), spans)


def loads(
    data: bytes | bytearray | memoryview, spans: Spans, fds: list[int], refs: Refs = ()
) -> Any:
    """The object ``dumps`` pickled, its buffers mapped from the descriptor that came with
    it, and its handles' values from theirs (all closed here, and any other in ``fds``);
    copy-on-write, so that a process writing to an array writes its own."""
    own, theirs = (fds[:1], fds[1:]) if spans else ([], fds)
    handles: dict[str, Shared[Any]] = {}
    try:
        for (token, size, handle_spans), fd in zip(refs, theirs, strict=False):
            handles[token] = _attach(token, size, handle_spans, fd)  # closes ``fd``
    except BaseException:
        discard(own + theirs[len(handles) + 1 :])  # those not reached
        raise
    discard(theirs[len(refs) :])  # more than the message said: not ours to keep
    buffers = _mapped(own[0], spans) if spans else None
    discard(own[1:])
    value = pickle.loads(data, buffers=buffers)
    del handles  # the function holds those it uses
    return value


#: The handles' values this worker process holds, by token: kept while a cached function
#: (or anything else) uses them.
_attached: Any = None


def _attach(token: str, size: int, spans: Spans, fd: int) -> Shared[Any]:
    global _attached
    import weakref

    if _attached is None:
        _attached = weakref.WeakValueDictionary()
    handle: Shared[Any] | None = _attached.get(token)
    if handle is not None:
        os.close(fd)  # its value is here already
        return handle
    end = max([size, *(offset + length for offset, length in spans)])
    view = _mapped(fd, ((0, end),))[0]
    value = pickle.loads(view[:size], buffers=[view[o : o + n] for o, n in spans])
    handle = Shared(value, token=token, nbytes=end)
    _attached[token] = handle
    return handle


def _mapped(fd: int, spans: Spans) -> list[memoryview]:
    """Views of ``spans`` of the file ``fd`` (closed here), mapped copy-on-write."""
    import mmap

    try:
        end = max(offset + size for offset, size in spans)
        mapped = mmap.mmap(fd, end, access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)
    whole = memoryview(mapped)
    return [whole[offset : offset + size] for offset, size in spans]


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
