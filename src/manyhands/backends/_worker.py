"""The worker process: receives chunks over a socket, runs them, sends the outcomes back.

Started by ``process.py`` as a fresh interpreter (``python -c BOOTSTRAP``), never forked from
the caller, so it cannot inherit a lock that another thread of the caller held. It does not
import the caller's ``__main__`` either: functions defined there travel by value (cloudpickle).

Two threads:

* the *receiver* reads messages into an in-process queue as soon as they arrive, so the
  parent's sends never wait on a worker busy computing, and exits the process at once when
  the socket closes: a worker never outlives its parent's end of the connection;
* the *main* thread takes messages from that queue, runs chunks with ``run_chunk`` and sends
  the outcomes; or, in a worker started with ``threads`` > 1 (waiting work whose CPU keeps one
  GIL busy: HTTP clients), unpickles each chunk and hands its items to up to that many
  threads (``_Threads``), which run them at once; a chunk's outcome goes when its last ends.

Wire format: every message is a pickle; a ``run`` message is followed by a second message, the
pickled items, and a ``done`` message by the pickled results, so that a failure to unpickle one
can be blamed precisely. ``init`` and ``run`` carry the caller's logging levels, ``run`` the
chunk's first index and the job's ``output=``; a ``log`` message carries one record
(``_worker_logs``), an ``out`` message whole lines written to ``sys.stdout`` or ``sys.stderr``
and the item that wrote them (``_output``). Errors travel as
``WireError`` tuples with the exception pickled on its own (it may not unpickle on the other
side; its type name, message and traceback text always arrive).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import signal
import socket
import sys
import threading

from .._core._task import ChunkOutcome, ItemError, run_chunk
from .._errors import SerializationError
from .._system import SHARES_BUFFERS, SimpleQueue
from . import _shared
from ._output import LineWriter, Running
from ._wire import receive, send
from ._worker_logs import Forwarder

# typing, collections and traceback stay out of the start-up path of every worker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias

    #: (offset, kind, type_name, message, traceback text, pickled exception or None, seconds)
    WireError: TypeAlias = tuple[int, str, str, str, str, bytes | None, float | None]

#: How many functions a worker keeps unpickled; the parent mirrors this cache exactly.
FUNCTION_CACHE_SIZE = 32

#: Exit status of a worker whose initializer raised.
EXIT_INITIALIZER_FAILED = 3

BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from manyhands.backends._worker import main; main()"
)


#: Messages and outcomes: the C pickler first, cloudpickle for what it cannot name.
dumps = _shared.pickled


def wire_error(error: ItemError) -> WireError:
    """An ``ItemError`` in a form that always pickles."""
    exc = error.exception
    text = error.traceback
    payload: bytes | None = None
    if exc is not None:
        if not text:
            import traceback

            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        try:
            payload = dumps(exc)
        except Exception:
            payload = None
    return (error.offset, error.kind, error.type_name, error.message, text, payload, error.duration)


def read_error(wire: WireError) -> ItemError:
    """Rebuild an ``ItemError`` in the parent; an exception that will not unpickle is None."""
    offset, kind, type_name, message, text, payload, duration = wire
    exc: BaseException | None = None
    if payload is not None:
        try:
            loaded = pickle.loads(payload)
        except Exception:
            loaded = None
        exc = loaded if isinstance(loaded, BaseException) else None
    return ItemError(offset, kind, exc, type_name, message, text, remote=True, duration=duration)


def broken_by_initializer(wire: WireError, kind: str, worker: str) -> ItemError:
    """The error every chunk of a pool whose initializer failed in ``worker`` gets (in the
    parent): ``concurrent.futures``' Broken... error, caused by the initializer's own."""
    from .._errors import RemoteError, RemoteTraceback, add_note, broken_pool

    raised = read_error(wire)
    cause = raised.exception
    if cause is None:  # it could not be pickled back: its type, message and traceback
        cause = RemoteError(
            f"{raised.type_name}: {raised.message} (raised by the initializer; the exception "
            "object could not be pickled back)",
            type_name=raised.type_name,
        )
    if raised.traceback:
        cause.__cause__ = RemoteTraceback(raised.traceback)
    add_note(cause, f"manyhands: raised by the initializer in {worker}")
    broken = broken_pool(kind, cause, worker, f"{raised.type_name}: {raised.message}")
    return ItemError(0, "error", broken, type(broken).__qualname__, str(broken))


def error_for(exc: BaseException, offset: int) -> ItemError:
    return ItemError(offset, "error", exc, type(exc).__qualname__, str(exc))


def encode_outcome(outcome: ChunkOutcome, *, share: bool = False) -> tuple[_shared.Payload, bytes]:
    """The ``done`` message body parts: (results, errors and timings). ``share``: the
    results' large buffers go into shared memory (``_shared``), not into the pickle."""
    results = outcome.results
    errors = list(outcome.errors)
    try:
        body = _shared.dumps(results, share=share)
    except Exception:
        # Find the results that cannot travel and fail those items alone.
        results = list(results)
        for offset, result in enumerate(results):
            try:
                dumps(result)
            except Exception as exc:
                results[offset] = None
                problem = SerializationError(
                    f"the result of this item, {_short_type(result)}, cannot be pickled to "
                    f"send it back from the worker process: {exc}. Return plain data (numbers, "
                    "strings, lists, dicts, dataclasses) or use backend='thread'",
                    what="result",
                )
                errors.append(error_for(problem, offset))
        errors.sort(key=lambda error: error.offset)
        body = _shared.dumps(results, share=share)
    meta = dumps(([wire_error(error) for error in errors], outcome.busy, outcome.cpu))
    return body, meta


