"""What items write to ``sys.stdout`` and ``sys.stderr``: brought to the caller whole lines at
a time, and kept with the item that wrote it.

A job's ``output=`` says what becomes of each whole line:

* ``"forward"`` (the default): written to the caller's stream of the same name;
* ``"tag"``: the same, each line prefixed with the item's index and a tab (GNU parallel's
  ``--tag``);
* ``"capture"``: kept per item (``ChunkOutcome.outputs``: the journal stores it), not written;
* ``"inherit"``: nothing is intercepted; a worker process writes to the file descriptors it
  inherited, as a plain subprocess does.

Where the lines come from:

* a worker process (``_worker``): its ``sys.stdout``/``sys.stderr`` are ``LineWriter``s that
  send whole lines, tagged with the running item, over the worker's socket; its file
  descriptors 1 and 2 are pipes the parent reads (output of C code), attributed to the item
  that last wrote a line, or the chunk's first (as are lines from threads of the user's own);
* a thread of the thread backend (or of a Dask worker), or a chunk's task on the asyncio
  backend's loop: ``sys.stdout`` and ``sys.stderr`` are ``_ThreadStream``s while chunks run;
  a write from a thread or task that runs a chunk goes to its ``ItemLines``, any other's
  straight through;
* the caller's own thread (serial): with ``"forward"`` its output is left as a loop's (a
  debugger's prompt must show at once), so its failures keep none; ``"tag"`` and
  ``"capture"`` apply as above.

Each item's last lines (``TAIL_LINES`` / ``TAIL_CHARS``) are kept while its chunk runs, for
its ``Failure.output`` (with ``"capture"``, all it wrote).

Which chunk a thread or asyncio task runs is one context variable, set by ``Running`` around
``run_chunk`` in every backend and in worker processes: the thread streams read it, and so
does the log-record factory (``_worker_logs``) for ``record.manyhands_item``.
"""

from __future__ import annotations

import contextvars
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .._core._task import ChunkOutcome

__all__ = [
    "CAPTURE_CHARS",
    "KEPT",
    "MODES",
    "TAIL_CHARS",
    "TAIL_LINES",
    "ItemLines",
    "LineWriter",
    "Running",
    "current",
    "lines_for",
    "write_output",
]

MODES = ("forward", "tag", "capture", "inherit")
#: The modes that change what the caller's own thread writes (serial): ``"forward"``
#: leaves it as a loop's, for breakpoints and debuggers that print prompts there.
KEPT = ("tag", "capture")
#: A Dask worker's lines: kept as written, for the caller's ``ItemLines``.
_RECORD = "record"

#: A failed item's output keeps its last lines: so many, and so many characters at most.
TAIL_LINES = 50
TAIL_CHARS = 8192
#: What ``output="capture"`` keeps of one item: its last characters.
CAPTURE_CHARS = 1 << 20
#: What a Dask task brings back of what its chunk wrote.
RECORD_CHARS = 1 << 22
#: How many items of a chunk have their last lines kept at once (the latest ones).
_TAIL_ITEMS = 64
#: A partial line longer than this is passed on without waiting for its end.
_PARTIAL_CHARS = 1 << 16


def _split(pending: str) -> int:
    """Where the whole lines of ``pending`` end (a partial line too long to wait: all)."""
    cut = pending.rfind("\n") + 1
    return len(pending) if cut == 0 and len(pending) >= _PARTIAL_CHARS else cut


def lines_for(output: str, *, own_thread: bool = False) -> ItemLines | None:
    """The lines of a chunk of a job with this ``output=``, or None when its writes are left
    alone: ``"inherit"``, and ``"forward"`` in the caller's ``own_thread`` (serial)."""
    if output == "inherit" or (own_thread and output not in KEPT):
        return None
    return ItemLines(output)


def write_output(name: str, text: str) -> None:
    """Write to the caller's current ``sys.stdout`` or ``sys.stderr`` (looked up now: a
    redirection made after the job began applies)."""
    stream = getattr(sys, name, None)
    if stream is None:  # pythonw on Windows: no console streams
        return
    if isinstance(stream, _ThreadStream):
        stream = stream.underlying  # not back into a thread's lines
    stream.write(text)
    stream.flush()


