"""The auto planner's rules on recorded evidence: a fake clock, fake backends, no real timing.

Each test plays the engine's part (place, sent, finished, tick) with outcomes written by hand,
and checks where the planner sends the next chunk and what it decided.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from manyhands._core._auto import CPU_EVIDENCE, PROBE_WINDOW, AutoPlan
from manyhands._core._decision import CONTENDED_EXTRA
from manyhands._core._machine import Machine
from manyhands._core._plan import Placement
from manyhands._core._protocol import Capabilities
from manyhands._core._task import Chunk, ChunkOutcome, Job


class FakeBackend:
    """Records what it was given; runs nothing (the test reports outcomes itself)."""

    def __init__(self, name: str, workers: int, threads: int = 1) -> None:
        self.name = name
        self.workers = workers
        self.threads = threads
        self.capabilities = Capabilities(synchronous=False, pickles=False, chunk_target=0.01)
        self.submitted: list[Chunk] = []

    def submit(self, chunk: Chunk) -> None:
        self.submitted.append(chunk)

    def stop(self, chunk: Chunk) -> None:
        del chunk

    def shutdown(self, *, cancel: bool) -> None:
        del cancel


class FakeMeter:
    def __init__(self, rate: float) -> None:
        self.rate: float | None = rate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.cpu = 0.0
        #: Seconds the process's threads ran or waited to run; None: the system does not say.
        self.runnable: float | None = 0.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A planner for ``total`` items, on a 2-CPU machine whose hand-off costs 50 us."""

    def __init__(self, total: int = 1000, cpus: int = 2, meter_rate: float = 1.0) -> None:
        self.clock = Clock()
        self.meters: list[FakeMeter] = []
        self.meter_rate = meter_rate
        self.opened: dict[str, FakeBackend] = {}
        #: Fake per-thread CPU clocks: a chunk whose ``thread`` is a key here has used that.
        self.thread_cpus: dict[int | None, float] = {}
        #: Threads of other processes running or ready (``_system.others_running``).
        self.others: int | None = 0
        machine = Machine(cache_path="")
        machine.cpus = cpus
        machine.gil_enabled = True
        machine.observe_handoff(50e-6)
        machine.observe_process_start(0.05)
        self.plan = AutoPlan(
            Job(abs, "map"),
            total,
            self.open,
            workers=None,
            machine_=machine,
            clock=self.clock,
            process_time=lambda: self.clock.cpu,
            gil_meter=self.meter,
            thread_cpu=self.thread_cpus.get,
            runnable_time=lambda: self.clock.runnable,
            others_running=lambda: self.others,
        )
        self.started = 0

    def meter(self, span: float, beside: int | None) -> FakeMeter:
        """A GIL meter that has measured ``meter_rate`` cores by the time it is asked."""
        del span, beside
        self.meters.append(FakeMeter(self.meter_rate))
        return self.meters[-1]  # type: ignore[return-value]

    def open(self, kind: str, workers: int, threads: int = 1) -> FakeBackend:
        """The backend ``kind`` of ``workers`` (the last one opened of each kind is kept)."""
        backend = self.opened.get(kind)
        if backend is None or backend.workers != workers or backend.threads != threads:
            backend = self.opened[kind] = FakeBackend(kind, workers, threads)
        return backend

    def send(self) -> tuple[Chunk, Placement] | None:
        placement = self.plan.place()
        if placement is None:
            return None
        chunk = Chunk(self.plan._job, self.started, self.started, [self.started], _ignore)
        self.started += 1
        chunk.started_at = self.clock.now
        self.plan.sent(chunk, placement)
        return chunk, placement

    def finish(
        self, sent: tuple[Chunk, Placement], *, wall: float, cpu: float, worker: str = "w"
    ) -> None:
        chunk, placement = sent
        self.clock.now += wall
        outcome = ChunkOutcome([chunk.items[0]], [], busy=wall, cpu=cpu, worker=worker)
        self.plan.finished(chunk, placement, outcome)


def _ignore(chunk: Chunk, outcome: Any) -> None:
    del chunk, outcome


def cpu_heavy_probe(harness: Harness) -> None:
    """Send the probe and let it burn CPU_EVIDENCE seconds of CPU, still running."""
    probe = harness.send()
    assert probe is not None
    probe[0].thread = None  # no per-thread clock in the test: the (fake) process clock is used
    harness.clock.now += CPU_EVIDENCE
    harness.clock.cpu += CPU_EVIDENCE
    harness.plan.tick(harness.clock.now)


