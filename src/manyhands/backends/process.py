"""The process backend: chunks run in worker processes, one interpreter each.

    engine thread                      reader thread                     worker process
    -------------                      -------------                     --------------
    submit(chunk)
      pickle fn (once per job)
      pickle items ──> pending deque
      _dispatch: to an idle worker,    wait() on every worker socket
      or spawn one (up to workers) ─────────── run + items ─────────> receiver thread -> inbox
                                                                      main: run_chunk(fn, items)
                                       <──────── done + results ────── send outcome
                                       _dispatch the next chunk
                                       unpickle results
                                       chunk.complete(outcome) ──> engine inbox
                                       EOF on a socket: the worker
                                       died; its chunks fail as
                                       WorkerCrashed

Actors:

* The *engine thread* (the caller of map/submit) pickles the function and the items, so an
  unpicklable one fails at once in the caller with a ``SerializationError`` naming it.
* The *reader thread* owns receiving: one selector over all worker sockets and a wake-up
  socket. It hands each worker its next chunk as soon as one finishes.
* Each *worker* (``_worker.py``) is a fresh interpreter started with ``subprocess``: no fork,
  so no lock held by another thread of the caller is inherited, and the behaviour is the same
  on Linux, macOS and Windows. It does not re-import the caller's ``__main__``; functions
  and classes from there travel by value with cloudpickle.

A worker holds at most one chunk, or two when chunks are short (then the second hides the round
trip); idle workers are preferred, then new workers, up to ``workers``. A backend made with
``threads`` > 1 runs that many items at once in each worker, on threads (for waiting work whose
CPU keeps one GIL busy), every item of every chunk it holds; when such a worker dies holding
several chunks, which killed it is unknown: each runs again *alone* in a worker (nothing
beside it), where a crash is its own. All dispatch state is
guarded by one lock; sends happen under it, which is safe because every worker drains its socket
into a queue at once.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import os
import pickle
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from .._core._machine import machine
from .._core._protocol import Capabilities
from .._core._task import Chunk, ChunkOutcome, ItemError, Job
from .._errors import (
    PoolClosedError,
    WorkerCrashed,
)
from .._system import SHARES_BUFFERS
from . import _limits, _output, _shared, _worker, _worker_logs, shutdown_elsewhere
from ._pickling import (
    decode_outcome,
    pickle_function,
    pickle_items,
    pickle_shared_function,
)
from ._wire import receive, send

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is 4-5 ms of a first process job's imports
    from typing import Any

__all__ = ["ProcessBackend"]

#: A chunk expected to run shorter than this is worth queueing behind another at a worker.
_PREFETCH_BELOW = 0.05
#: Seconds a worker gets to exit after being told to stop, before it is killed.
_EXIT_GRACE = 5.0
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Sent:
    """A chunk sent to a worker: what sending it again needs, should the worker die before it
    runs, and the lines its items write (None: ``output="inherit"``)."""

    __slots__ = ("chunk", "fn_payload", "lines", "nbytes")

    def __init__(self, chunk: Chunk, fn_payload: _shared.Payload, nbytes: int) -> None:
        self.chunk = chunk
        self.fn_payload = fn_payload
        #: The pickled size of its items (not the bytes: megabytes, needed again only if the
        #: worker dies, and then pickled anew from the chunk).
        self.nbytes = nbytes
        self.lines = _output.lines_for(chunk.job.output)


class _Worker:
    __slots__ = (
        "alone",
        "functions",
        "levels",
        "name",
        "output",
        "outstanding",
        "pipes",
        "proc",
        "sock",
        "spawned",
        "stopped",
        "tasks",
    )

    def __init__(
        self, proc: subprocess.Popen[bytes], sock: socket.socket, name: str, spawned: float
    ) -> None:
        self.proc = proc
        self.sock = sock
        self.name = name
        #: ``time.perf_counter()`` when it was spawned: its start-up is measured for the planner.
        self.spawned = spawned
        #: ticket -> what was sent, in the order sent: the first is running, any other waits
        #: behind it in the worker.
        self.outstanding: dict[int, _Sent] = {}
        #: Job keys whose function this worker holds: mirrors the worker's own cache.
        self.functions: OrderedDict[int, None] = OrderedDict()
        #: Chunks sent to it in all (``max_tasks_per_child`` retires it after so many).
        self.tasks = 0
        #: The caller's logging levels it was last sent (``_worker_logs``).
        self.levels: _worker_logs.Levels | None = None
        #: The ``output=`` it was last sent.
        self.output = "forward"
        #: Its file descriptors 1 and 2, pipes this process reads: fd -> (stream, decoder).
        self.pipes: dict[int, tuple[str, Any]] = {}
        #: It runs a chunk that must run alone (see ``ProcessBackend._alone``).
        self.alone = False
        #: The chunk ``stop()`` killed it for: it is to blame, the others it held are not.
        self.stopped: Chunk | None = None


class ProcessBackend:
    name = "process"
    capabilities = Capabilities(synchronous=False, pickles=True, chunk_target=0.05)

    def __init__(
        self,
        *,
        workers: int,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        eager: bool = False,
        max_tasks_per_child: int | None = None,
        threads: int = 1,
    ) -> None:
        """``max_tasks_per_child``: a worker that has been sent that many chunks (a
        ``submit()`` is one) gets no more; it exits once they are done, and a new one starts
        when work waits, as ``ProcessPoolExecutor(max_tasks_per_child=)`` does.

        ``threads``: chunks each worker runs at once, on threads of its own; ``workers`` (the
        protocol's count of chunks at once) is then ``workers x threads``."""
        if threads < 1:
            raise ValueError(f"threads={threads!r}: a worker runs at least one thread")
        self._max_workers = workers
        self._threads = threads
        if threads > 1:
            # A chunk's items run at once there: a chunk may carry that many times the work.
            self.capabilities = self.capabilities._replace(
                chunk_target=threads * self.capabilities.chunk_target
            )
        self._max_tasks = max_tasks_per_child
        self._init_payload: bytes | None = None
        if initializer is not None:
            self._init_payload = pickle_function(
                (initializer, initargs), initializer, what="initializer"
            )
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        #: (ticket, chunk, pickled function, pickled items) not yet sent to a worker.
        self._pending: deque[tuple[int, Chunk, _shared.Payload, _shared.Payload]] = deque()
        self._workers: dict[socket.socket, _Worker] = {}
        self._spawned = itertools.count(1)
        self._tickets = itertools.count()
        #: Each recent job's pickled function (its large buffers in shared memory): a worker
        #: that starts later, or replaces one that died, is sent it too.
        self._payloads: OrderedDict[int, _shared.Payload] = OrderedDict()
        #: Tickets of chunks to run alone in a worker: they were in a worker running threads
        #: when it died, and one of them may be why.
        self._alone: set[int] = set()
        self._broken: ItemError | None = None
        self._closing = False
        self._killing = False
        self._wake_recv, self._wake_send = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_recv, selectors.EVENT_READ)
        self._reader = threading.Thread(
            target=self._read_loop, name="manyhands-process-reader", daemon=True
        )
        self._reader.start()
        if eager:
            with self._lock:
                while len(self._workers) < self._max_workers:
                    self._spawn_locked()

    @property
    def workers(self) -> int:
        return self._max_workers * self._threads

    # -- engine side -------------------------------------------------------------------

    def submit(self, chunk: Chunk) -> None:
        job = chunk.job
        _worker_logs.levels_of(job)  # the caller's logging levels at the start of the job
        fn_payload = self._function_payload(job)
        body = pickle_items(chunk)
        with self._lock:
            if self._closing:
                raise PoolClosedError("cannot submit work: this process pool has been shut down")
            broken = self._broken
            if broken is None:
                self._pending.append((next(self._tickets), chunk, fn_payload, body))
                self._dispatch_locked()
                return
        chunk.complete(ChunkOutcome([], [broken], 0.0, 0.0, "process"))

    def _function_payload(self, job: Job) -> _shared.Payload:
        with self._lock:
            payload = self._payloads.get(job.key)
            if payload is not None:
                self._payloads.move_to_end(job.key)
                return payload
        payload = pickle_shared_function(job.fn, before_copy=self._prepare_workers)
        with self._lock:
            self._payloads[job.key] = payload
            if len(self._payloads) > _worker.FUNCTION_CACHE_SIZE * 2:
                self._payloads.popitem(last=False)
        return payload

    def _prepare_workers(self, data: bytes) -> None:
        """Called before a function's large buffers (or a ``shared()`` handle's first copy)
        are written to shared memory (a few hundred ms for 400 MB): every worker not started
        yet starts, and all are told which modules the function needs, so that they boot and
        import (numpy: 0.1 s) meanwhile, instead of after it. A job whose function reaches
        that much data is worth them all."""
        message = pickle.dumps(("prepare", _shared.modules_of(data)))
        with self._lock:
            if self._closing or self._broken is not None:
                return
            while len(self._workers) < self._max_workers:
                self._spawn_locked()
            for worker in self._workers.values():
                with contextlib.suppress(OSError):  # gone: the reader reports it
                    send(worker.sock, message)

    def _dispatch_locked(self) -> None:
        while self._pending:
            ticket, chunk, fn_payload, body = self._pending[0]
            alone = ticket in self._alone
            worker = self._choose_worker_locked(chunk, alone=alone)
            if worker is None:
                return
            self._pending.popleft()
            self._alone.discard(ticket)
            if not chunk.claim():
                continue
            worker.alone = alone
            self._send_locked(worker, ticket, chunk, fn_payload, body)

    def _choose_worker_locked(self, chunk: Chunk, *, alone: bool = False) -> _Worker | None:
        least: _Worker | None = None
        least_load = 0
        limit = self._max_tasks
        for worker in self._workers.values():
            if limit is not None and worker.tasks >= limit:
                continue  # retiring: it finishes what it holds, then exits
            if worker.alone and worker.outstanding:
                continue  # a chunk that must run alone runs there
            load = _load(worker, self._threads)
            if least is None or load < least_load:
                least, least_load = worker, load
        if least is not None and not least.outstanding:
            return least
        if len(self._workers) < self._max_workers:
            return self._spawn_locked()
        if alone or least is None:
            return None  # it waits for a worker with nothing else to run
        if self._threads > 1 and least_load < self._threads:
            return least  # some of its threads are free
        # A chunk queued behind running ones would start late, unseen: not when items have
        # deadlines.
        short = chunk.expected is not None and chunk.expected < _PREFETCH_BELOW
        short = short and chunk.job.timeout is None
        if short and len(least.outstanding) < self._threads + 1:
            return least
        return None

    def _send_locked(
        self,
        worker: _Worker,
        ticket: int,
        chunk: Chunk,
        fn_payload: _shared.Payload,
        body: _shared.Payload,
    ) -> None:
        key = chunk.job.key
        send_fn: tuple[bytes, _shared.Spans, _shared.Refs] | None = None
        fds: tuple[int, ...] = ()
        if key in worker.functions:
            worker.functions.move_to_end(key)
        else:
            send_fn = fn_payload.wire()
            fds = fn_payload.fds  # its shared files (buffers, handles), for the worker to map
            worker.functions[key] = None
            if len(worker.functions) > _worker.FUNCTION_CACHE_SIZE:
                worker.functions.popitem(last=False)
        worker.outstanding[ticket] = _Sent(chunk, fn_payload, body.nbytes)
        worker.tasks += 1
        job = chunk.job
        levels = _worker_logs.levels_of(job)
        send_levels = None if levels == worker.levels else levels
        worker.levels = levels
        send_output = None if job.output == worker.output else job.output
        worker.output = job.output
        header = (
            "run",
            ticket,
            key,
            send_fn,
            job.mode,
            job.stop_on_error,
            job.timed,
            chunk.start,
            send_levels,
            send_output,
            body.spans,
        )
        # The function's file (when it goes), then the items' (when they have one).
        fds += body.fds
        # A failed send means the worker died; the reader sees its EOF and reports the crash.
        with contextlib.suppress(OSError):
            send(worker.sock, pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL), fds)
            send(worker.sock, body.data)

    def _spawn_locked(self) -> _Worker:
        spawned = time.perf_counter()
        name = f"process-{next(self._spawned)}"
        ours, theirs = socket.socketpair()
        header: dict[str, Any] = {"sys_path": list(sys.path), "name": name}
        command = [sys.executable, "-c", _worker.BOOTSTRAP, _PACKAGE_PARENT]
        # BLAS and OpenMP threads: workers x threads <= CPUs, unless the caller set them.
        environment = _limits.worker_environment(self._max_workers)
        if sys.platform == "win32":
            # Its own process group: a console Ctrl-C reaches only the caller (as below).
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,
                env=environment,
            )
            header["share"] = theirs.share(proc.pid)
        else:
            # A session of its own: a Ctrl-C typed in the terminal reaches only the caller,
            # which then stops the workers itself (promptly, and in a known order).
            # Its descriptors 1 and 2 are pipes read here: what C code writes there reaches
            # the caller's streams too, and stays readable after a crash.
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                env=environment,
            )
            header["fd"] = theirs.fileno()
        theirs.close()
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.write(pickle.dumps(header))
        with contextlib.suppress(OSError):
            proc.stdin.close()
        worker = _Worker(proc, ours, name, spawned)
        with contextlib.suppress(OSError):
            worker.levels = _worker_logs.levels()
            send(ours, pickle.dumps(("init", self._init_payload, worker.levels, self._threads)))
        self._workers[ours] = worker
        self._selector.register(ours, selectors.EVENT_READ)
        for stream, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            if pipe is None:
                continue
            fd = pipe.fileno()
            os.set_blocking(fd, False)
            worker.pipes[fd] = (stream, codecs.getincrementaldecoder("utf-8")("replace"))
            self._selector.register(fd, selectors.EVENT_READ, worker)
        self._wake()  # a select()-based selector sees new sockets only on its next call
        return worker

    # -- reader thread -----------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_send.send(b"\0")

    def _read_loop(self) -> None:
        while True:
            with self._lock:
                if self._closing and not self._workers:
                    return
            for key, _ in self._selector.select():
                if key.fileobj is self._wake_recv:
                    self._wake_recv.recv(4096)
                elif key.data is not None:  # a worker's descriptor 1 or 2
                    assert isinstance(key.fileobj, int)
                    self._read_pipe(key.data, key.fileobj, self._running(key.data))
                else:
                    assert isinstance(key.fileobj, socket.socket)
                    self._receive(key.fileobj)

    def _receive(self, sock: socket.socket) -> None:
        with self._lock:
            worker = self._workers.get(sock)
        if worker is None:
            return
        fds: list[int] = []  # a chunk's results may come with their shared file
        try:
            message = pickle.loads(receive(sock, fds if SHARES_BUFFERS else None))
            if message[0] != "done":
                _shared.discard(fds)
            if message[0] == "init_failed":
                self._initializer_failed(worker, message[1])
                return
            if message[0] == "ready":
                machine().observe_process_start(time.perf_counter() - worker.spawned)
                return
            if message[0] == "out":  # whole lines a worker printed, and the item that did
                _, stream, text, item, ticket = message
                self._lines(self._running(worker, ticket), stream, text, item, whole=True)
                return
            if message[0] == "log":  # before its chunk's outcome: the same socket, in order
                # A filter or handler of the caller's that raises must not stop this reader.
                with contextlib.suppress(Exception):
                    _worker_logs.replay(message[1])
                return
            _, ticket, spans = message
            meta = receive(sock)
            body = receive(sock)
        except (EOFError, OSError):
            _shared.discard(fds)
            self._worker_gone(worker)
            return
        # What the chunk wrote to its descriptors, up to now.
        self._drain_pipes(worker, self._running(worker))
        with self._lock:
            sent = worker.outstanding.pop(ticket)
            limit = self._max_tasks
            if limit is not None and worker.tasks >= limit and not worker.outstanding:
                # Retired: told to stop, it exits; its end of the socket closing then brings
                # it to _worker_gone, holding nothing, and a new worker starts for what waits.
                with contextlib.suppress(OSError):
                    send(worker.sock, pickle.dumps(("stop",)))
            self._dispatch_locked()
            if not self._pending:
                self._idle.notify_all()
        chunk = sent.chunk
        outcome = decode_outcome(chunk, body, meta, worker.name, sent.nbytes, (spans, fds))
        _finish(sent, outcome)
        chunk.complete(outcome)

    def _running(self, worker: _Worker, ticket: int | None = None) -> _Sent | None:
        """The chunk ``ticket`` of ``worker``; without one (bytes written to a descriptor),
        the first it holds (running, on one thread: the only one that is)."""
        with self._lock:
            if ticket is not None and ticket in worker.outstanding:
                return worker.outstanding[ticket]
            return next(iter(worker.outstanding.values()), None)

    def _lines(
        self, sent: _Sent | None, stream: str, text: str, item: int | None, *, whole: bool
    ) -> None:
        """What a worker wrote: to its running chunk's lines, or (between chunks: an
        initializer's, the interpreter's own) straight to the caller's stream."""
        lines = None if sent is None else sent.lines
        if sent is None or lines is None:
            with contextlib.suppress(Exception):  # a closed stream of the caller's
                _output.write_output(stream, text)
            return
        if item is None:  # from a descriptor: the item that wrote last, or the chunk's first
            item = lines.last_item if lines.last_item is not None else sent.chunk.start
        if whole:
            lines.lines(stream, text, item)
        else:
            lines.write(stream, text, item)

    def _read_pipe(self, worker: _Worker, fd: int, sent: _Sent | None) -> bool:
        """Read what is there; False once nothing more is (for now, or for good)."""
        entry = worker.pipes.get(fd)
        if entry is None:  # closed already, earlier in the same batch of events
            return False
        stream, decoder = entry
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:  # its end: the worker and everything it started are gone
            self._close_pipe(worker, fd, sent)
            return False
        inherit = worker.output == "inherit" if sent is None else sent.lines is None
        if inherit:
            _write_raw(stream, data)  # to this process's own descriptor, as if inherited
        else:
            self._lines(sent, stream, decoder.decode(data), None, whole=False)
        return True

    def _drain_pipes(self, worker: _Worker, sent: _Sent | None) -> None:
        for fd in list(worker.pipes):
            for _ in range(64):  # at most 4 MiB: a grandchild may keep writing
                if not self._read_pipe(worker, fd, sent):
                    break

    def _close_pipe(self, worker: _Worker, fd: int, sent: _Sent | None) -> None:
        stream, decoder = worker.pipes.pop(fd)
        rest = decoder.decode(b"", final=True)
        if rest:
            self._lines(sent, stream, rest, None, whole=False)
        if sent is not None and sent.lines is not None:
            sent.lines.flush(stream)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)
        for pipe in (worker.proc.stdout, worker.proc.stderr):
            if pipe is not None and not pipe.closed and pipe.fileno() == fd:
                pipe.close()

    def _initializer_failed(self, worker: _Worker, wire: _worker.WireError) -> None:
        error = _worker.broken_by_initializer(wire, "process", worker.name)
        with self._lock:
            self._broken = error
            failed = [sent.chunk for sent in worker.outstanding.values()]
            failed += [chunk for _, chunk, _, _ in self._pending]
            worker.outstanding.clear()
            self._pending.clear()
            self._idle.notify_all()
        for chunk in failed:
            chunk.complete(ChunkOutcome([], [error], 0.0, 0.0, worker.name))

    def _worker_gone(self, worker: _Worker) -> None:
        with self._lock:
            self._workers.pop(worker.sock, None)
            held = list(worker.outstanding.items())
            worker.outstanding.clear()
            killed = self._killing
            crashed: _Sent | None = None
            if held and not killed:
                crashed = _blamed(worker, held, self._threads)
                # The others go back to the front of the queue, for another worker: on one
                # thread they never started; on threads, each runs alone if none is blamed.
                for ticket, sent in reversed(held):
                    if sent is crashed:
                        continue
                    entry = (ticket, sent.chunk, sent.fn_payload, pickle_items(sent.chunk))
                    self._pending.appendleft(entry)
                    if crashed is None:
                        self._alone.add(ticket)
        self._selector.unregister(worker.sock)
        worker.sock.close()
        returncode = _reap(worker.proc, grace=_EXIT_GRACE)
        # What it wrote before it died is in the pipes, for its item; then they are closed
        # (a grandchild may hold them open: not waited for).
        self._drain_pipes(worker, crashed)
        for fd in list(worker.pipes):
            self._close_pipe(worker, fd, crashed)
        if killed:
            for _, sent in held:
                sent.chunk.cancel()
        elif crashed is not None:
            outcome = _crash_outcome(worker, returncode, crashed.chunk)
            _finish(crashed, outcome)
            crashed.chunk.complete(outcome)
        with self._lock:
            if not self._closing and self._broken is None:
                self._dispatch_locked()
            self._idle.notify_all()

    def stop(self, chunk: Chunk) -> str | None:
        """Kill the worker running ``chunk``; a replacement starts if work is waiting.
        Returns what the chunk's running item wrote so far (its last lines)."""
        with self._lock:
            for index, entry in enumerate(self._pending):
                if entry[1] is chunk:
                    del self._pending[index]
                    return None
            for worker in self._workers.values():
                held = list(worker.outstanding.values())
                # On one thread only the first chunk it holds runs; on threads, all do (a
                # worker that runs threads holds no more when items have deadlines).
                runs = held if self._threads > 1 else held[:1]
                running = next((sent for sent in runs if sent.chunk is chunk), None)
                if running is not None:
                    break
            else:
                return None  # finished meanwhile
            # Its other chunks are not to blame: they run again elsewhere (``_blamed``).
            worker.stopped = chunk
        # The reader sees the socket close and reaps it; the chunk's crash report that
        # follows is ignored by the engine, which has recorded the timeout.
        with contextlib.suppress(OSError):
            worker.proc.kill()
        lines = running.lines
        return None if lines is None else lines.output_of(lines.last_item)

    # -- shutdown ----------------------------------------------------------------------

    def shutdown(self, *, cancel: bool) -> None:
        if threading.current_thread() is self._reader:
            shutdown_elsewhere(self.shutdown, cancel=cancel)  # it receives every outcome
            return
        with self._lock:
            if self._closing:
                return
            if cancel:
                dropped = [chunk for _, chunk, _, _ in self._pending]
                self._pending.clear()
            else:
                dropped = []
                while self._pending and self._workers:
                    self._idle.wait()
            self._closing = True
            self._killing = cancel
            workers = list(self._workers.values())
        for chunk in dropped:
            chunk.cancel()
        for worker in workers:
            if cancel:
                with contextlib.suppress(OSError):
                    worker.proc.kill()
            else:
                with contextlib.suppress(OSError):
                    send(worker.sock, pickle.dumps(("stop",)))
        for worker in workers:
            # A stopped worker first finishes the chunks it holds: no time limit then.
            _reap(worker.proc, grace=_EXIT_GRACE if cancel else None)
        self._wake()
        self._reader.join()
        self._selector.close()
        self._wake_recv.close()
        self._wake_send.close()


