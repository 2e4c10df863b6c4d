"""The Dask backend: chunks run as Dask tasks, on a cluster given by address or client, or on
a local cluster of our own started for the call (``_dask_cluster``).

    engine thread                          Dask's callback thread           Dask worker
    -------------                          ----------------------           -----------
    submit(chunk)
      pickle fn (once per job), items
      ──> pending deque
      _dispatch: claim, client.submit ──────────────────────────────────> _dask_task.run
        (at most 2 chunks per worker                                       run_chunk
        thread in flight; 1 with timeout)                                  pickle results
                                           _done(future) <───────────────  ("done", results, meta)
                                           _dispatch the next chunk
                                           fetch and unpickle results
                                           chunk.complete(outcome)

Dask is used for what it is good at (placing tasks, moving bytes, surviving a lost worker)
and kept away from what costs: the input is never handed to ``Client.map`` (the engine's window
is the only buffer), every task has a unique key (no de-duplication of equal calls), and a task
carries a whole chunk as one bytes object (Dask walks list arguments item by item).

Failures: an item's exception travels back inside the chunk's result, so one failed item never
fails its chunk. A worker that dies makes Dask run its task elsewhere; when Dask gives up
(``KilledWorker``, after ``distributed.scheduler.allowed-failures`` more deaths: 3 by default,
0 on our own cluster) the chunk fails as a ``WorkerCrashed`` crash, and the engine splits it to
find the item to blame. Dask also blames tasks that only waited at the dying worker, so after
the first such report the backend sends one task per worker thread, and tries a single item
once more, alone on the cluster, before it reports it.

Timeouts: the engine stops a chunk that ran too long; its Dask task is cancelled and its
result, should one still come, discarded. Dask cannot interrupt a running Python thread, so on
a cluster manyhands started itself the worker process running it is killed (its nanny starts
another, and nothing new is sent until it is up); on a cluster passed by address or client,
manyhands does not kill other people's workers: the thread runs on until the function
returns, and until then new tasks go to the other workers (a watcher thread asks that worker
every 0.2 s which keys its threads run).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import re
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from .._core._protocol import Capabilities
from .._core._task import Chunk, ChunkOutcome, ItemError, Job, item_error
from .._errors import (
    ArgumentTypeError,
    ArgumentValueError,
    ClusterUnavailable,
    MissingDependency,
    PoolClosedError,
    WorkerCrashed,
    add_note,
    short_repr,
)
from .._system import available_cpus
from . import _dask_task, _worker, _worker_logs, shutdown_elsewhere
from ._pickling import decode_outcome, pickle_function, pickle_items

__all__ = ["INSTALL_COMMAND", "DaskBackend", "import_distributed"]

log = logging.getLogger("manyhands")

INSTALL_COMMAND = "pip install 'manyhands[dask]'"
#: A function pickled larger than this is scattered to the cluster once, not sent per chunk.
_SCATTER_ABOVE = 1 << 20
#: Jobs whose pickled function is kept, as the process backend keeps them.
_FUNCTIONS_KEPT = 32
#: Seconds between two looks at a worker whose thread runs a timed-out item.
_STUCK_POLL = 0.2


def import_distributed() -> Any:
    """``distributed``, or an ImportError that says how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependency(
            "backend='dask' needs Dask's distributed scheduler, which is not installed here; "
            f"install it with: {INSTALL_COMMAND}"
        ) from exc
    return distributed


class _Task:
    """A chunk ready to submit: its job's token, the function (or its Future), the items."""

    __slots__ = ("body", "chunk", "claimed", "fn_arg", "future", "retried", "token")

    def __init__(self, chunk: Chunk, token: str, fn_arg: Any, body: bytes) -> None:
        self.chunk = chunk
        self.token = token
        self.fn_arg = fn_arg
        self.body = body
        self.claimed = False
        self.future: Any = None
        #: Dask gave up on it once already (see ``_done``).
        self.retried = False


