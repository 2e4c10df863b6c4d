"""The engine's policies, driven through a scripted backend that completes chunks on command.

The backend protocol is one method; this double implements it to make completion order a
test input instead of a race.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from manyhands._core._engine import execute
from manyhands._core._protocol import Capabilities
from manyhands._core._task import Chunk, run_chunk
from manyhands._options import RunOptions


class ScriptedBackend:
    """Holds submitted chunks; once ``release_at`` are held, completes them in ``order``."""

    name = "scripted"
    capabilities = Capabilities(synchronous=False, pickles=False, chunk_target=0.01)

    def __init__(self, release_at: int, order: Callable[[list[Chunk]], Iterable[Chunk]]) -> None:
        self.release_at = release_at
        self.order = order
        self.held: list[Chunk] = []
        self.stopped: list[Chunk] = []
        self.most_outstanding = 0
        self.outstanding = 0

    @property
    def workers(self) -> int:
        return 2

    def submit(self, chunk: Chunk) -> None:
        self.held.append(chunk)
        self.outstanding += 1
        self.most_outstanding = max(self.most_outstanding, self.outstanding)
        if len(self.held) == self.release_at:
            held, self.held = self.held, []
            for ready in self.order(held):
                self.outstanding -= 1
                ready.complete(
                    run_chunk(
                        ready.job.fn,
                        ready.job.mode,
                        ready.items,
                        stop_on_error=ready.job.stop_on_error,
                        catch=Exception,
                        worker="scripted",
                    )
                )

    def stop(self, chunk: Chunk) -> None:
        self.stopped.append(chunk)

    def shutdown(self, *, cancel: bool) -> None:
        del cancel


def mapped(where: Any, fn: Callable[..., Any], items: Iterable[Any], **options: Any) -> list[Any]:
    """The engine's results for ``fn`` over ``items`` on ``where`` (a backend or a plan)."""
    listeners = options.pop("listeners", ())
    settings = RunOptions(**{"chunksize": 1, **options})
    chunks = execute(lambda job, total: where, fn, "map", items, settings, listeners=listeners)
    return [result for chunk in chunks for result in chunk]


def run(
    backend: ScriptedBackend, fn: Callable[[Any], Any], items: list[Any], **kw: Any
) -> list[Any]:
    return mapped(backend, fn, items, **kw)


def test_ordered_results_survive_reverse_completion() -> None:
    backend = ScriptedBackend(release_at=6, order=reversed)
    assert run(backend, lambda x: x * 10, list(range(6)), ordered=True) == [0, 10, 20, 30, 40, 50]


def test_unordered_results_come_in_completion_order() -> None:
    backend = ScriptedBackend(release_at=6, order=reversed)
    assert run(backend, lambda x: x, list(range(6)), ordered=False) == [5, 4, 3, 2, 1, 0]


def test_window_bounds_outstanding_chunks() -> None:
    backend = ScriptedBackend(release_at=6, order=list)
    assert run(backend, lambda x: x, list(range(60)), ordered=True) == list(range(60))
    assert backend.most_outstanding == 6  # max(4, 3 * workers)


def test_lowest_failing_index_wins_whatever_the_completion_order() -> None:
    def fail_on_odd(x: int) -> int:
        if x % 2:
            raise ValueError(f"odd {x}")
        return x

    backend = ScriptedBackend(release_at=6, order=reversed)  # item 5 fails first
    with pytest.raises(ValueError, match="odd 1"):
        run(backend, fail_on_odd, list(range(6)), ordered=True)


def test_no_new_work_after_a_failure() -> None:
    submitted: list[int] = []

    class Recording(ScriptedBackend):
        def submit(self, chunk: Chunk) -> None:
            submitted.append(chunk.start)
            super().submit(chunk)

    def fail_on_zero(x: int) -> int:
        if x == 0:
            raise ValueError("zero")
        return x

    with pytest.raises(ValueError, match="zero"):
        run(Recording(release_at=6, order=list), fail_on_zero, list(range(600)), ordered=True)
    assert submitted == [0, 1, 2, 3, 4, 5]


def test_listeners_see_start_every_chunk_and_the_end() -> None:
    events: list[tuple[str, Any]] = []

    class Listener:
        def started(self, total: int | None) -> None:
            events.append(("started", total))

        def decided(self, decision: Any) -> None:
            events.append(("decided", decision))

        def advanced(self, *, done: int, failed: int, busy: float, worker: str) -> None:
            events.append(("advanced", done))

        def finished(self) -> None:
            events.append(("finished", None))

    backend = ScriptedBackend(release_at=3, order=list)
    run(backend, lambda x: x, [1, 2, 3], ordered=True, listeners=[Listener()])
    assert events == [
        ("started", 3),
        ("advanced", 1),
        ("advanced", 1),
        ("advanced", 1),
        ("finished", None),
    ]