def decided_after_meter(harness: Harness) -> Any:
    """The one decision taken once the GIL meter beside the probe has run its 20 ms."""
    harness.clock.now += 0.02
    harness.plan.tick(harness.clock.now)
    (decision,) = harness.plan.decisions
    return decision


def test_the_probe_goes_alone_to_a_thread_and_everything_else_waits() -> None:
    harness = Harness()
    probe = harness.send()
    assert probe is not None
    assert probe[1].kind == "thread"
    assert harness.send() is None  # held until the probe says what the work is
    assert harness.plan.decisions == []


def test_a_tiny_probe_keeps_the_job_in_the_callers_thread() -> None:
    harness = Harness()
    probe = harness.send()
    assert probe is not None
    harness.finish(probe, wall=2e-6, cpu=2e-6)
    (decision,) = harness.plan.decisions
    assert decision.backend == "serial"
    assert harness.plan.window() == 1
    placement = harness.plan.place()
    assert placement is not None
    assert placement.kind == "serial"


def test_waiting_work_starts_on_threads_at_the_width_littles_law_gives() -> None:
    harness = Harness()
    probe = harness.send()
    assert probe is not None
    harness.finish(probe, wall=0.05, cpu=0.0025)  # 50 ms requests, 2.5 ms CPU: width 20
    (decision,) = harness.plan.decisions
    assert decision.backend == "thread"
    assert decision.workers is None
    sent = [harness.send() for _ in range(30)]
    assert sum(item is not None for item in sent) == 20
    assert all(item is None or item[1].kind == "thread" for item in sent)


def test_half_way_through_its_window_a_running_probe_has_the_move_to_processes_measured() -> None:
    harness = Harness()
    machine = harness.plan._machine
    machine._handoff.clear()  # nothing measured yet
    assert machine._transfer_rate is None
    probe = harness.send()
    assert probe is not None
    harness.clock.now += PROBE_WINDOW / 2
    harness.plan.tick(harness.clock.now)
    assert harness.plan.decisions == []  # too early to decide
    assert machine._transfer_rate is not None
    assert harness.plan._picklable is True  # abs: sized by the C pickler
    # The probe ended (after 4 ms) while this thread was preparing, and was seen 4 ms later:
    # no hand-off is read from that (13.8 ms once ran sha256 serial).
    harness.clock.now += 0.004
    chunk, placement = probe
    harness.plan.finished(chunk, placement, ChunkOutcome([0], [], 0.004, 0.004, "t"))
    assert machine.handoff is None
    assert harness.plan._phase == "scale"  # CPU-heavy, not short: do two threads scale?


def test_the_preparation_stops_where_the_probe_has_ended() -> None:
    # sha256 of 8 MiB ended 0.3 ms into a 10 ms preparation, and waited for it to be
    # decided, with a CPU idle.
    harness = Harness()
    machine = harness.plan._machine
    probe = harness.send()
    assert probe is not None
    probe[0].finished = True  # its outcome is on its way
    harness.clock.now += PROBE_WINDOW / 2
    harness.plan.tick(harness.clock.now)
    assert machine._transfer_rate is None
    assert harness.plan._picklable is None
    # Nor does the look that starts the scaling test measure it (threads may scale).
    harness.finish(probe, wall=0.005, cpu=0.005)
    assert harness.plan._phase == "scale"
    assert machine._transfer_rate is None


def test_the_gil_the_preparation_took_is_not_counted_against_the_probe() -> None:
    # Pure Python: while this thread prepared (8 ms of its CPU), the probe waited for the
    # GIL. Counted, 32 ms of CPU in 40 ms read as 80%, and two threads taking turns at the
    # GIL (one core) then looked 1.25 times as fast as one.
    harness = Harness()
    me = threading.get_ident()
    engine_cpu = iter([0.0, 0.008])

    def thread_cpu(ident: int | None) -> float | None:
        return next(engine_cpu) if ident == me else harness.thread_cpus.get(ident)

    harness.plan._thread_cpu = thread_cpu
    probe = harness.send()
    assert probe is not None
    harness.clock.now += PROBE_WINDOW / 2
    harness.plan.tick(harness.clock.now)  # the preparation
    chunk, placement = probe
    harness.clock.now += 0.035
    harness.plan.finished(chunk, placement, ChunkOutcome([0], [], 0.04, 0.032, "t"))
    assert harness.plan._probe_rate == pytest.approx(1.0)


