"""``manyhands.bench``: the lecture's lesson measured on the user's own function.

One sample of the user's items; the plain loop first (the baseline, and by default what
chooses the sample: items are taken until the loop has run a few seconds), then every
strategy on the same sample, in rounds (each strategy once per round, so that a slow moment
of the machine falls on all of them alike), each run with fresh workers and measured for wall
time, CPU and peak memory of the process tree (``_bench_meter``). A run past its budget is
stopped and reported as "more than"; the thread sweep widens while it pays.

    bench(fn, items)
      ├── sample: the loop over the first items, until ~2 s (or sample= items)
      ├── round 1: auto, threads x2, x4, ... (while wider pays), the lecture's forms,
      │            processes x1 .. x CPUs
      ├── rounds 2.. : the same, without what failed or ran past its budget
      └── Comparison: the medians, the verdict, the reasons (_bench_report, _bench_reasons)
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._bench_meter import Meter, Usage
from ._bench_report import Comparison, Timing
from ._bench_strategies import LECTURE, Strategy, coroutine_strategies, strategy
from ._core._decision import Decision
from ._core._task import is_coroutine_function
from ._errors import ArgumentTypeError, ArgumentValueError, short_repr
from ._options import check_fn, check_items, check_positive_int, check_seconds
from ._system import available_cpus, gil_enabled

__all__ = ["bench"]

#: Seconds of the loop the default sample aims at ("enough for a few seconds").
SAMPLE_SECONDS = 2.0
#: The default sample's bounds: at least this many items (unless sampling takes too long)...
MIN_SAMPLE = 4
#: ... at most this many ...
MAX_SAMPLE = 100_000
#: ... and no more than this many seconds of sampling, however few items that is.
LONGEST_SAMPLING = 30.0
#: The default budget: this many times the best run so far ...
BUDGET_FACTOR = 3.0
#: ... but never less than this many seconds (what starting a few worker processes costs).
MIN_BUDGET = 0.5
#: The thread sweep goes on while a width takes at most this fraction of the best narrower.
SWEEP_PAYS = 0.9
#: The widest thread count the sweep tries.
MAX_THREADS = 1024
#: Seconds to wait, off the clock, for what a stopped strategy left running.
DRAIN_LIMIT = 60.0

_PLAIN_NAMES = ("loop", "auto", "threads", "processes", "lecture", *LECTURE)
_COROUTINE_NAMES = ("loop", "auto", "asyncio", "asyncio.gather", "lecture")


def bench(
    fn: Callable[..., Any],
    items: Iterable[Any],
    /,
    *,
    sample: int | None = None,
    strategies: Iterable[str] | None = None,
    budget: float | None = None,
    progress: bool = True,
    repeats: int = 3,
) -> Comparison:
    """Time ``fn`` over a sample of ``items`` every way the lecture teaches, and say which
    way is fastest here and why.

    It runs, on the same sample: the loop (the baseline), manyhands' auto, manyhands' threads
    at widths 2, 4, 8... (while wider still pays), manyhands' processes from 1 to the CPUs
    this process may use, and the lecture's hand-written forms (a thread per item, started
    and joined; ``ThreadPoolExecutor(max_workers=10)``; ``multiprocessing.Pool()``). For an
    ``async def`` function: the loop awaiting each item, manyhands' asyncio and auto, and
    ``asyncio.gather``. Each runs ``repeats`` times, in interleaved rounds, with fresh
    workers; the median is reported, with the spread when it is wide.

    ``sample``: how many of the first items to run (default: as many as the loop runs in
    about 2 seconds, at least 4, at most 100,000). ``strategies``: which to run, by name or
    family: ``"loop"`` (always run: the baseline), ``"auto"``, ``"threads"`` (the sweep) or
    ``"threads:N"``, ``"processes"`` or ``"processes:N"``, ``"lecture"`` (the hand-written
    forms) or one of them (``"thread-per-item"``, ``"ThreadPoolExecutor"``,
    ``"multiprocessing.Pool"``); for coroutine functions ``"asyncio"`` and
    ``"asyncio.gather"``. ``budget``: seconds a run may take before it is stopped and
    reported as "more than" (default: 3 times the best run so far, at least 0.5 s).
    ``progress``: a bar saying which strategy runs.

    ``fn`` runs many times on each sampled item (once per run of each strategy): mind its
    side effects. Returns a ``Comparison``: ``print()`` it for the table and the verdict,
    ``.to_dict()`` for the numbers, ``.plot("bench.png")`` for the chart.
    """
    check_fn(fn)
    check_items(items)
    size = check_positive_int("sample", sample, allow_none=True)
    rounds = check_positive_int("repeats", repeats, allow_none=False)
    assert rounds is not None
    limit = check_seconds("budget", budget, none="3 times the best run so far")
    coroutine = is_coroutine_function(fn)
    names = _check_strategies(strategies, coroutine)
    bench = _Bench(fn, coroutine, limit, progress)
    try:
        bench.take_sample(items, size)
        bench.run(names, rounds)
    finally:
        bench.close()
    return bench.comparison(rounds)


# -- the arguments ---------------------------------------------------------------------------


def _check_strategies(given: Iterable[str] | None, coroutine: bool) -> list[str]:
    """The strategy names to run, expanded and in run order; the loop always first."""
    allowed = _COROUTINE_NAMES if coroutine else _PLAIN_NAMES
    if given is None:
        names = list(allowed)
    else:
        if isinstance(given, str):
            given = [given]
        try:
            names = list(given)
        except TypeError:
            raise ArgumentTypeError(
                f"strategies must be a list of names, got {short_repr(given)} "
                f"({type(given).__name__}); e.g. strategies=['threads', 'processes']"
            ) from None
        for name in names:
            _check_name(name, allowed, coroutine)
    expanded: list[str] = ["loop"]
    for name in names:
        if name == "lecture":
            expanded += ["asyncio.gather"] if coroutine else list(LECTURE)
        else:
            expanded.append(name)
    order = {base: position for position, base in enumerate(_RUN_ORDER)}
    unique = list(dict.fromkeys(expanded))
    return sorted(unique, key=lambda name: (order[name.partition(":")[0]], _width(name)))


#: The order strategies run (and show) in: the loop, then what usually wins on threads or an
#: event loop (so that the budget, a few times the best run so far, tightens early), then
#: processes.
_RUN_ORDER = (
    "loop",
    "auto",
    "asyncio",
    "threads",
    "thread-per-item",
    "ThreadPoolExecutor",
    "asyncio.gather",
    "processes",
    "multiprocessing.Pool",
)


def _width(name: str) -> int:
    _, colon, width = name.partition(":")
    return int(width) if colon else 0


def _check_name(name: object, allowed: tuple[str, ...], coroutine: bool) -> None:
    if not isinstance(name, str):
        raise ArgumentTypeError(
            f"strategies must hold names (strings), got {short_repr(name)} "
            f"({type(name).__name__}): one of {', '.join(allowed)}"
        )
    base, colon, width = name.partition(":")
    if colon and base in ("threads", "processes") and not coroutine:
        if width.isdigit() and int(width) >= 1:
            return
        raise ArgumentValueError(
            f"strategies: {name!r} needs a width >= 1 after the colon, e.g. '{base}:4' "
            f"(or '{base}' for every width)"
        )
    if name in allowed:
        return
    other = _PLAIN_NAMES if coroutine else _COROUTINE_NAMES
    if base in other:
        kind = "an async def function" if coroutine else "a plain (not async) function"
        raise ArgumentValueError(
            f"strategies: {name!r} does not apply to {kind}; for it choose from "
            f"{', '.join(allowed)}"
        )
    raise ArgumentValueError(
        f"strategies: unknown strategy {name!r}; choose from {', '.join(allowed)} "
        "(and 'threads:N', 'processes:N' for one width)"
    )


# -- the runs ------------------------------------------------------------------------------


@dataclass
class _Slot:
    """One strategy's runs so far."""

    strategy: Strategy
    runs: list[float] = field(default_factory=list)
    stopped: list[bool] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    memory: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def active(self) -> bool:
        """Still to be run in later rounds: it has not failed nor run past its budget."""
        return self.error is None and not any(self.stopped)

    def record(self, wall: float, stopped: bool, usage: Usage) -> None:
        self.runs.append(wall)
        self.stopped.append(stopped)
        self.cpu.append(usage.cpu)
        self.memory.append(usage.memory)

    def timing(self) -> Timing:
        s = self.strategy
        return Timing(
            s.name,
            s.label,
            s.family,
            s.workers,
            tuple(self.runs),
            tuple(self.stopped),
            tuple(self.cpu),
            tuple(self.memory),
            self.error,
        )


