"""backend="auto": measure the first item of a job, choose where the rest runs, say why.

    engine ──submit──> Router (one per job) ──> the chosen backend (thread, process, serial,
                         │                      asyncio), shared by all jobs of an AutoBackend
                         ├ first chunk: the probe, run on a thread and measured
                         ├ later chunks: held until the decision, then forwarded
                         ├ waiting work: forwarded under an adaptive concurrency limit
                         └ every outcome observed: the decision may be revised once

The decision is made when the probe item finishes, or, if it is still running after
``PROBE_WINDOW`` seconds, from its thread's CPU clock so far: a long waiting call is recognised
in milliseconds, not when it returns. No item runs twice: the probe's result is the job's first
result. ``decide`` (``_core/_decision.py``) holds the rules; this module gathers the evidence and
applies the decision.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core._concurrency import ConcurrencyController
from .._core._decision import IO_THREAD_CAP, Decision, Evidence, decide
from .._core._protocol import Backend, Capabilities
from .._core._task import Chunk, ChunkOutcome, Job, failed_outcome
from .._system import available_cpus, gil_enabled
from . import create

if TYPE_CHECKING:
    from .._core._task import Mode

__all__ = ["AutoBackend", "evidence_from_probe", "measured"]

log = logging.getLogger("manyhands")

#: Seconds a still-running probe is watched before deciding from its CPU clock.
PROBE_WINDOW = 0.01
#: Threads that waiting work starts with before the controller adapts their number.
IO_START = 8
#: Seconds of work observed after a decision before it may be revised.
REVISE_AFTER = 0.5
#: Share of one core that a job's threads must keep busy for threads-chosen-for-waiting to be
#: revised as CPU-bound: a GIL-bound job is near 1.0 on an idle machine; 0.6 leaves room for
#: other processes competing for the CPUs, and waiting work stays near 0.
GIL_BUSY = 0.6
#: Workers the engine is told of while the probe runs: its window (3x this) of single items
#: is held until the decision. Kept small: the decision nudges the engine to refill at once
#: with the chosen backend's window, so only these few items travel one by one.
PROBING_WORKERS = 8

_PROBING = Capabilities(synchronous=False, pickles=False, chunk_target=0.005)


class AutoBackend:
    """Backends shared by every job of a call or a Pool, created when a decision needs them."""

    name = "auto"
    capabilities = _PROBING

    def __init__(
        self,
        *,
        workers: int | None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        eager: bool = False,
    ) -> None:
        del eager  # nothing is known to start before the first decision
        self.user_workers = workers
        self.cpus = available_cpus()
        self._initializer = initializer
        self._initargs = initargs
        self._lock = threading.Lock()
        self._delegates: dict[str, Backend] = {}
        self._routers: set[Router] = set()  # the jobs running now

    @property
    def workers(self) -> int:
        return self.user_workers or max(4, self.cpus)

    def bind(self, job: Job, total: int | None) -> Router:
        """The backend one job runs on: a router that decides for that job."""
        router = Router(self, job, total)
        with self._lock:
            self._routers.add(router)
        return router

    def forget(self, router: Router) -> None:
        """A job ended: its router is done (a Pool's hub outlives many jobs)."""
        with self._lock:
            self._routers.discard(router)

    def submit(self, chunk: Chunk) -> None:
        """A lone call (``Pool.submit``): coroutines on asyncio, anything else on threads."""
        kind = "asyncio" if inspect.iscoroutinefunction(chunk.job.fn) else "thread"
        self.delegate(kind, self.user_workers).submit(chunk)

    def stop(self, chunk: Chunk) -> None:
        """Stop ``chunk`` wherever it runs (a backend ignores a chunk it does not hold)."""
        with self._lock:
            delegates = list(self._delegates.values())
        for backend in delegates:
            backend.stop(chunk)

    def delegate(self, kind: str, workers: int | None) -> Backend:
        with self._lock:
            backend = self._delegates.get(kind)
            if backend is None:
                backend = create(
                    kind,
                    workers=workers or self.user_workers or self._default(kind),
                    initializer=self._initializer,
                    initargs=self._initargs,
                    eager=kind == "process",
                )
                self._delegates[kind] = backend
            return backend

    def _default(self, kind: str) -> int:
        from .._options import default_workers

        return IO_THREAD_CAP if kind == "thread" else default_workers(kind)

    def shutdown(self, *, cancel: bool) -> None:
        with self._lock:
            routers, self._routers = list(self._routers), set()
            delegates = list(self._delegates.values())
        for router in routers:
            router.shutdown(cancel=cancel)
        for backend in delegates:
            backend.shutdown(cancel=cancel)


class Router:
    """The backend one job sees under auto: probes, holds, decides, forwards, revises."""

    name = "auto"

    def __init__(self, hub: AutoBackend, job: Job, total: int | None) -> None:
        self._hub = hub
        self._job = job
        self._total = total
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._held: deque[Chunk] = deque()
        self._route: Backend | None = None
        #: This job's decisions: the first, and the revision if one was made.
        self.decisions: list[Decision] = []
        self._probe: Chunk | None = None
        self._probe_started: float | None = None
        self._probe_thread: int | None = None
        self._probe_cpu0 = 0.0
        self._item_bytes: int | None = None
        self._in_flight = 0
        #: Where each chunk went, for stop(); an entry leaves when its outcome arrives.
        self._sent: dict[Chunk, Backend] = {}
        self._controller: ConcurrencyController | None = None
        self._ticker: threading.Thread | None = None
        self._closing = False
        # Since the decision: items done, their wall and CPU seconds, and when it was made.
        self._done = 0
        self._busy = 0.0
        self._cpu = 0.0
        self._latency_items = 0
        self._latency_busy = 0.0
        self._decided_at = 0.0
        self._revised = False
        self._fn_picklable: bool | None = None  # measured once, when first needed
        if inspect.iscoroutinefunction(job.fn):
            with self._lock:
                self._decide_locked(measured(job.fn, wall=0.0, cpu=0.0, coroutine=True))

    @property
    def decision(self) -> Decision | None:
        """The decision in force for this job (None while probing)."""
        return self.decisions[-1] if self.decisions else None

    # -- the Backend protocol ----------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        route = self._route
        return _PROBING if route is None else route.capabilities

    @property
    def workers(self) -> int:
        decision = self.decision
        if decision is None:
            return self._hub.user_workers or PROBING_WORKERS
        return IO_THREAD_CAP if decision.workers is None else decision.workers

    def submit(self, chunk: Chunk) -> None:
        chunk.observe(self._completed)
        with self._lock:
            if self._closing:
                chunk.cancel()
                return
            if self.decision is not None:
                ready = self._admit_locked(chunk)
            elif self._probe_started is None and self._ticker is None:
                self._start_probe_locked(chunk)
                ready = [chunk]
            else:
                self._held.append(chunk)
                ready = []
            route = self._route or self._hub.delegate("thread", self._hub.user_workers)
            for item in ready:
                self._sent[item] = route
        # Outside the lock: a serial route runs the chunk right here, and reports back in.
        for item in ready:
            route.submit(item)

    def stop(self, chunk: Chunk) -> None:
        """Stop a chunk past its deadline, on whichever backend it went to."""
        with self._lock:
            held = chunk in self._held
            if held:
                self._held.remove(chunk)
            route = self._sent.pop(chunk, None)
        if route is not None:
            route.stop(chunk)

    def shutdown(self, *, cancel: bool) -> None:
        """End this job's routing: drop held chunks, stop the ticker. Delegates stay."""
        with self._lock:
            self._closing = True
            held, self._held = list(self._held), deque()
            ticker = self._ticker
            self._wake.notify_all()
        for chunk in held:
            chunk.cancel()
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join()
        self._hub.forget(self)
        del cancel  # held chunks are dropped either way; running ones belong to the delegates

    # -- probing -----------------------------------------------------------------------

    def _start_probe_locked(self, chunk: Chunk) -> None:
        self._probe = chunk
        self._item_bytes = _pickled_size(chunk.items[0]) if chunk.items else 0
        claim = chunk.on_claim

        def claimed() -> bool:
            if claim is not None and not claim():
                return False
            with self._lock:
                self._probe_started = time.perf_counter()
                self._probe_thread = threading.get_ident()
                self._probe_cpu0 = time.thread_time()
                self._wake.notify_all()
            return True

        chunk.on_claim = claimed
        self._ticker = threading.Thread(target=self._tick_loop, name="manyhands-auto", daemon=True)
        self._ticker.start()

    def _tick_loop(self) -> None:
        """Decide early for a long probe; then tick the concurrency controller, if any."""
        with self._lock:
            while not self._closing and self.decision is None:
                started = self._probe_started
                if started is None:
                    self._wake.wait()
                    continue
                remaining = started + PROBE_WINDOW - time.perf_counter()
                if remaining > 0:
                    self._wake.wait(remaining)
                    continue
                ready = self._decide_locked(self._running_probe_evidence_locked(started))
                self._lock.release()
                try:
                    self._forward(ready)
                    self._nudge()
                finally:
                    self._lock.acquire()
            next_tick = time.perf_counter()
            while not self._closing and self._controller is not None:
                # Only a backlog can use a higher limit: without one, sleep until there is.
                if not self._held:
                    self._wake.wait()
                    continue
                remaining = next_tick - time.perf_counter()
                if remaining > 0:
                    self._wake.wait(remaining)
                    continue
                next_tick = time.perf_counter() + self._controller.interval
                ready = self._tick_locked()
                self._lock.release()
                try:
                    self._forward(ready)
                finally:
                    self._lock.acquire()

    def _running_probe_evidence_locked(self, started: float) -> Evidence:
        wall = time.perf_counter() - started
        cpu = _thread_cpu(self._probe_thread)
        cpu_used = (cpu - self._probe_cpu0) if cpu is not None else min(wall, time.process_time())
        return self._evidence(wall, max(0.0, cpu_used), None, complete=False)

    def _evidence(
        self,
        wall: float,
        cpu: float,
        result_bytes: int | None,
        *,
        complete: bool = True,
        items: int | None = None,
    ) -> Evidence:
        """What this job was measured to do; ``items`` defaults to the input's length."""
        if self._fn_picklable is None:
            self._fn_picklable = _pickled_size(self._job.fn) is not None
        return measured(
            self._job.fn,
            wall=wall,
            cpu=cpu,
            item_bytes=self._item_bytes,
            result_bytes=result_bytes,
            items=self._total if items is None else items,
            cpus=self._hub.cpus,
            complete=complete,
            function_picklable=self._fn_picklable,
        )

    # -- deciding and forwarding ---------------------------------------------------------

    def _decide_locked(self, evidence: Evidence, *, revised: bool = False) -> list[Chunk]:
        """Decide from ``evidence`` and adopt the decision (unless a revision changes
        nothing); return the held chunks that may go to it now."""
        decision = decide(
            evidence,
            workers=self._hub.user_workers,
            revised=revised,
            stoppable=self._job.timeout is not None,
        )
        current = self.decision
        if revised and current is not None and decision.backend == current.backend:
            return []
        self._revised = revised
        self.decisions.append(decision)
        log.debug("manyhands auto decision: %s", decision)
        self._route = self._hub.delegate(decision.backend, decision.workers)
        self._controller = None
        if decision.backend == "thread" and decision.workers is None:
            self._controller = ConcurrencyController(start=IO_START, cap=IO_THREAD_CAP)
            if self._ticker is None:
                self._ticker = threading.Thread(
                    target=self._tick_loop, name="manyhands-auto", daemon=True
                )
                self._ticker.start()
        self._decided_at = time.perf_counter()
        self._next_review = self._decided_at + REVISE_AFTER
        self._done = 0
        self._busy = self._cpu = 0.0
        self._wake.notify_all()
        return self._release_locked()

    def _admit_locked(self, chunk: Chunk) -> list[Chunk]:
        self._held.append(chunk)
        ready = self._release_locked()
        if self._held:
            self._wake.notify_all()  # a backlog: the controller's ticks matter again
        return ready

    def _release_locked(self) -> list[Chunk]:
        limit = self._controller.limit if self._controller is not None else None
        ready = []
        while self._held and (limit is None or self._in_flight < limit):
            ready.append(self._held.popleft())
            self._in_flight += 1
        return ready

    def _nudge(self) -> None:
        """Let the engine refill now, with the decided backend's window, rather than at its
        next outcome (for a slow call, seconds away). A decision made on an outcome needs
        none: that outcome wakes the engine next."""
        probe = self._probe
        if probe is not None:
            probe.nudge()

    def _forward(self, chunks: list[Chunk]) -> None:
        """Send chunks on from a thread other than the engine's: a failure fails the chunk."""
        for chunk in chunks:
            # Looked up per chunk: running a serial chunk here may revise the route.
            route = self._route
            try:
                assert route is not None
                with self._lock:
                    self._sent[chunk] = route
                route.submit(chunk)
            except Exception as exc:  # e.g. an item that cannot be pickled for processes
                chunk.complete(failed_outcome(exc, worker="auto"))

    def _completed(self, chunk: Chunk, outcome: ChunkOutcome) -> None:
        """Every outcome passes here (in the thread that reports it) before the engine."""
        with self._lock:
            self._sent.pop(chunk, None)
            self._in_flight = max(0, self._in_flight - 1)
            items = outcome.ran
            self._done += items
            self._busy += outcome.busy
            self._cpu += outcome.cpu
            self._latency_items += items
            self._latency_busy += outcome.busy
            ready: list[Chunk] = []
            if self.decision is None:
                result_bytes = _pickled_size(outcome.results[0]) if outcome.results else 0
                per_item = max(items, 1)
                ready = self._decide_locked(
                    self._evidence(outcome.busy / per_item, outcome.cpu / per_item, result_bytes)
                )
            elif not self._revised:
                ready = self._maybe_revise_locked()
            if not ready:
                ready = self._release_locked()
        self._forward(ready)

    def _maybe_revise_locked(self) -> list[Chunk]:
        """Revise once, if the work since the decision looks different from the probe.

        Looked at every ``REVISE_AFTER`` seconds of the run, on the work measured since the
        decision, until a revision is made.
        """
        decision = self.decision
        assert decision is not None
        now = time.perf_counter()
        if decision.backend in ("asyncio", "process") or now < self._next_review:
            return []
        self._next_review = now + REVISE_AFTER
        if self._done == 0:
            return []
        per_item_cpu = self._cpu / self._done
        if decision.backend == "thread":
            # Threads were chosen for waiting work; a GIL kept busy says otherwise.
            if self._cpu / (now - self._decided_at) < GIL_BUSY:
                return []
            wall = per_item_cpu  # CPU-bound: uncontended, its wall time is its CPU time
        else:
            wall = self._busy / self._done
        remaining = None if self._total is None else max(0, self._total - self._done)
        evidence = self._evidence(wall, per_item_cpu, 0, items=remaining)
        return self._decide_locked(evidence, revised=True)

    def _tick_locked(self) -> list[Chunk]:
        controller = self._controller
        assert controller is not None
        latency = None
        if self._latency_items:
            latency = self._latency_busy / self._latency_items
            self._latency_items = 0
            self._latency_busy = 0.0
        controller.tick(
            now=time.perf_counter(),
            completed=self._done,
            cpu_seconds=time.process_time(),
            latency=latency,
            backlog=bool(self._held),
        )
        return self._release_locked()


def evidence_from_probe(
    fn: Callable[..., Any], item: Any, mode: Mode, total: int | None, cpus: int
) -> tuple[Evidence, Any]:
    """Run ``fn`` on ``item`` here, measured: the evidence ``explain`` decides from."""
    from .._core._task import run_chunk

    outcome = run_chunk(fn, mode, [item], stop_on_error=True, catch=Exception, worker="probe")
    if outcome.errors:
        error = outcome.errors[0].exception
        assert error is not None
        raise error
    result = outcome.results[0]
    evidence = measured(
        fn,
        wall=outcome.busy,
        cpu=outcome.cpu,
        item_bytes=_pickled_size(item),
        result_bytes=_pickled_size(result),
        items=total,
        cpus=cpus,
    )
    return evidence, result


def measured(
    fn: Callable[..., Any],
    *,
    wall: float,
    cpu: float,
    item_bytes: int | None = 0,
    result_bytes: int | None = 0,
    items: int | None = None,
    cpus: int | None = None,
    complete: bool = True,
    coroutine: bool = False,
    function_picklable: bool | None = None,
) -> Evidence:
    """The ``Evidence`` for ``fn`` measured at ``wall`` and ``cpu`` seconds an item; the
    facts not given (picklability, CPUs, the GIL) are read here."""
    if function_picklable is None:
        function_picklable = coroutine or _pickled_size(fn) is not None
    return Evidence(
        coroutine=coroutine,
        seconds_per_item=wall,
        cpu_per_item=min(cpu, wall) if wall > 0 else cpu,
        item_bytes=item_bytes,
        result_bytes=result_bytes,
        function_picklable=function_picklable,
        items=items,
        cpus=available_cpus() if cpus is None else cpus,
        gil_enabled=gil_enabled(),
        complete=complete,
    )


def _pickled_size(value: object) -> int | None:
    """Bytes ``value`` takes pickled as processes would receive it; None if it cannot be."""
    import cloudpickle

    try:
        return len(cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        return None


def _thread_cpu(ident: int | None) -> float | None:
    """CPU seconds used so far by thread ``ident``, where the platform can tell (POSIX)."""
    if ident is None or not hasattr(time, "pthread_getcpuclockid"):
        return None
    with contextlib.suppress(OSError, ValueError, OverflowError):
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    return None