def probe_on_thread_7(harness: Harness) -> tuple[tuple[Chunk, Placement], dict[int, float]]:
    """The probe sent, running on thread 7, whose seconds on a CPU or in the run queue the
    returned dict holds (its CPU: ``harness.thread_cpus[7]``)."""
    runnable = {7: 0.0}
    harness.plan._thread_runnable = runnable.get  # type: ignore[assignment]
    probe = harness.send()
    assert probe is not None
    probe[0].thread, probe[0].thread_cpu = 7, 0.0
    return probe, runnable


def test_a_probe_that_computes_on_a_shared_cpu_is_not_taken_for_waiting_work() -> None:
    # Beside a busy process, pure Python gets half a core: its CPU clock says 49% of the
    # time, but the thread was on a CPU or in the run queue for one all along.
    harness = Harness()
    _, runnable = probe_on_thread_7(harness)
    harness.clock.now += PROBE_WINDOW / 2
    harness.thread_cpus[7], runnable[7] = 0.0025, PROBE_WINDOW / 2
    harness.plan.tick(harness.clock.now)
    harness.clock.now += PROBE_WINDOW / 2 + 0.001
    harness.thread_cpus[7], runnable[7] = 0.0054, PROBE_WINDOW + 0.001
    harness.plan.tick(harness.clock.now)
    assert harness.plan.decisions == []  # not waiting: watched on
    assert harness.plan._phase == "probe"
    harness.clock.now += 0.05
    harness.thread_cpus[7], runnable[7] = CPU_EVIDENCE, PROBE_WINDOW + 0.051
    harness.plan.tick(harness.clock.now)
    assert harness.plan._phase == "scale"  # CPU-heavy: is the GIL held? (the meter)


def test_the_run_queue_is_read_before_the_preparation() -> None:
    # Beside two busy processes, the preparation took 20 ms and the probe (a third of a core)
    # ended meanwhile: read after it, the run queue was never read over a span, and pure
    # Python (30 ms of CPU in 90 ms) went to threads as waiting work.
    harness = Harness()
    probe, runnable = probe_on_thread_7(harness)
    prepare = harness.plan._prepare

    def slow_preparation() -> None:
        prepare()
        harness.clock.now = probe[0].started_at + 0.095  # type: ignore[operator]
        harness.thread_cpus[7], runnable[7] = 0.03, 0.09  # the probe ended at 90 ms

    harness.plan._prepare = slow_preparation  # type: ignore[method-assign]
    harness.clock.now += PROBE_WINDOW / 2
    harness.thread_cpus[7], runnable[7] = 0.0017, PROBE_WINDOW / 2
    harness.plan.tick(harness.clock.now)
    chunk, placement = probe
    harness.plan.finished(chunk, placement, ChunkOutcome([0], [], 0.09, 0.03, "t"))
    assert harness.plan._probe_rate == pytest.approx(1.0)
    assert harness.plan._phase == "scale"  # CPU-heavy: do two threads scale?


def test_serial_items_that_wait_in_the_run_queue_are_not_taken_for_waiting_work() -> None:
    # A trivial first item, then items of 30 ms of pure Python beside two busy processes:
    # 90 ms each, 60 of them ready in the run queue. Read by their wall, they went to
    # threads, and only then to processes.
    harness = Harness()
    me = threading.get_ident()
    runnable = {me: 0.0}
    harness.plan._thread_runnable = runnable.get
    harness.thread_cpus[me] = 0.0
    probe = harness.send()
    assert probe is not None
    harness.finish(probe, wall=2e-6, cpu=2e-6)
    for _ in range(2):
        sent = harness.send()
        assert sent is not None
        assert sent[1].kind == "serial"
        harness.thread_cpus[me] += 0.03
        runnable[me] += 0.09
        harness.finish(sent, wall=0.09, cpu=0.03)
    first, revision = harness.plan.decisions
    assert first.backend == "serial"
    assert (revision.backend, revision.revised) == ("process", True), revision