class _Bench:
    def __init__(
        self, fn: Callable[..., Any], coroutine: bool, budget: float | None, progress: bool
    ) -> None:
        self.fn = fn
        self.coroutine = coroutine
        self.budget = budget
        self.cpus = available_cpus()
        self.meter = Meter()
        self.slots: list[_Slot] = []
        self.sample: list[Any] = []
        self.best: float | None = None  # the shortest finished run so far
        self.decisions: list[tuple[Decision, ...]] = []
        self.bar = _Bar(_name(fn)) if progress else None

    def make(self, name: str) -> Strategy:
        if self.coroutine:
            return coroutine_strategies(name)
        base, colon, width = name.partition(":")
        return strategy(base, int(width)) if colon else strategy(name)

    # -- the sample ------------------------------------------------------------------------

    def take_sample(self, items: Iterable[Any], size: int | None) -> None:
        loop = _Slot(self.make("loop"))
        self.slots.append(loop)
        if size is not None:
            self.sample = list(itertools.islice(items, size))
            self._refuse_empty()
            self.measure(loop)
            return
        # The loop's first run chooses the sample: items until it has run a few seconds.
        if self.bar is not None:
            self.bar.running("loop (choosing the sample)", 1)
        self.meter.start()
        started = time.perf_counter()
        own = time.thread_time()
        try:
            if self.coroutine:
                self.sample = _sample_coroutines(self.fn, iter(items))
            else:
                self.sample = _sample_calls(self.fn, iter(items))
        except BaseException as exc:  # Ctrl-C too: the meter's thread stops with it
            self.meter.stop()
            if isinstance(exc, Exception):
                _note_loop_failure(exc)
            raise
        wall = time.perf_counter() - started
        usage = self.meter.stop()
        if not self.coroutine:
            usage.cpu = time.thread_time() - own
        self._refuse_empty()
        loop.record(wall, False, usage)
        self.best = wall
        if self.bar is not None:
            self.bar.done()

    def _refuse_empty(self) -> None:
        if not self.sample:
            raise ArgumentValueError(
                "items is empty: bench() needs at least one item to time fn on (give the "
                "items your real job runs, or a representative few)"
            )

    # -- the rounds ------------------------------------------------------------------------

    def run(self, names: list[str], rounds: int) -> None:
        if self.bar is not None:  # an estimate until the sweeps have found their widths
            planned = sum(self._planned(name) for name in names)
            self.bar.expect(rounds * planned)
        for name in names[1:]:
            if name in ("threads", "processes"):
                self.sweep(name)
            else:
                slot = _Slot(self.make(name))
                self.slots.append(slot)
                self.measure(slot)
        if self.bar is not None:
            self.bar.expect(len(self.slots) + (rounds - 1) * sum(s.active for s in self.slots))
        for _ in range(rounds - 1):
            for slot in self.slots:
                if slot.active:
                    self.measure(slot)

    def _planned(self, name: str) -> int:
        return len(self._widths(name)) if name in ("threads", "processes") else 1

    def _widths(self, family: str) -> list[int]:
        if family == "processes":
            return _doublings(1, self.cpus)
        return _doublings(2, min(len(self.sample), MAX_THREADS))

    def sweep(self, family: str) -> None:
        """threads: 2, 4, 8... up to the sample's size, while wider still pays; processes:
        1, 2, 4... up to the usable CPUs."""
        best: float | None = None
        for width in self._widths(family):
            name = f"{family}:{width}"
            if any(slot.strategy.name == name for slot in self.slots):
                continue
            slot = _Slot(self.make(name))
            self.slots.append(slot)
            self.measure(slot)
            if family == "processes" or not slot.active:
                continue  # past its budget: a wider one may still come within it
            wall = slot.runs[-1]
            if best is not None and wall > SWEEP_PAYS * best:
                return
            best = wall if best is None else min(best, wall)

    def measure(self, slot: _Slot) -> None:
        """One run of ``slot``'s strategy over the sample, on the clock."""
        strategy = slot.strategy
        if self.bar is not None:
            self.bar.running(strategy.label, len(slot.runs) + 1)
        budget = self._budget_for(slot)
        threads = set(threading.enumerate())
        decisions: list[Decision] = []
        self.meter.start()
        started = time.perf_counter()
        own = time.thread_time()
        deadline = None if budget is None else time.monotonic() + budget
        completed = False
        try:
            completed = strategy.run(self.fn, self.sample, deadline, decisions)
        except Exception as exc:
            if strategy.family == "loop":
                _note_loop_failure(exc)
                raise  # the meter stops below, as for any end of the run
            slot.error = _one_line(exc)
        finally:
            wall = time.perf_counter() - started
            usage = self.meter.stop()
            if self.bar is not None:
                self.bar.done()
        if slot.error is not None:
            _drain(threads)
            return
        if not completed:
            assert budget is not None
            slot.record(budget, True, usage)  # a lower bound
            _drain(threads)
            return
        if strategy.family == "loop" and not self.coroutine:
            # The loop runs on this thread alone: its own CPU time says how much of an item
            # is computing, whatever other threads of the process (a notebook's, a Dask
            # client's) do meanwhile.
            usage.cpu = time.thread_time() - own
        slot.record(wall, False, usage)
        self.best = wall if self.best is None else min(self.best, wall)
        if strategy.family == "auto":
            self.decisions.append(tuple(decisions))

    def _budget_for(self, slot: _Slot) -> float | None:
        if slot.strategy.family == "loop":
            return None  # the baseline always runs to its end
        if self.budget is not None:
            return self.budget
        budget = max(BUDGET_FACTOR * (self.best or 0.0), MIN_BUDGET)
        if slot.runs:  # it ran within budget before: noise must not cut it short now
            budget = max(budget, BUDGET_FACTOR * max(slot.runs))
        return budget

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def comparison(self, rounds: int) -> Comparison:
        decisions = self.decisions[-1] if self.decisions else ()
        return Comparison(
            function=_name(self.fn),
            sample=len(self.sample),
            repeats=rounds,
            cpus=self.cpus,
            timings=tuple(slot.timing() for slot in self.slots),
            decisions=decisions,
            coroutine=self.coroutine,
            gil_enabled=gil_enabled(),
            budget=self.budget,
            auto_choices=tuple(_choice(made) for made in self.decisions),
        )