def _short_type(value: object) -> str:
    cls = type(value)
    return f"a {cls.__module__}.{cls.__qualname__} object"


def main() -> None:
    """Entry point of a worker process (see ``BOOTSTRAP``)."""
    header = pickle.load(sys.stdin.buffer)
    _detach_stdin()
    # Ctrl-C in a terminal reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.path[:] = header["sys_path"]
    sock = _connect(header)
    name: str = header["name"]
    inbox: SimpleQueue[tuple[Any, ...]] = SimpleQueue()
    threading.Thread(
        target=_receive, args=(sock, inbox), name="manyhands-receiver", daemon=True
    ).start()
    _serve(sock, inbox, name)
    _exit(0)


def _connect(header: dict[str, Any]) -> socket.socket:
    if sys.platform == "win32":  # the parent shared its socket with this pid
        return socket.fromshare(header["share"])
    return socket.socket(fileno=header["fd"])


def _detach_stdin() -> None:
    # The header came on stdin; user code that reads stdin in a worker should see EOF,
    # not the parent's terminal.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


def _receive(sock: socket.socket, inbox: SimpleQueue[tuple[Any, ...]]) -> None:
    try:
        while True:
            fds: list[int] = []  # a new function's shared buffers come as a descriptor
            message = pickle.loads(receive(sock, fds if SHARES_BUFFERS else None))
            if message[0] == "run":
                message = (*message, receive(sock), fds)
            inbox.put(message)
    except (EOFError, OSError):
        # The parent closed its end: it is gone, or it killed this worker's work. Either
        # way nobody will read what this process would compute.
        _exit(0)