@pytest.mark.parametrize(("others", "width"), [((1, 1), 2 + CONTENDED_EXTRA), ((1, 0), 2)])
def test_c_code_beside_other_running_processes_gets_more_threads(
    others: tuple[int, int], width: int
) -> None:
    # The scaling test beside a busy process (its one thread running at the start and the
    # end of the test), or beside one that stopped meanwhile.
    harness = Harness(total=10_000)
    readings = iter(others)
    harness.plan._others_running = lambda: next(readings)  # one reading at each end
    two_threads_measured(harness, [1.5, 1.5])
    (decision,) = harness.plan.decisions
    assert decision.evidence["threads_scale"] is True
    assert decision.evidence["others_running"] == min(others)
    assert (decision.backend, decision.workers) == ("thread", width)


def test_a_tiny_probe_leaves_the_move_to_processes_unmeasured() -> None:
    harness = Harness()
    probe = harness.send()
    assert probe is not None
    harness.finish(probe, wall=2e-6, cpu=2e-6)
    assert harness.plan._machine._transfer_rate is None
    assert harness.plan._picklable is None


def finish_noticed_late(
    harness: Harness, sent: tuple[Chunk, Placement], *, wall: float, late: float
) -> None:
    """The item ran ``wall`` seconds, and the planner heard of it ``late`` seconds after."""
    chunk, placement = sent
    harness.clock.now += wall + late
    harness.plan.finished(chunk, placement, ChunkOutcome([0], [], wall, wall, "t"))


def test_one_cold_item_near_a_cold_hand_off_is_measured_again() -> None:
    # crc32 of 1 MiB: 0.5 ms an item; the first hand-off of the process, cold, 0.7 ms.
    harness = Harness()
    harness.plan._machine._handoff.clear()
    first = harness.send()
    assert first is not None
    finish_noticed_late(harness, first, wall=0.0005, late=0.00035)
    assert harness.plan.decisions == []
    assert harness.plan._phase == "probe"
    second = harness.send()  # a second probe, alone, on the thread now warm
    assert second is not None
    assert second[1].kind == "thread"
    assert harness.send() is None
    finish_noticed_late(harness, second, wall=0.0005, late=0.0001)
    assert harness.plan._machine.handoff == pytest.approx(0.0002)
    assert harness.plan._phase == "scale"  # not short against a warm hand-off: tested


def test_a_tiny_cold_item_is_not_measured_again() -> None:
    harness = Harness()
    harness.plan._machine._handoff.clear()
    probe = harness.send()
    assert probe is not None
    finish_noticed_late(harness, probe, wall=5e-6, late=0.00035)
    (decision,) = harness.plan.decisions
    assert decision.backend == "serial"


def test_a_cold_first_call_is_not_taken_for_cpu_bound_work() -> None:
    # The first HTTP call of a process: 6 ms of CPU (imports, a connection) in its first
    # 10 ms, then it waits. After 10 ms it looks 60% CPU-bound; the planner waits for more.
    harness = Harness()
    probe = harness.send()
    assert probe is not None
    chunk = probe[0]
    chunk.thread = None  # no per-thread clock in the test: the (fake) process clock is used
    harness.clock.now += PROBE_WINDOW
    harness.clock.cpu += 0.006
    harness.plan.tick(harness.clock.now)
    assert harness.plan.decisions == []  # not enough CPU to believe it is CPU-bound
    harness.clock.now += 0.04  # the rest of the call waits
    harness.plan.tick(harness.clock.now)
    (decision,) = harness.plan.decisions
    assert decision.backend == "thread"


def test_cpu_heavy_work_is_believed_after_enough_cpu_and_then_metered_beside() -> None:
    # Pure Python holds the GIL: the probe and the meter share one core.
    harness = Harness(meter_rate=1.0)
    cpu_heavy_probe(harness)
    assert harness.plan.decisions == []  # the GIL test comes first
    assert len(harness.meters) == 1  # beside the running probe: no second item starts
    assert harness.send() is None
    decision = decided_after_meter(harness)
    assert decision.backend == "process"
    assert decision.evidence["threads_scale"] is False