def _fails_on_even_above_one(x: int) -> int:
    if x > 1 and x % 2 == 0:
        raise ValueError(f"bad {x}")
    return x


@pytest.mark.parametrize("mode", ["map", "star", "built-in"])
def test_run_chunk_places_every_failure_at_its_item(mode: str) -> None:
    # run_chunk calls a Python function in a loop, others through list.extend(map(...)):
    # either way a failure must land at its own offset, the items after it still run, and a
    # failing last item is handled too.
    items: list[Any] = list(range(7))
    fn: Any = _fails_on_even_above_one
    if mode == "star":
        items = [(x,) for x in items]
    if mode == "built-in":  # int() of these fails where the Python function does
        mode, fn, items = "map", int, ["0", "1", "two", "3", "four", "5", "six"]
    outcome = run_chunk(fn, mode, items, stop_on_error=False, catch=Exception, worker="t")  # type: ignore[arg-type]
    assert outcome.results == [0, 1, None, 3, None, 5, None]
    assert [error.offset for error in outcome.errors] == [2, 4, 6]
    assert type(outcome.errors[1].exception) is ValueError
    stopped = run_chunk(fn, mode, items, stop_on_error=True, catch=Exception, worker="t")  # type: ignore[arg-type]
    assert stopped.results == [0, 1]
    assert [error.offset for error in stopped.errors] == [2]
    assert stopped.ran == 3


class _HoldingPlan:
    """Holds the input, with nothing in flight, until its timer has fired once."""

    def __init__(self, backend: Any) -> None:
        from manyhands._core._plan import Placement

        self.decisions: list[Any] = []
        self.placement = Placement(backend, "serial", 0.01, 1)
        self.wake: float | None = 0.0  # due at once
        self.sent_count = 0

    def window(self) -> int:
        return 1

    def place(self, *, force: bool = False) -> Any:
        return self.placement if (force or self.wake is None) else None

    def sent(self, chunk: Any, placement: Any) -> None:
        self.sent_count += 1

    def finished(self, chunk: Any, placement: Any, outcome: Any) -> None:
        # After each chunk, hold again until the timer: nothing is outstanding meanwhile.
        self.wake = 0.0

    def wake_at(self) -> float | None:
        return self.wake

    def tick(self, now: float) -> None:
        self.wake = None


def test_a_plan_holding_the_input_with_nothing_outstanding_does_not_end_the_job() -> None:
    # The engine once took "nothing outstanding" for "finished": auto, holding the input
    # while it measured, ended a map of 8 items after 1 result.
    from manyhands.backends.serial import SerialBackend

    plan = _HoldingPlan(SerialBackend(workers=1))
    assert mapped(plan, lambda x: x * 2, range(5)) == [0, 2, 4, 6, 8]
    assert plan.sent_count == 5


class _TickingPlan:
    """Places every chunk on ``backend``; its timer is due from the start, and ``tick``
    notes how many chunks had finished when it came."""

    def __init__(self, backend: Any) -> None:
        from manyhands._core._plan import Placement

        self.decisions: list[Any] = []
        self.placement = Placement(backend, "scripted", 0.01, 1)
        self.wake: float | None = 0.0  # due at once
        self.finished_count = 0
        self.ticked_after: list[int] = []

    def window(self) -> int:
        return 8

    def place(self, *, force: bool = False) -> Any:
        return self.placement

    def sent(self, chunk: Any, placement: Any) -> None:
        del chunk, placement

    def finished(self, chunk: Any, placement: Any, outcome: Any) -> None:
        self.finished_count += 1

    def wake_at(self) -> float | None:
        return self.wake

    def tick(self, now: float) -> None:
        self.ticked_after.append(self.finished_count)
        self.wake = None


def test_timers_fire_while_outcomes_stream_in() -> None:
    # Outcomes waiting in the inbox kept every timer from firing until they stopped: auto's
    # thread controller went 150 ms without a tick while 250 threads streamed results (and
    # an item's timeout would have waited as long). Here every submit completes at once, so
    # the inbox is never empty until the input is.
    plan = _TickingPlan(ScriptedBackend(release_at=1, order=list))
    assert mapped(plan, lambda x: x + 1, range(200)) == list(range(1, 201))
    assert plan.ticked_after, "the plan's timer never fired"
    assert plan.ticked_after[0] <= 1, plan.ticked_after