def _serve(sock: socket.socket, inbox: SimpleQueue[tuple[Any, ...]], name: str) -> None:
    # Log records may be sent from any thread of the user's code: every message goes out
    # under this lock, and a chunk's three ("done", meta, results) together.
    lock = threading.Lock()

    def send_one(data: bytes) -> None:
        with lock:
            send(sock, data)

    logs = Forwarder(send_one, name)
    originals = (sys.stdout, sys.stderr)
    writers = [LineWriter(which, getattr(sys, which), send_one) for which in ("stdout", "stderr")]
    sys.stdout, sys.stderr = writers
    _, init_payload, caller_levels, threads = inbox.get()
    logs.apply(caller_levels)  # before the initializer: its records reach the caller too
    if init_payload is not None:
        failure = run_initializer(init_payload)
        if failure is not None:
            send_one(dumps(("init_failed", failure)))
            _exit(EXIT_INITIALIZER_FAILED)
        logs.catch_up()
    send_one(dumps(("ready",)))  # the parent measures how long a worker takes to start

    def run(ticket: int, function: Callable[[], Any], chunk: tuple[Any, ...]) -> None:
        mode, stop_on_error, timed, first, item_spans, body, item_fds = chunk
        made: list[Any] = []
        # The item that logs or prints, and its chunk, for the caller.
        with Running(first, made, name, ticket=ticket):
            results, meta = run_encoded(
                function,
                mode,
                body,
                stop_on_error=stop_on_error,
                timed=timed,
                worker=name,
                results=made,
                shared=(item_spans, item_fds),
            )
            for writer in writers:  # a partial last line, before the chunk's outcome
                writer.drain()
        for original in originals:  # and what the descriptors' own buffers hold
            with contextlib.suppress(Exception):
                original.flush()
        del made
        send_outcome(sock, lock, ticket, results, meta)
        del results

    def _caught_up(fn: Callable[..., Any]) -> Callable[..., Any]:
        logs.catch_up()  # unpickling it may have imported logging, or a chunk before
        return fn

    # One chunk at a time on this thread; or, for waiting work whose CPU keeps one GIL busy,
    # each item of the chunks it holds on one of up to ``threads`` threads (``_Threads``).
    pool = _Threads(threads, name, writers, originals, lock, sock) if threads > 1 else None
    functions: dict[int, Callable[..., Any]] = {}
    while True:
        message = inbox.get()
        if message[0] == "stop":
            if pool is not None:
                pool.join()  # what it holds finishes first, as on one thread
            return
        if message[0] == "prepare":  # a large function is on its way: its imports first
            _import_all(message[1])
            continue
        (_, ticket, fn_key, fn_payload, mode, stop_on_error, timed, first, levels, output,
         item_spans, body, fds) = message  # fmt: skip
        # The function's shared files first (when it came: its buffers', then its handles'),
        # then the items'.
        fn_files = 0 if fn_payload is None else bool(fn_payload[1]) + len(fn_payload[2])
        fn_fds, item_fds = fds[:fn_files], fds[fn_files:]
        if levels is not None:  # a new job's: the caller's levels at its start
            logs.apply(levels)
        if output is not None:  # a new job's ``output=``: "inherit" writes to the descriptors
            for which, stream in zip(("stdout", "stderr"), writers if output != "inherit"
                                     else originals, strict=True):  # fmt: skip
                setattr(sys, which, stream)
        if pool is None:
            chunk = (mode, stop_on_error, timed, first, item_spans, body, item_fds)
            resolve = functools.partial(_function, functions, fn_key, fn_payload, fn_fds)
            run(ticket, lambda: _caught_up(resolve()), chunk)  # noqa: B023
            continue
        # Unpickled here, in the order sent: the parent mirrors this cache exactly.
        try:
            try:
                fn = _caught_up(_function(functions, fn_key, fn_payload, fn_fds))
            except BaseException:
                _shared.discard(item_fds)  # the items' file, never to be mapped
                raise
            items = unpickle_items(body, item_spans, item_fds)
        except SerializationError as exc:
            pool.send(ticket, ChunkOutcome([], [error_for(exc, 0)], 0.0, 0.0, name))
            continue
        pool.put(_Batch(ticket, fn, items, mode, stop_on_error, timed, first))