def _name(fn: Callable[..., Any]) -> str:
    """The function's name as its user wrote it (through ``functools.partial`` too)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else type(fn).__name__


def _choice(decisions: tuple[Decision, ...]) -> str:
    if not decisions:
        return "none"
    last = decisions[-1]
    return f"{last.backend} x{'adaptive' if last.workers is None else last.workers}"


def _doublings(first: int, last: int) -> list[int]:
    widths = []
    width = first
    while width < last:
        widths.append(width)
        width *= 2
    widths.append(max(first, last) if first <= last else last)
    return list(dict.fromkeys(widths))


def _sample_calls(fn: Callable[..., Any], items: Iterator[Any]) -> list[Any]:
    sample: list[Any] = []
    started = time.perf_counter()
    for item in items:
        fn(item)
        sample.append(item)
        if _enough(len(sample), time.perf_counter() - started):
            break
    return sample


def _sample_coroutines(fn: Callable[..., Any], items: Iterator[Any]) -> list[Any]:
    import asyncio

    sample: list[Any] = []

    async def main() -> None:
        started = time.perf_counter()
        for item in items:
            await fn(item)
            sample.append(item)
            if _enough(len(sample), time.perf_counter() - started):
                return

    failure: list[BaseException] = []

    def body() -> None:  # a thread of its own: a notebook's thread has a running loop
        try:
            asyncio.run(main())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=body, name="manyhands-bench-loop")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return sample


def _enough(count: int, elapsed: float) -> bool:
    return (
        count >= MAX_SAMPLE
        or elapsed >= LONGEST_SAMPLING
        or (elapsed >= SAMPLE_SECONDS and count >= MIN_SAMPLE)
    )


def _note_loop_failure(exc: BaseException) -> None:
    note = (
        "manyhands.bench(): fn raised in the loop, the baseline every strategy is measured "
        "against; bench times a function that works on its sample"
    )
    add_note = getattr(exc, "add_note", None)  # 3.11+
    if add_note is not None:
        add_note(note)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _drain(before: set[threading.Thread]) -> None:
    """Wait, off the clock, for the threads a stopped or failed strategy left running, so
    that they do not run during the next strategy's measurement."""
    deadline = time.monotonic() + DRAIN_LIMIT
    for thread in threading.enumerate():
        if thread not in before and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


class _Bar:
    """A tqdm bar (a widget in notebooks) counting runs, naming the strategy running."""

    def __init__(self, function: str) -> None:
        from tqdm.auto import tqdm

        class Bar(tqdm):  # type: ignore[type-arg]
            monitor_interval = 0  # no process-wide monitor thread left behind

        self._function = function
        self._bar = Bar(total=None, desc=f"bench {function}", unit="run", dynamic_ncols=True)

    def running(self, label: str, run: int) -> None:
        self._bar.set_description(f"bench {self._function}: {label}, run {run}")

    def expect(self, total: int) -> None:
        self._bar.total = total
        self._bar.refresh()

    def done(self) -> None:
        self._bar.update(1)

    def close(self) -> None:
        self._bar.set_description(f"bench {self._function}")
        self._bar.close()