class ItemLines:
    """One chunk's output as it runs: each whole line goes where the job's ``mode`` says, and
    each item's last lines are kept. One per chunk, used by one thread at a time: the thread
    (or task) running it, or a process backend's reader.

    ``write`` takes any text and waits for a line's end; ``lines`` takes whole lines. Mode
    ``"record"`` (in a Dask worker) keeps them as written, in ``recorded``.
    """

    __slots__ = (
        "_partial",
        "_recorded_chars",
        "_tails",
        "captured",
        "last_item",
        "mode",
        "recorded",
    )

    def __init__(self, mode: str) -> None:
        self.mode = mode
        #: stream -> (a partial line, the item that wrote it)
        self._partial: dict[str, tuple[str, int]] = {}
        #: item -> [its last lines, their characters]
        self._tails: dict[int, list[Any]] = {}
        #: item -> what it wrote (``mode == "capture"``)
        self.captured: dict[int, str] = {}
        #: The item that wrote last (fd output of a worker process is attributed to it).
        self.last_item: int | None = None
        #: (stream, whole lines, item) as written (mode ``"record"``).
        self.recorded: list[tuple[str, str, int]] = []
        self._recorded_chars = 0

    def write(self, stream: str, text: str, item: int) -> None:
        pending = self._partial.pop(stream, ("", item))[0] + text
        cut = _split(pending)
        if cut < len(pending):
            self._partial[stream] = (pending[cut:], item)
        if cut:
            self.lines(stream, pending[:cut], item)

    def flush(self, stream: str | None = None) -> None:
        """Pass on a partial line (the stream was flushed, or the chunk ended)."""
        for name in [stream] if stream is not None else list(self._partial):
            rest, item = self._partial.pop(name, ("", 0))
            if rest:
                self.lines(name, rest, item)

    def lines(self, stream: str, text: str, item: int) -> None:
        self.last_item = item
        mode = self.mode
        if mode == "capture":
            kept = self.captured.get(item, "") + text
            self.captured[item] = kept[-CAPTURE_CHARS:]
            return
        if mode == _RECORD:  # the caller keeps the tails, once they are back
            before = self._recorded_chars
            self._recorded_chars += len(text)
            if before < RECORD_CHARS:
                self.recorded.append((stream, text, item))
                if self._recorded_chars >= RECORD_CHARS:
                    note = f"[manyhands: more than {RECORD_CHARS} characters; the rest dropped]\n"
                    self.recorded.append((stream, note, item))
            return
        self._keep(item, text)
        if mode == "tag":
            text = "".join(f"{item}\t{line}" for line in text.splitlines(keepends=True))
        try:  # noqa: SIM105  (contextlib stays off a tiny first call's imports)
            write_output(stream, text)
        except Exception:
            pass  # a closed or broken stream of the caller's: the item's tail still has it

    def _keep(self, item: int, text: str) -> None:
        tail = self._tails.get(item)
        if tail is None:
            if len(self._tails) >= _TAIL_ITEMS:
                del self._tails[next(iter(self._tails))]
            tail = self._tails[item] = [[], 0]
        lines, chars = tail
        for line in text.splitlines(keepends=True):
            lines.append(line)
            chars += len(line)
        while len(lines) > TAIL_LINES or (chars > TAIL_CHARS and len(lines) > 1):
            chars -= len(lines.pop(0))
        tail[1] = chars
        if chars > TAIL_CHARS:  # one line longer than the bound: its end
            lines[0] = lines[0][-TAIL_CHARS:]
            tail[1] = len(lines[0])

    def output_of(self, item: int | None) -> str:
        """What ``item`` wrote, as its Failure keeps it (all of it when captured)."""
        if item is None:
            return ""
        if self.mode == "capture":
            return self.captured.get(item, "")
        tail = self._tails.get(item)
        return "".join(tail[0]) if tail is not None else ""

    def finish(self, outcome: ChunkOutcome, start: int, size: int) -> None:
        """The chunk (items ``start`` to ``start + size - 1``) is done: give each failed item
        its output, and the outcome what was captured."""
        self.flush()
        for error in outcome.errors:
            if error.output:
                continue
            item = start + error.offset
            if error.kind == "crash" and size > 1:  # somewhere in the chunk: where it was
                item = self.last_item if self.last_item is not None else start
            error.output = self.output_of(item)
        if self.captured:
            outcome.outputs = {
                item - start: text
                for item, text in self.captured.items()
                if start <= item < start + size
            }


# -- which chunk runs here -----------------------------------------------------------------

_current: contextvars.ContextVar[Running | None] = contextvars.ContextVar(
    "manyhands_running", default=None
)


def current() -> Running | None:
    """What this thread (or asyncio task: each has a context of its own) runs, if anything."""
    return _current.get()


class Running:
    """``with Running(first, results, worker, lines):`` around ``run_chunk``: this thread or
    task runs the chunk whose first index is ``first``; ``results`` is the list ``run_chunk``
    fills, so the running item is ``first + len(results)`` at no cost per item.

    Meanwhile records made here carry the item and ``worker`` (``_worker_logs``), and, with
    ``lines``, what is written to ``sys.stdout``/``sys.stderr`` here goes to them: while any
    chunk with lines runs, both are ``_ThreadStream``s, installed by the first to enter and
    removed by the last to leave (unless something else replaced them meanwhile). ``finish``
    then puts what the lines kept on the outcome.
    """

    __slots__ = ("first", "lines", "results", "ticket", "worker")

    def __init__(
        self,
        first: int,
        results: list[Any],
        worker: str,
        lines: ItemLines | None = None,
        ticket: int | None = None,
    ) -> None:
        self.first = first
        self.results = results
        self.worker = worker
        self.lines = lines
        #: In a worker process, the chunk's ticket: its lines reach that chunk in the caller
        #: (a worker that runs threads runs several chunks at once, perhaps of two jobs).
        self.ticket = ticket

    @property
    def item(self) -> int:
        return self.first + len(self.results)

    def __enter__(self) -> Running:
        if "logging" in sys.modules:  # else no record can be made, nor a handler take one
            from . import _worker_logs

            _worker_logs.attribute_records()
        if self.lines is not None:
            _install()
        _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _current.set(None)
        if self.lines is not None:
            _uninstall()

    def finish(self, outcome: ChunkOutcome, size: int) -> None:
        """The chunk of ``size`` items ended with ``outcome``: its failures get their items'
        last lines, and the outcome what was captured."""
        if self.lines is not None:
            self.lines.finish(outcome, self.first, size)