class _Batch:
    """A chunk whose items run on a worker's threads, each on its own; its outcome is ready
    when the last ends (with ``stop_on_error``, items not started after a failure are not)."""

    __slots__ = ("busy", "cpu", "errors", "failed", "first", "fn", "items", "left", "mode",
                 "results", "stop_on_error", "ticket", "timed")  # fmt: skip

    def __init__(
        self,
        ticket: int,
        fn: Callable[..., Any],
        items: list[Any],
        mode: Any,
        stop_on_error: bool,
        timed: bool,
        first: int,
    ) -> None:
        self.ticket = ticket
        self.fn = fn
        self.items = items
        self.mode = mode
        self.stop_on_error = stop_on_error
        self.timed = timed
        self.first = first
        self.left = len(items)
        self.results: list[Any] = [None] * len(items)
        self.errors: list[ItemError] = []
        self.busy = self.cpu = 0.0
        self.failed = False

    def settle(self, offset: int, outcome: ChunkOutcome | None, worker: str) -> ChunkOutcome | None:
        """Item ``offset`` ended with ``outcome`` (None: not run); the chunk's outcome once
        every item has ended. Called under the pool's lock."""
        if outcome is not None:
            if outcome.results:
                self.results[offset] = outcome.results[0]
            for error in outcome.errors:
                error.offset = offset
                self.errors.append(error)
                self.failed = True
            self.busy += outcome.busy
            self.cpu += outcome.cpu
        self.left -= 1
        if self.left > 0:
            return None
        errors = sorted(self.errors, key=lambda error: error.offset)
        results = self.results
        if self.stop_on_error and errors:  # as on one thread: up to the first failure
            errors = errors[:1]
            results = results[: errors[0].offset]
        return ChunkOutcome(results, errors, self.busy, self.cpu, worker)