def test_gil_releasing_code_stays_on_threads_unpickled_two_chunks_per_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pickling the function and an item (cloudpickle's import, a copy of an 8 MiB buffer)
    # cost sha256 35 ms before the scaling test sent it to threads anyway; and one chunk per
    # thread in flight made each thread wait for a round trip between items (40% slower).
    from manyhands._core import _auto

    pickled: list[object] = []
    monkeypatch.setattr(_auto, "pickled_size", lambda value: pickled.append(value) or 1)
    harness = Harness(meter_rate=1.9)  # the probe's C code and the meter: two cores
    cpu_heavy_probe(harness)
    decision = decided_after_meter(harness)
    assert (decision.backend, decision.workers) == ("thread", 2)
    assert decision.evidence["threads_scale"] is True
    assert pickled == []
    sent = [harness.send() for _ in range(5)]
    assert [s is not None for s in sent] == [True, True, True, False, False]  # the probe runs
    assert harness.opened["thread"].workers == 2


def test_short_items_are_tested_two_at_a_time() -> None:
    harness = Harness(total=10_000)
    probe = harness.send()
    assert probe is not None
    harness.finish(probe, wall=0.005, cpu=0.005)  # finished: short enough for two at once
    assert harness.plan.decisions == []
    assert harness.meters == []
    first, second = harness.send(), harness.send()
    assert first is not None
    assert second is not None
    assert harness.send() is None
    # The chunker spreads the test's items over its two threads, not over the backend's
    # many (which cut 0.5 ms items to chunks of one: two threads never both busy).
    assert (first[1].workers, second[1].workers) == (2, 2)
    for _ in range(6):  # two threads, one core's worth of CPU: the GIL is held
        harness.clock.now += 0.01
        harness.clock.cpu += 0.01
        harness.plan.tick(harness.clock.now)
    (decision,) = harness.plan.decisions
    assert decision.backend == "process"
    assert decision.evidence["threads_scale"] is False


def test_items_finished_during_the_scaling_test_are_its_evidence() -> None:
    harness = Harness(total=10_000, meter_rate=1.0)
    probe = harness.send()
    assert probe is not None
    harness.finish(probe, wall=0.002, cpu=0.002)  # a cold first item, slower than the rest
    pair = [harness.send(), harness.send()]
    harness.plan.tick(harness.clock.now)  # the window opens: two running
    for _ in range(20):  # each thread finishes an item every millisecond, in parallel
        for index, sent in enumerate(pair):
            assert sent is not None
            harness.finish(sent, wall=0.0005, cpu=0.0005)
            harness.clock.cpu += 0.001
            pair[index] = harness.send()
    harness.plan.tick(harness.clock.now)
    (decision,) = harness.plan.decisions
    assert decision.evidence["threads_scale"] is True
    assert decision.evidence["samples"] == 40
    assert decision.evidence["seconds_per_item"] == pytest.approx(0.0005)
    assert (decision.backend, decision.workers) == ("thread", 2)


def test_the_callers_thread_runs_chunks_while_worker_processes_start() -> None:
    harness = Harness(total=100)
    cpu_heavy_probe(harness)
    harness.clock.now += 0.02
    harness.plan.tick(harness.clock.now)  # the meter: the GIL is held
    decision = harness.plan.decisions[-1]
    assert (decision.backend, decision.workers) == ("process", 2)
    sent = [harness.send() for _ in range(4)]  # two chunks per worker
    assert all(item is not None and item[1].kind == "process" for item in sent)
    assert harness.send() is None  # the probe still runs on a thread here: no second one
    probe = harness.plan._probe
    assert probe is not None
    placement = Placement(harness.opened["thread"], "thread", 0.005, 1)
    harness.clock.now += 0.2
    harness.plan.finished(probe, placement, ChunkOutcome([0], [], 0.23, 0.23, "t"))
    inline = harness.send()
    assert inline is not None
    assert inline[1].kind == "serial"  # workers not ready: this thread runs a chunk
    assert harness.send() is None  # one at a time
    harness.finish(inline, wall=0.25, cpu=0.25)
    first = sent[0]
    assert first is not None
    harness.finish(first, wall=0.25, cpu=0.25, worker="process-1")  # a worker answered
    after = harness.send()
    assert after is not None
    assert after[1].kind == "process"
    assert harness.send() is None  # no more hedging once the workers run


def test_waiting_work_sent_to_processes_goes_back_to_threads() -> None:
    harness = Harness(total=3000)
    cpu_heavy_probe(harness)  # a cold item that looked CPU-bound while it ran
    harness.clock.now += 0.02
    harness.plan.tick(harness.clock.now)
    assert harness.plan.decisions[-1].backend == "process"
    harness.clock.now += 0.2
    sent = [harness.send() for _ in range(4)]
    for item in sent:  # on processes, each request waits 50 ms for 0.5 ms of CPU
        assert item is not None
        harness.finish(item, wall=0.05, cpu=0.0005, worker="process-1")
    revised = harness.plan.decisions[-1]
    assert (revised.backend, revised.revised) == ("thread", True)
    placement = harness.plan.place()
    assert placement is not None
    assert placement.kind == "thread"


@pytest.mark.parametrize("cpus", [1])
def test_one_cpu_never_starts_processes(cpus: int) -> None:
    harness = Harness(cpus=cpus)
    probe = harness.send()
    assert probe is not None
    harness.finish(probe, wall=0.25, cpu=0.25)
    (decision,) = harness.plan.decisions
    assert decision.backend == "serial"
    assert "process" not in harness.opened


def test_a_probe_that_ends_during_the_meter_falls_back_to_two_items() -> None:
    harness = Harness(meter_rate=1.0)
    cpu_heavy_probe(harness)
    (meter,) = harness.meters
    meter.rate = None  # still measuring
    assert harness.plan.place() is None  # nothing beside the probe while the meter runs
    assert harness.plan.wake_at() is not None  # the engine waits for the planner's timer
    probe = harness.plan._probe
    assert probe is not None
    placement = Placement(harness.opened["thread"], "thread", 0.005, 1)
    harness.plan.finished(probe, placement, ChunkOutcome([0], [], 0.04, 0.04, "t"))
    meter.rate = 1.0  # measured alone, after the probe ended: it says nothing
    harness.clock.now += 0.02
    harness.plan.tick(harness.clock.now)
    assert harness.plan.decisions == []
    first, second = harness.send(), harness.send()
    assert first is not None
    assert second is not None  # two items at once instead


@pytest.mark.parametrize("system_says", [True, False])
def test_threads_for_waiting_work_are_revised_when_the_gil_saturates_on_a_busy_machine(
    system_says: bool,
) -> None:
    # Two other processes take the CPUs: the GIL-bound items get 60% of a core, so the
    # process's CPU grows at 0.6 s a second while a thread of it always runs or waits to.
    harness = Harness(total=200)
    if not system_says:
        harness.clock.runnable = None
    probe = harness.send()
    assert probe is not None
    harness.finish(probe, wall=0.05, cpu=0.0005)  # the first items wait
    assert harness.plan.decisions[-1].backend == "thread"
    for _ in range(10):  # then each computes 30 ms, in 50 ms of wall
        item = harness.send()
        assert item is not None
        harness.clock.cpu += 0.03
        if harness.clock.runnable is not None:
            harness.clock.runnable += 0.05
        harness.finish(item, wall=0.05, cpu=0.03)
        harness.plan.tick(harness.clock.now)
    made = [(d.backend, d.revised) for d in harness.plan.decisions]
    if system_says:
        assert len(made) == 2, made
        assert made[1] in [("process", True), ("serial", True)]
    else:  # 60% of a core is not a saturated GIL by the CPU clock alone
        assert made == [("thread", False)]


def test_sizing_a_pickle_copies_no_large_buffer() -> None:
    import tracemalloc

    from manyhands._core._auto import pickled_size

    data = bytearray(64 * 2**20)

    def reads(x: int) -> int:
        return len(data) + x

    tracemalloc.start()
    try:
        size = pickled_size(reads)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size is not None
    assert 64 * 2**20 < size < 64 * 2**20 + 64 * 2**10  # the buffer, counted, and the code
    assert peak < 4 * 2**20  # not copied (a copy is 64 MB)
    import threading

    assert pickled_size(threading.Lock()) is None  # cannot be pickled at all


def test_sizing_a_pickle_counts_out_of_band_arrays_without_copying() -> None:
    np = pytest.importorskip("numpy")  # a benchmark dependency
    import tracemalloc

    from manyhands._core._auto import pickled_size

    array = np.ones(8 * 2**20)  # 64 MB

    shared: list[int] = []
    tracemalloc.start()
    try:
        size = pickled_size(lambda x: array[x], shared)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size is not None
    assert size >= array.nbytes
    assert peak < 4 * 2**20
    from manyhands._system import SHARES_BUFFERS

    # written once into shared memory for every worker, where descriptors can travel
    assert shared == [array.nbytes if SHARES_BUFFERS else 0]


def saturated_threads(harness: Harness, item_cpu: float = 0.002) -> list[tuple[Chunk, Placement]]:
    """Waiting work on threads (50 ms a request, 0.5 ms of CPU as first measured), then the
    process uses a core for 0.12 s while items wait for a slot, and the 64 items running
    have used ``item_cpu`` each (2 ms: they keep the GIL busy). The chunks still running."""
    probe = harness.send()
    assert probe is not None
    harness.finish(probe, wall=0.05, cpu=0.0005)
    assert harness.plan.decisions[-1].backend == "thread"
    running = []
    while (sent := harness.send()) is not None:
        running.append(sent)
    assert len(running) == 64  # Little's law, capped where growth starts
    for ident, (chunk, _) in enumerate(running):
        chunk.thread, chunk.thread_cpu = ident, 0.0
        harness.thread_cpus[ident] = item_cpu
    harness.clock.now += 0.09
    harness.clock.cpu += 0.09
    for sent in running[:10]:  # before the first review
        harness.plan.finished(sent[0], sent[1], ChunkOutcome([0], [], 0.05, 0.0005, "t"))
    assert len(harness.plan.decisions) == 1
    harness.clock.now += 0.03
    harness.clock.cpu += 0.03
    last = running[10]  # the review: 11 items in 0.12 s, 90 a second
    harness.plan.finished(last[0], last[1], ChunkOutcome([0], [], 0.05, 0.0005, "t"))
    return running[11:]


def test_waiting_work_that_keeps_the_gil_busy_moves_to_processes_running_threads() -> None:
    harness = Harness(total=1000)
    on_threads = saturated_threads(harness)
    revised = harness.plan.decisions[-1]
    assert (revised.backend, revised.workers, revised.threads) == ("process", 2, 64)
    assert revised.revised
    assert harness.opened["process"].threads == 64
    # While the workers start: a thread each's worth of items waits for them there, and the
    # threads here go on serving at the width they had reached.
    kinds = []
    while (sent := harness.send()) is not None:
        kinds.append(sent)
    to_processes = [sent for sent in kinds if sent[1].kind == "process"]
    to_threads = [sent for sent in kinds if sent[1].kind == "thread"]
    assert len(to_processes) == 128
    assert len(to_threads) + len(on_threads) == 64
    # A worker answers: from now on everything goes to the processes.
    harness.finish(to_processes[0], wall=0.2, cpu=0.001, worker="process-1")
    after = [harness.send() for _ in range(5)]
    assert all(sent is not None and sent[1].kind == "process" for sent in after)


def test_the_gil_read_over_the_last_review_moves_waiting_work_the_ramp_would_hide() -> None:
    # HTTP requests: the first 0.1 s on threads starting up used little CPU, the next 0.1 s
    # a core. Since the decision that is half a core; over the last review's time, a core.
    harness = Harness(total=1000)
    probe = harness.send()
    assert probe is not None
    harness.finish(probe, wall=0.05, cpu=0.0005)
    running = []
    while (sent := harness.send()) is not None:
        running.append(sent)
    for ident, (chunk, _) in enumerate(running):
        chunk.thread, chunk.thread_cpu = ident, 0.0
        harness.thread_cpus[ident] = 0.0
    harness.clock.now += 0.1
    harness.clock.cpu += 0.1
    first = running[0]
    harness.plan.finished(first[0], first[1], ChunkOutcome([0], [], 0.05, 0.0005, "t"))
    assert [d.backend for d in harness.plan.decisions] == ["thread"]  # the first review
    for ident in range(1, len(running)):
        harness.thread_cpus[ident] = 0.0016  # 63 requests, 0.1 s of CPU between them
    harness.clock.now += 0.1
    harness.clock.cpu += 0.1
    second = running[1]
    harness.plan.finished(second[0], second[1], ChunkOutcome([0], [], 0.05, 0.0005, "t"))
    revised = harness.plan.decisions[-1]
    assert (revised.backend, revised.threads) == ("process", 64)


def test_processes_running_threads_that_pay_less_than_the_threads_are_undone() -> None:
    harness = Harness(total=1000)
    saturated_threads(harness)
    assert harness.plan.decisions[-1].threads == 64
    sent = []
    while (item := harness.send()) is not None:
        sent.append(item)
    processes = iter(item for item in sent if item[1].kind == "process")
    threads = [item for item in sent if item[1].kind == "thread"]
    harness.finish(next(processes), wall=0.3, cpu=0.001, worker="process-1")  # answered
    for _ in range(4):  # then one item every 0.06 s: 17 a second, against 90 on threads
        harness.finish(next(processes), wall=0.06, cpu=0.001, worker="process-1")
    backends = [(d.backend, d.threads) for d in harness.plan.decisions]
    assert backends == [("thread", 1), ("process", 64), ("thread", 1)]
    harness.finish(threads[0], wall=0.05, cpu=0.0005)  # a thread is free again
    placement = harness.plan.place()
    assert placement is not None
    assert placement.kind == "thread"


def test_a_process_busy_starting_threads_for_waiting_items_stays_on_threads() -> None:
    # 1,000 sleeps: starting the threads keeps the process's CPU busy, the items use none.
    harness = Harness(total=1000)
    saturated_threads(harness, item_cpu=0.0)
    assert [d.backend for d in harness.plan.decisions] == ["thread"]


def two_threads_measured(harness: Harness, cores: list[float]) -> None:
    """Short items tested two at a time: the two threads use ``cores[i]`` cores in the i-th
    10 ms, while the engine ticks."""
    probe = harness.send()
    assert probe is not None
    harness.finish(probe, wall=0.005, cpu=0.005)
    assert harness.send() is not None
    assert harness.send() is not None
    harness.plan.tick(harness.clock.now)  # the window opens: two running
    for used in cores:
        harness.clock.now += 0.01
        harness.clock.cpu += 0.01 * used
        harness.plan.tick(harness.clock.now)


def test_an_unsure_scaling_test_is_measured_again_over_a_longer_span() -> None:
    # Other processes took part of the CPUs: two threads of sha256 used 1.29 cores, and the
    # job once ran serial at 1.8x the threads' time. Measured again, 1.3 cores is parallel.
    harness = Harness(total=10_000)
    two_threads_measured(harness, [1.3, 1.3])
    assert harness.plan.decisions == []  # unsure at 20 ms: measured on to 60 ms
    for _ in range(4):
        harness.clock.now += 0.01
        harness.clock.cpu += 0.013
        harness.plan.tick(harness.clock.now)
    (decision,) = harness.plan.decisions
    assert decision.evidence["threads_scale"] is True
    assert decision.backend == "thread"


def test_beside_other_running_processes_a_scaling_test_is_always_measured_longer() -> None:
    # Beside a process spinning on one of two CPUs, the scheduler put both threads of sha256
    # on the other CPU for 20 ms in half the runs: one core, no better than the GIL's.
    harness = Harness(total=10_000)
    harness.others = 1
    two_threads_measured(harness, [1.0, 1.0])
    assert harness.plan.decisions == []  # not "no": measured on to 60 ms
    for _ in range(4):
        harness.clock.now += 0.01
        harness.clock.cpu += 0.015
        harness.plan.tick(harness.clock.now)
    (decision,) = harness.plan.decisions
    assert (decision.backend, decision.evidence["threads_scale"]) == ("thread", True)
    alone = Harness(total=10_000)
    two_threads_measured(alone, [1.0, 1.0])
    (decision,) = alone.plan.decisions
    assert decision.evidence["threads_scale"] is False  # no other process: the GIL's core


def test_threads_that_take_turns_at_the_gil_do_not_pass_the_longer_test() -> None:
    harness = Harness(total=10_000)
    two_threads_measured(harness, [1.15] * 6)  # unsure at first; then a core and a bit
    (decision,) = harness.plan.decisions
    assert decision.evidence["threads_scale"] is False


def test_two_cores_used_say_threads_scale_though_one_thread_is_between_chunks() -> None:
    harness = Harness(total=10_000)
    probe = harness.send()
    assert probe is not None
    harness.finish(probe, wall=0.005, cpu=0.005)
    first, second = harness.send(), harness.send()
    assert first is not None
    assert second is not None
    harness.plan.tick(harness.clock.now)  # the window opens: two running
    harness.clock.now += 0.01
    harness.clock.cpu += 0.018
    harness.plan.tick(harness.clock.now)
    harness.plan.finished(first[0], first[1], None)  # between chunks at the moment it ends
    harness.clock.now += 0.01
    harness.clock.cpu += 0.018
    harness.plan.tick(harness.clock.now)
    (decision,) = harness.plan.decisions
    assert decision.evidence["threads_scale"] is True