def _load(worker: _Worker, threads: int) -> int:
    """What a worker holds: chunks, or on threads (which run each item on its own) items."""
    if threads == 1:
        return len(worker.outstanding)
    return sum(len(sent.chunk.items) for sent in worker.outstanding.values())


def _blamed(worker: _Worker, held: list[tuple[int, _Sent]], threads: int) -> _Sent | None:
    """Of the chunks a worker held when it died, the one that killed it, where that is known:
    the one ``stop()`` killed it for; on one thread, the first (the rest never started); on
    threads, the only one it held. None: any of those running may be why."""
    if worker.stopped is not None:
        for _, sent in held:
            if sent.chunk is worker.stopped:
                return sent
    if threads == 1 or len(held) == 1:
        return held[0][1]
    return None


def _finish(sent: _Sent, outcome: ChunkOutcome) -> None:
    if sent.lines is not None:
        sent.lines.finish(outcome, sent.chunk.start, len(sent.chunk.items))


def _write_raw(stream: str, data: bytes) -> None:
    """``output="inherit"``: bytes to this process's own descriptor, as if inherited."""
    original = getattr(sys, f"__{stream}__", None)
    with contextlib.suppress(Exception):
        fd = original.fileno() if original is not None else (1 if stream == "stdout" else 2)
        while data:
            data = data[os.write(fd, data) :]