_lock = threading.Lock()
_entered = 0
_installed: dict[str, _ThreadStream] = {}
#: Every ``_ThreadStream`` ever installed, by (name, the stream it wraps), and reused: never
#: freed, since ``print()`` in another thread may hold ``sys.stdout`` as a borrowed
#: reference while it is replaced, and writing to a freed one crashes the interpreter
#: (CPython issue gh-130163, the GIL build included; it crashed here once in 17 runs of
#: a job on threads beside a thread that printed). One per stream wrapped: bounded.
_kept: dict[tuple[str, int], _ThreadStream] = {}


def _install() -> None:
    global _entered
    with _lock:
        _entered += 1
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name, None)
            if stream is None or isinstance(stream, _ThreadStream):
                continue
            wrapper = _kept.get((name, id(stream)))
            if wrapper is None:  # it holds ``stream``: that id stays its own
                wrapper = _kept[name, id(stream)] = _ThreadStream(name, stream)
            _installed[name] = wrapper
            setattr(sys, name, wrapper)


def _uninstall() -> None:
    global _entered
    with _lock:
        _entered -= 1
        if _entered:
            return
        for name, stream in list(_installed.items()):
            if getattr(sys, name, None) is stream:
                setattr(sys, name, stream.underlying)
            del _installed[name]


class _ThreadStream:
    """``sys.stdout`` or ``sys.stderr`` while chunks run on threads: a write from a thread
    running a chunk goes to its lines, whole; any other thread's goes straight through."""

    def __init__(self, name: str, underlying: Any) -> None:
        self.name = name
        self.underlying = underlying

    def write(self, text: str) -> int:
        running = _current.get()
        if running is None or running.lines is None:
            return int(self.underlying.write(text))
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        running.lines.write(self.name, text, running.item)
        return len(text)

    def flush(self) -> None:
        running = _current.get()
        if running is not None and running.lines is not None:
            running.lines.flush(self.name)
        else:
            self.underlying.flush()

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.underlying, name)


# -- worker processes ----------------------------------------------------------------------


class LineWriter:
    """A worker process's ``sys.stdout`` or ``sys.stderr``: text goes to the caller whole lines
    at a time, tagged with the item that wrote it (``current()``; None from a thread of the
    user's own), where the caller's ``ItemLines`` for the running chunk takes it.

    Lines from two threads of one worker never split each other: each message is whole
    lines, and a partial line waits, one per thread, for its end (or for ``flush``, or the
    chunk's end: ``drain``). Bytes written to ``.buffer`` or to the file descriptor (C code)
    go to the descriptor, a pipe the parent reads (or, with ``output="inherit"``, what it
    inherited).
    """

    def __init__(
        self,
        name: str,
        original: Any,
        send: Callable[[bytes], None],
    ) -> None:
        self.name = name
        self._original = original
        self._send = send
        #: Thread ident -> the partial line it wrote last.
        self._pending: dict[int, str] = {}
        self._lock = threading.Lock()
        self.encoding = getattr(original, "encoding", "utf-8")
        self.errors = getattr(original, "errors", "strict")

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        ident = threading.get_ident()
        with self._lock:
            pending = self._pending.pop(ident, "") + text
            cut = _split(pending)
            if cut < len(pending):
                self._pending[ident] = pending[cut:]
            whole = pending[:cut]
        if whole:
            self._ship(whole)
        return len(text)

    def drain(self, *, every: bool = False) -> None:
        """Send this thread's partial last line too (its chunk ended); ``every``: every
        thread's (the worker is exiting)."""
        with self._lock:
            if every:
                rests = list(self._pending.values())
                self._pending.clear()
            else:
                rests = [self._pending.pop(threading.get_ident(), "")]
        for rest in rests:
            if rest:
                self._ship(rest)

    def _ship(self, text: str) -> None:
        import contextlib
        import pickle

        running = _current.get()
        item, ticket = (None, None) if running is None else (running.item, running.ticket)
        message = ("out", self.name, text, item, ticket)
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with contextlib.suppress(OSError):  # the caller is gone
            self._send(data)

    def flush(self) -> None:
        """Send a partial line: whoever flushes wants it seen now."""
        self.drain()

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def fileno(self) -> int:
        return int(self._original.fileno())

    @property
    def buffer(self) -> Any:
        return self._original.buffer

    def __getattr__(self, name: str) -> Any:
        # Whatever else code asks of a text stream (closed, name, line_buffering...): the
        # inherited stream's.
        return getattr(self._original, name)