class _Threads:
    """Threads that run the items of the chunks a worker holds, each item on its own, started
    as items come (up to ``size``). The parent sends such a worker about as many items as it
    has threads."""

    def __init__(
        self,
        size: int,
        name: str,
        writers: list[LineWriter],
        originals: tuple[Any, Any],
        lock: threading.Lock,
        sock: socket.socket,
    ) -> None:
        self._size = size
        self._name = name
        self._writers = writers
        self._originals = originals
        self._send_lock = lock
        self._sock = sock
        self._queue: SimpleQueue[tuple[_Batch, int] | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._busy = 0  # items put and not ended

    def put(self, batch: _Batch) -> None:
        if not batch.items:
            self.send(batch.ticket, ChunkOutcome([], [], 0.0, 0.0, self._name))
            return
        with self._lock:
            self._busy += len(batch.items)
            first = len(self._threads)
            wanted = max(0, min(self._size, self._busy) - first)
            started = [
                threading.Thread(
                    target=self._serve, name=f"manyhands-worker-{first + n + 1}", daemon=True
                )
                for n in range(wanted)
            ]
            self._threads += started
        for thread in started:
            thread.start()
        for offset in range(len(batch.items)):
            self._queue.put((batch, offset))

    def _serve(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            batch, offset = work
            outcome = None if batch.failed and batch.stop_on_error else self._run(batch, offset)
            with self._lock:
                self._busy -= 1
                done = batch.settle(offset, outcome, self._name)
            if done is not None:
                self.send(batch.ticket, done)

    def _run(self, batch: _Batch, offset: int) -> ChunkOutcome:
        made: list[Any] = []
        # The item that logs or prints, and its chunk, for the caller.
        with Running(batch.first + offset, made, self._name, ticket=batch.ticket):
            outcome = run_chunk(
                batch.fn,
                batch.mode,
                batch.items[offset : offset + 1],
                stop_on_error=batch.stop_on_error,
                catch=BaseException,
                worker=self._name,
                timed=batch.timed,
                results=made,
            )
            for writer in self._writers:  # its partial last line, before the outcome
                writer.drain()
        return outcome

    def send(self, ticket: int, outcome: ChunkOutcome) -> None:
        for original in self._originals:  # what the descriptors' own buffers hold
            with contextlib.suppress(Exception):
                original.flush()
        results, meta = encode_outcome(outcome, share=True)
        send_outcome(self._sock, self._send_lock, ticket, results, meta)

    def join(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()


def send_outcome(
    sock: socket.socket,
    lock: threading.Lock,
    ticket: int,
    results: _shared.Payload,
    meta: bytes,
) -> None:
    """A chunk's ``done`` message, its meta and its results, together under ``lock``. The
    results' shared file, if any, travels with the header; dropping ``results`` then closes
    it here (the caller holds its own descriptor)."""
    with lock:
        send(sock, dumps(("done", ticket, results.spans)), results.fds)
        send(sock, meta)
        send(sock, results.data)


def _import_all(modules: list[str]) -> None:
    """Import what the caller says a coming function needs; what fails here fails again,
    and is reported, when the function is unpickled."""
    import importlib

    for module in modules:
        with contextlib.suppress(BaseException):
            importlib.import_module(module)


def run_initializer(payload: bytes | bytearray) -> WireError | None:
    """Run a pickled ``(initializer, initargs)``; the error it raised, ready to send, or None."""
    try:
        initializer, initargs = pickle.loads(payload)
        initializer(*initargs)
    except BaseException as exc:
        tb = exc.__traceback__
        exc.__traceback__ = tb.tb_next if tb is not None else None
        return wire_error(error_for(exc, 0))
    return None


def run_encoded(
    function: Callable[[], Callable[..., Any]],
    mode: Any,
    body: bytes | bytearray,
    *,
    stop_on_error: bool,
    timed: bool,
    worker: str,
    results: list[Any] | None = None,
    shared: tuple[_shared.Spans, list[int]] | None = None,
) -> tuple[_shared.Payload, bytes]:
    """Run a chunk that came pickled; its outcome encoded (``encode_outcome``).

    ``function()`` gives the job's function (from a worker's cache, or unpickled); a function
    or items that cannot be unpickled fail the chunk's first item, with a message that says so.
    ``results``: the list to fill (read meanwhile for the running item's index). ``shared``:
    where the items' large buffers lie and the descriptor of their file; given, the results'
    large buffers go back through shared memory too.
    """
    item_spans, item_fds = shared or ((), [])
    try:
        try:
            fn = function()
        except BaseException:
            _shared.discard(item_fds)  # the items' file, never to be mapped
            raise
        items = unpickle_items(body, item_spans, item_fds)
    except SerializationError as exc:
        outcome = ChunkOutcome([], [error_for(exc, 0)], 0.0, 0.0, worker)
    else:
        outcome = run_chunk(
            fn,
            mode,
            items,
            stop_on_error=stop_on_error,
            catch=BaseException,
            worker=worker,
            timed=timed,
            results=results,
        )
    return encode_outcome(outcome, share=shared is not None)


def _function(
    cache: dict[int, Callable[..., Any]],
    key: int,
    payload: tuple[bytes, _shared.Spans, _shared.Refs] | None,
    fds: list[int],
) -> Callable[..., Any]:
    # ``cache`` is kept in least-recently-used order (dicts keep insertion order), exactly as
    # the parent's mirror of it.
    if payload is None:
        cached = cache.pop(key)
        cache[key] = cached
        return cached
    data, spans, refs = payload
    fn = unpickle_function(data, spans, fds, refs)
    cache[key] = fn
    if len(cache) > FUNCTION_CACHE_SIZE:
        del cache[next(iter(cache))]
    return fn


def unpickle_function(
    payload: bytes | bytearray,
    spans: _shared.Spans = (),
    fds: list[int] | None = None,
    refs: _shared.Refs = (),
) -> Callable[..., Any]:
    """The function of a job, as the caller pickled it (its shared buffers and handles
    mapped from ``fds``, ``_shared``); raises ``SerializationError``."""
    try:
        fn: Callable[..., Any] = _shared.loads(payload, spans, fds or [], refs)
    except Exception as exc:
        raise SerializationError(
            f"the function could not be unpickled in the worker process: "
            f"{type(exc).__name__}: {exc}. A function pickled by reference must be importable "
            "in the worker: define it in a module on sys.path, or in __main__",
            what="function",
        ) from exc
    return fn


def unpickle_items(
    body: bytes | bytearray, spans: _shared.Spans = (), fds: list[int] | None = None
) -> list[Any]:
    try:
        items: list[Any] = _shared.loads(body, spans, fds or [])
    except Exception as exc:
        raise SerializationError(
            f"the items could not be unpickled in the worker process: "
            f"{type(exc).__name__}: {exc}. Their classes must be importable in the worker: "
            "define them in a module on sys.path, or in __main__",
            what="item",
        ) from exc
    return items


def _exit(code: int) -> None:
    # os._exit skips interpreter teardown (fast, and no atexit handler of the user's code can
    # hang the exit); flush what the user's function printed first.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if isinstance(stream, LineWriter):
                stream.drain(every=True)
            stream.flush()
    os._exit(code)