class DaskBackend:
    name = "dask"
    # A Dask task costs 2-3 ms of round trips: 75 ms of work per chunk keeps that near 3%.
    capabilities = Capabilities(synchronous=False, pickles=True, chunk_target=0.075)

    def __init__(
        self,
        *,
        workers: int | None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        eager: bool = False,
        address: str | None = None,
        client: Any = None,
    ) -> None:
        del eager  # a cluster is always connected (or started) at once
        distributed = import_distributed()
        self._killed_worker: type[BaseException] = distributed.KilledWorker
        self._cluster: Any = None
        self._own_client = client is None
        if address is None and client is None:
            # Dask's own setting (DASK_SCHEDULER_ADDRESS), as distributed.Client() reads it.
            import dask

            address = dask.config.get("scheduler-address", None)
            if address is not None:
                log.info(
                    "manyhands: using the Dask scheduler at %s (DASK_SCHEDULER_ADDRESS)", address
                )
        if client is not None:
            self._client = _checked_client(distributed, client)
        elif address is not None:
            self._client = _connect(distributed, address)
        else:
            self._client = self._start_cluster(distributed, workers or available_cpus())
        try:
            threads = sum(self._client.nthreads().values())
        except BaseException:
            self._close_own()
            raise
        if threads == 0:
            log.warning(
                "manyhands: the Dask cluster at %s has no workers yet; chunks wait for them",
                self._client.scheduler.address,
            )
        self._max_workers = workers if workers is not None else max(1, threads)
        self._token = uuid.uuid4().hex
        self._init: tuple[str, bytes] | None = None
        if initializer is not None:
            payload = pickle_function((initializer, initargs), initializer, what="initializer")
            self._init = (f"{self._token}-init", payload)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending: deque[_Task] = deque()
        self._sent: dict[str, _Task] = {}
        #: After a worker died: one task per worker thread (no task waits at a worker behind
        #: another), so that Dask blames only the task that was running.
        self._careful = False
        #: A retried single item running alone: nothing else is sent until it is done.
        self._alone: _Task | None = None
        #: Workers being restarted after a timeout: no task is sent while they restart.
        self._restarting = 0
        self._functions: OrderedDict[int, tuple[str, Any]] = OrderedDict()
        #: Threads that restart our workers or watch stuck ones; joined at shutdown.
        self._helpers: list[threading.Thread] = []
        #: Worker address -> key of a timed-out task its thread still runs (others' clusters).
        self._stuck: dict[str, str] = {}
        self._known: list[str] = []
        self._watching = False
        self._quit = threading.Event()
        self._broken: ItemError | None = None
        self._closing = False

    def _start_cluster(self, distributed: Any, workers: int) -> Any:
        from ._dask_cluster import START_TIMEOUT, LoopbackCluster

        self._cluster = cluster = LoopbackCluster(workers)
        try:
            client = distributed.Client(cluster.address, set_as_default=False)
            try:
                client.wait_for_workers(workers, timeout=START_TIMEOUT)
            except BaseException:
                client.close()
                raise
        except TimeoutError as exc:
            tail = cluster.log_tail()
            cluster.stop()
            raise ClusterUnavailable(
                f"the local Dask cluster's {workers} workers did not all start within "
                f"{START_TIMEOUT:g} s. Its log ends:\n{tail}"
            ) from exc
        except BaseException:
            cluster.stop()
            raise
        exposed = cluster.exposed()
        if exposed:
            client.close()
            cluster.stop()
            raise ClusterUnavailable(
                "the local Dask cluster listened beyond the loopback interface, on "
                f"{', '.join(exposed)}, so manyhands stopped it before sending it anything. "
                "A Dask setting (a DASK_* environment variable or a file under "
                "~/.config/dask) probably asks for it; to serve other machines, start the "
                "cluster yourself and pass backend=manyhands.Dask(address='tcp://host:8786')"
            )
        log.info(
            "manyhands: started a local Dask cluster: scheduler %s, dashboard %s, "
            "%d single-threaded workers; it stops when the call (or the Pool) ends",
            cluster.address,
            cluster.dashboard or "not available (it needs the bokeh package)",
            workers,
        )
        return client

    @property
    def workers(self) -> int:
        return self._max_workers

    # -- engine side -------------------------------------------------------------------

    def submit(self, chunk: Chunk) -> None:
        token, fn_arg = self._function(chunk.job)
        body = pickle_items(chunk, share=False).data  # Dask passes no descriptors
        with self._lock:
            if self._closing:
                raise PoolClosedError("cannot submit work: this Dask backend has been shut down")
            broken = self._broken
            if broken is None:
                self._pending.append(_Task(chunk, token, fn_arg, body))
                self._dispatch_locked()
                return
        chunk.complete(ChunkOutcome([], [broken], 0.0, 0.0, "dask"))

    def _function(self, job: Job) -> tuple[str, Any]:
        """The job's token and its pickled function (or the Future of it, when scattered)."""
        with self._lock:
            known = self._functions.get(job.key)
            if known is not None:
                self._functions.move_to_end(job.key)
                return known
        payload = pickle_function(job.fn, job.fn, what="function")
        arg: Any = payload
        if len(payload) > _SCATTER_ABOVE:
            arg = self._client.scatter(payload, hash=False)
        entry = (f"{self._token}-{job.key}", arg)
        with self._lock:
            self._functions[job.key] = entry
            if len(self._functions) > _FUNCTIONS_KEPT:
                self._functions.popitem(last=False)
        return entry

    def _dispatch_locked(self) -> None:
        while self._pending and not self._closing and self._alone is None:
            task = self._pending[0]
            if task.retried and self._sent:
                return  # it runs alone: wait until nothing else runs
            chunk = task.chunk
            job = chunk.job
            # Two tasks per worker thread hide the round trip between them. With a timeout a
            # chunk must start when it is handed over, and after a worker died a task waiting
            # behind the one that kills workers would be blamed with it: one per thread.
            careful = self._careful or job.timeout is not None
            threads = self._max_workers - self._restarting - len(self._stuck)
            if len(self._sent) >= threads * (1 if careful else 2):
                return
            self._pending.popleft()
            if not task.claimed:
                if not chunk.claim():
                    continue
                task.claimed = True
            try:
                future = self._client.submit(
                    _dask_task.run,
                    task.token,
                    task.fn_arg,
                    self._init,
                    job.mode,
                    job.stop_on_error,
                    job.timed,
                    task.body,
                    _said_how(job, chunk.start),
                    key=f"{_task_prefix(job.fn)}-{uuid.uuid4().hex}",
                    **self._placement_locked(),
                )
            except Exception as exc:  # the client is closed, or lost its scheduler
                error = item_error(0, exc)
                chunk.complete(ChunkOutcome([], [error], 0.0, 0.0, "dask"))
                continue
            task.future = future
            if task.retried:
                self._alone = task
            self._sent[future.key] = task
            future.add_done_callback(self._done)

    def _placement_locked(self) -> dict[str, Any]:
        """Keep new tasks off workers whose thread still runs a timed-out item, if any other
        worker is there (loosely: should those leave, any worker will do)."""
        if not self._stuck:
            return {}
        free = [worker for worker in self._known if worker not in self._stuck]
        return {"workers": free, "allow_other_workers": True} if free else {}

    # -- Dask's callback thread ----------------------------------------------------------

    def _done(self, future: Any) -> None:
        with self._lock:
            task = self._sent.pop(future.key, None)
            if task is None:
                return  # stopped (timed out) or cancelled by us: nobody waits for it
            if task is self._alone:
                self._alone = None
            if self._killed(task, future):
                # Dask gave up on a task that ran, or only waited, on dying workers: from
                # now on one task per worker thread, and a single item is tried once more,
                # alone on the cluster, before it is blamed (a chunk of several is split by
                # the engine anyway). Dask blames tasks that only waited at a dying worker,
                # and a task can wait there even now, while its neighbour restarts.
                self._careful = True
                if len(task.chunk.items) == 1 and not task.retried:
                    task.retried = True
                    self._pending.appendleft(task)
                    self._dispatch_locked()
                    return
            self._dispatch_locked()
            self._idle.notify_all()
        chunk = task.chunk
        try:
            outcome = self._outcome(task, future)
        except BaseException as exc:  # never lose a report: a lost report is a hang
            outcome = ChunkOutcome([], [item_error(0, exc)], 0.0, 0.0, "dask")
        chunk.complete(outcome)

    def _killed(self, task: _Task, future: Any) -> bool:
        if future.status != "error":
            return False
        with contextlib.suppress(Exception):
            return isinstance(future.exception(), self._killed_worker)
        return False

    def _outcome(self, task: _Task, future: Any) -> ChunkOutcome:
        chunk = task.chunk
        status = future.status
        if status in ("finished", "lost"):
            # "lost": the worker holding the result died before it was fetched; Dask
            # computes it again for the Future we hold, and result() waits for that.
            try:
                kind, body, meta, worker, said = future.result()
            except Exception as exc:  # the result was lost on its way here
                return self._failure(chunk, exc)
            if kind == "init_failed":
                return self._initializer_failed(meta, worker)
            outcome = decode_outcome(chunk, body, meta, worker, len(task.body))
            _dask_task.replay(said, chunk, outcome)
            return outcome
        if status == "error":
            return self._failure(chunk, future.exception())
        crashed = WorkerCrashed(
            f"the Dask task running {_items_text(chunk)} was {status} outside manyhands "
            "(the scheduler was restarted, or lost its workers)",
            exitcode=None,
            signal=None,
        )
        error = ItemError(0, "crash", crashed, "WorkerCrashed", str(crashed))
        return ChunkOutcome([], [error], 0.0, 0.0, "dask")

    def _failure(self, chunk: Chunk, exc: BaseException) -> ChunkOutcome:
        """A task that failed as a whole: its worker died, or the task could not even start."""
        if isinstance(exc, self._killed_worker):
            crashed = WorkerCrashed(
                f"the Dask worker running {_items_text(chunk)} died, and Dask gave up on the "
                f"task ({type(exc).__name__}: {exc})",
                exitcode=None,
                signal=None,
            )
            error = ItemError(0, "crash", crashed, "WorkerCrashed", str(crashed))
            return ChunkOutcome([], [error], 0.0, 0.0, "dask")
        if isinstance(exc, ImportError) and "manyhands" in str(exc):
            add_note(
                exc,
                "manyhands: the Dask workers cannot import manyhands; install it where they "
                "run (the same version as here)",
            )
        return ChunkOutcome([], [item_error(0, exc)], 0.0, 0.0, "dask")

    def _initializer_failed(self, wire: bytes, worker: str) -> ChunkOutcome:
        error = _worker.broken_by_initializer(pickle.loads(wire), "dask", worker)
        with self._lock:
            self._broken = error
            failed = [task.chunk for task in self._pending]
            self._pending.clear()
            self._idle.notify_all()
        for chunk in failed:
            chunk.complete(ChunkOutcome([], [error], 0.0, 0.0, "dask"))
        return ChunkOutcome([], [error], 0.0, 0.0, "dask")

    # -- timeouts and shutdown -----------------------------------------------------------

    def stop(self, chunk: Chunk) -> None:
        """Cancel the task of ``chunk``; on our own cluster, restart the worker running it."""
        with self._lock:
            for index, task in enumerate(self._pending):
                if task.chunk is chunk:
                    del self._pending[index]
                    return
            key = next((k for k, task in self._sent.items() if task.chunk is chunk), None)
            if key is None:
                return  # finished meanwhile
            task = self._sent.pop(key)
            future = task.future
            if task is self._alone:
                self._alone = None
        where = None
        with contextlib.suppress(Exception):
            where = next((w for w, keys in self._client.processing().items() if key in keys), None)
        known: list[str] = []
        if where is not None and self._cluster is None:
            with contextlib.suppress(Exception):
                known = list(self._client.scheduler_info()["workers"])
        with contextlib.suppress(Exception):
            future.cancel()
        with self._lock:
            # Its thread still runs the item, and a task sent to that worker would wait
            # behind it, its deadline running (measured: every sixth item timed out so).
            if where is not None and self._cluster is not None:
                # Ours: killed and replaced; nothing new goes out until it is back.
                self._restarting += 1
                self._helpers.append(
                    _start_thread(self._restart, where, name="manyhands-dask-restart")
                )
            elif where is not None:
                # Someone else's: not killed; new tasks go to the other workers until its
                # thread is free again.
                self._stuck[where] = key
                self._known = known or self._known
                if not self._watching:
                    self._watching = True
                    self._helpers.append(
                        _start_thread(self._watch_stuck, name="manyhands-dask-stuck")
                    )
            self._dispatch_locked()
            self._idle.notify_all()

    def _watch_stuck(self) -> None:
        """Look every 0.2 s whether the stuck workers' threads are free again."""
        while not self._quit.wait(_STUCK_POLL):
            with self._lock:
                stuck = dict(self._stuck)
            freed = []
            for worker, key in stuck.items():
                try:
                    running = self._client.run(_dask_task.executing_keys, workers=[worker])
                except Exception:  # the worker has left the cluster
                    running = {}
                if key not in running.get(worker, ()):
                    freed.append(worker)
            known = self._known
            with contextlib.suppress(Exception):
                known = list(self._client.scheduler_info()["workers"])
            with self._lock:
                self._known = known
                for worker in freed:
                    del self._stuck[worker]
                self._dispatch_locked()
                if not self._stuck:
                    self._watching = False
                    return

    def _restart(self, worker: str) -> None:
        """Kill the worker process at once; its nanny starts another, which we wait for.

        Not ``Client.restart_workers``: that asks the worker to close first, and a worker
        whose thread is stuck took 4.4 s to go.
        """
        import psutil

        from ._dask_cluster import START_TIMEOUT

        client = self._client
        try:
            pid = client.run(os.getpid, workers=[worker])[worker]
            psutil.Process(pid).kill()
            deadline = time.monotonic() + START_TIMEOUT
            while worker in client.scheduler_info()["workers"] and time.monotonic() < deadline:
                time.sleep(0.01)  # until the scheduler has seen it go
            client.wait_for_workers(self._cluster.workers, timeout=START_TIMEOUT)
        except Exception as exc:  # the cluster is being stopped meanwhile
            log.debug("manyhands: could not restart Dask worker %s: %s", worker, exc)
        finally:
            with self._lock:
                self._restarting -= 1
                self._dispatch_locked()

    def shutdown(self, *, cancel: bool) -> None:
        if threading.current_thread().name.startswith("Dask-Callback-Thread"):
            shutdown_elsewhere(self.shutdown, cancel=cancel)  # it delivers every outcome
            return
        with self._lock:
            if self._closing:
                return
            if cancel:
                dropped = [task.chunk for task in self._pending]
                self._pending.clear()
                stopped = list(self._sent.values())
                self._sent.clear()
            else:
                dropped, stopped = [], []
                while self._pending or self._sent:
                    self._idle.wait()
            self._closing = True
            helpers = list(self._helpers)
        self._quit.set()
        for chunk in dropped:
            chunk.cancel()
        for task in stopped:
            task.chunk.cancel()
        if stopped and self._cluster is None:
            # Our own cluster is about to be stopped, which stops these too.
            with contextlib.suppress(Exception):
                self._client.cancel([task.future for task in stopped])
        for helper in helpers:
            helper.join()
        self._functions.clear()  # releases scattered functions
        self._close_own()

    def _close_own(self) -> None:
        if self._own_client:
            with contextlib.suppress(Exception):
                self._client.close()
        if self._cluster is not None:
            self._cluster.stop()
            log.info("manyhands: stopped the local Dask cluster at %s", self._cluster.address)