def _reap(proc: subprocess.Popen[bytes], *, grace: float | None) -> int:
    """Wait for a worker to exit; kill it when it takes longer than ``grace`` seconds."""
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _crash_outcome(worker: _Worker, returncode: int, chunk: Chunk) -> ChunkOutcome:
    first, last = chunk.start, chunk.start + len(chunk.items) - 1
    where = f"item {first}" if first == last else f"items {first}-{last}"
    signum = -returncode if returncode < 0 else None
    if signum is not None:
        how = f"was killed by {_signal_name(signum)}"
        hint = (
            "; SIGKILL usually means the operating system ran out of memory and killed it: "
            "lower workers= or the memory each item needs"
            if signum == getattr(signal, "SIGKILL", None)
            else ""
        )
    else:
        how = f"exited with code {returncode}"
        hint = "; the function (or C code it calls) ended the process, e.g. with os._exit"
    crashed = WorkerCrashed(
        f"worker process {worker.proc.pid} ({worker.name}) {how} while running {where}{hint}",
        exitcode=None if signum is not None else returncode,
        signal=signum,
    )
    error = ItemError(0, "crash", crashed, "WorkerCrashed", str(crashed))
    return ChunkOutcome([], [error], 0.0, 0.0, worker.name)


def _signal_name(signum: int) -> str:
    try:
        return f"{signal.Signals(signum).name} (signal {signum})"
    except ValueError:
        return f"signal {signum}"