def _checked_client(distributed: Any, client: object) -> Any:
    if not isinstance(client, distributed.Client):
        raise ArgumentTypeError(
            f"Dask(client=) must be a distributed.Client, got {short_repr(client)} "
            f"({type(client).__name__}); or pass Dask(address='tcp://host:8786') instead"
        )
    if client.status in ("closing", "closed"):
        raise ArgumentValueError(
            f"Dask(client={client!r}) is {client.status}; pass a connected distributed.Client"
        )
    return client


def _connect(distributed: Any, address: str) -> Any:
    try:
        return distributed.Client(address, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    except ValueError as exc:
        raise ArgumentValueError(
            f"Dask(address={address!r}) is not a Dask scheduler address ({exc}); write it as "
            "'tcp://host:8786'"
        ) from exc
    # The half-made Client's traceback is gone with the except block: collected now, its
    # __del__ stops the event-loop thread it had started.
    gc.collect()
    raise ClusterUnavailable(
        f"Dask(address={address!r}): no Dask scheduler answered there ({problem}). Check "
        "that `dask scheduler` runs at that address and is reachable from here, or pass "
        "backend='dask' to start a local cluster for the call"
    )


def _start_thread(target: Callable[..., None], *args: Any, name: str) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def _said_how(job: Job, first: int) -> tuple[Any, str, int]:
    """What a task needs to bring back what its items say: the caller's logging levels at
    the job's start, the job's ``output=``, and the chunk's first index."""
    return (_worker_logs.levels_of(job), job.output, first)


def _task_prefix(fn: Callable[..., Any]) -> str:
    """The function's name as Dask's dashboard shows task groups: ``square-<hex>``."""
    name = getattr(fn, "__name__", "") or type(fn).__name__
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "manyhands"


def _items_text(chunk: Chunk) -> str:
    first, last = chunk.start, chunk.start + len(chunk.items) - 1
    return f"item {first}" if first == last else f"items {first}-{last}"
