"""Adaptive concurrency for waiting work: how many items the planner keeps in flight on threads.

A pure state machine, ticked with explicit times and counters, so that tests drive it with a
fake clock. The auto planner ticks it from the engine's timers while items wait for a slot.

* Start where Little's law says: an item that waits ``W`` seconds and computes ``C`` keeps one
  GIL busy at ``W / C`` items in flight, so that width (capped) is where growth begins.
* Grow: while items wait for a slot and the work does not keep the GIL busy, the limit doubles
  each tick (up to ``cap``). No completion is needed to justify growth: waiting work gains from
  every slot until something saturates.
* Check: every ``max(2 x latency, 3 ticks)`` the throughput since the last check is compared
  with the one before. Growth that bought less than ``GAIN`` more is undone, and the limit
  stays under that width for a while (``HOLD_CHECKS`` checks, doubled after each failed try);
  a backlog that persists then tries growing again.
* GIL: the CPU the items themselves used (the sum of their threads' CPU time, so the cost of
  starting threads, which the old rule mistook for work, is not counted) per second of wall
  time over the last few ticks. At ``GIL_SATURATED`` of a core, more threads only queue for
  the GIL: growth holds until it is not.
* Once the GIL has been the limit, growth waits for ``CLEAR_TICKS`` judgements in a row
  under ``GIL_SATURATED``: the reading is noisy (a sample of the running threads), and one low
  tick between busy ones doubled the threads each time, from 256 to 1,024 on one CPU, where
  starting them cost the CPU the requests needed.
* Shed: latency past ``LATENCY_LIMIT`` times the best seen while the items use less than
  ``GIL_FREE`` of a core (so the GIL is not why) means the far end is saturated: the limit is
  cut by a quarter, at most once per two latencies, and held there for a while.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["ConcurrencyController", "littles_law_width"]

GAIN = 1.10
LATENCY_LIMIT = 1.5
GIL_SATURATED = 0.85
#: Below this share of a core the GIL cannot be why latency grew: only then does it shed.
GIL_FREE = 0.5
HOLD_CHECKS = 4
#: Judgements in a row under GIL_SATURATED that growth needs, once the GIL has been the limit.
CLEAR_TICKS = 2


def littles_law_width(seconds: float, cpu: float, *, cap: int, floor: int = 8) -> int:
    """Items in flight at which waiting work of ``seconds`` wall and ``cpu`` CPU per item
    keeps one GIL busy: ``seconds / cpu``, within ``[floor, cap]``."""
    if cpu <= 0 or seconds <= 0:
        return cap
    return max(min(floor, cap), min(cap, math.ceil(seconds / cpu)))


class ConcurrencyController:
    def __init__(self, *, start: int, cap: int, interval: float = 0.01) -> None:
        self.limit = max(1, min(start, cap))
        self.cap = cap
        self.interval = interval
        #: The items kept the GIL busy over the last ticks: growth waits.
        self.saturated = False
        #: ``saturated`` has been judged over a whole span: growth waits until then, since an
        #: item that has just started has used no CPU yet, whatever it is about to do.
        self._gil_judged = False
        #: Judgements under GIL_SATURATED in a row since the GIL was last the limit (as many
        #: as growth needs until it first is).
        self._clear = CLEAR_TICKS
        self._cpu_samples: deque[tuple[float, float]] = deque()  # (time, work CPU)
        self._ceiling: int | None = None  # growth stays at or under this while _hold > 0
        self._hold = 0
        self._hold_length = HOLD_CHECKS
        self._best_latency: float | None = None
        #: The items' CPU per second of wall, as last measured (None: not yet).
        self.gil_rate: float | None = None
        #: No second cut before this: latency measured meanwhile is of items started before.
        self._next_cut = 0.0
        # The last throughput check: when, completed items then, limit then, throughput then.
        self._check: tuple[float, int, int, float | None] | None = None

    def tick(
        self,
        *,
        now: float,
        completed: int,
        work_cpu: float,
        latency: float | None,
        backlog: bool,
        running_rate: float | None = None,
    ) -> int:
        """Take the counters at ``now``; return the new limit.

        ``completed`` and ``work_cpu`` are running totals (items finished, CPU seconds their
        own threads spent on them); ``latency`` is the mean seconds per item finished since the
        last tick (None if none finished); ``backlog`` says whether items wait for a slot.
        ``running_rate``: CPU per second the items running now use together, where known.
        """
        if self._check is None:
            self._check = (now, completed, self.limit, None)
        judged = self._track_gil(now, work_cpu)
        if running_rate is not None:
            judged = self._gil_judged = True
            self.saturated = self.saturated or running_rate >= GIL_SATURATED
            self.gil_rate = max(self.gil_rate or 0.0, running_rate)
        if judged:
            self._clear = 0 if self.saturated else self._clear + 1
        if latency is not None and latency > 0:
            if self._best_latency is None or latency < self._best_latency:
                self._best_latency = latency
            elif (
                latency > LATENCY_LIMIT * self._best_latency
                and self.gil_rate is not None
                and self.gil_rate < GIL_FREE
                and now >= self._next_cut
            ):
                # The far end is saturated. Not when the items' CPU is near a core: then the
                # GIL stretched the latency (HTTP at 0.5 ms of CPU a request, with the rate
                # hovering around 85%, was once cut from 1,024 to 4 in 0.8 s). And once per
                # two latencies: the items finished meanwhile started before the cut.
                self._cut(max(1, (self.limit * 3) // 4))
                self._next_cut = now + 2 * self._best_latency
                self._check = (now, completed, self.limit, None)
                return self.limit
        self._maybe_check(now, completed)
        clear = not self.saturated and self._clear >= CLEAR_TICKS
        if backlog and self._gil_judged and clear and self.limit < self.cap:
            ceiling = self.cap if self._hold <= 0 else (self._ceiling or self.cap)
            if self.limit < ceiling:
                self.limit = min(ceiling, self.limit * 2)
        return self.limit

    def at_least(self, width: int) -> int:
        """Raise the limit to ``width`` (what Little's law says from finished items), unless
        the GIL is the limit or a cut holds it back; return the limit."""
        if not self.saturated and self._hold <= 0 and width > self.limit:
            self.limit = min(self.cap, width)
        return self.limit

    def _maybe_check(self, now: float, completed: int) -> None:
        assert self._check is not None
        since, done_then, limit_then, throughput_then = self._check
        span = max(2 * (self._best_latency or 0.0), 3 * self.interval)
        if now - since < span or self._best_latency is None:
            return
        elapsed = now - since
        throughput = (completed - done_then) / elapsed
        self._hold -= 1
        self._check = (now, completed, self.limit, throughput)
        grew = self.limit > limit_then
        if throughput_then is not None and grew and throughput < GAIN * throughput_then:
            self._cut(limit_then)
            self._check = (now, completed, self.limit, throughput)
        elif self._hold <= 0 and self._ceiling is not None and not grew:
            self._ceiling = None  # the hold is over: a persisting backlog may grow again

    def _track_gil(self, now: float, work_cpu: float) -> bool:
        """``saturated``: the items' CPU per second over the last three ticks or more; True
        when judged at this tick."""
        samples = self._cpu_samples
        samples.append((now, work_cpu))
        span = 3 * self.interval
        while len(samples) > 2 and now - samples[1][0] >= span:
            samples.popleft()
        then, cpu_then = samples[0]
        if now - then >= span * 0.999:
            rate = (work_cpu - cpu_then) / (now - then)
            self.saturated = rate >= GIL_SATURATED
            self.gil_rate = rate
            self._gil_judged = True
            return True
        return False

    def _cut(self, limit: int) -> None:
        """Go back to ``limit`` and stay there for a while; each failed try holds longer."""
        self.limit = limit
        self._ceiling = limit
        self._hold = self._hold_length
        self._hold_length = min(64, self._hold_length * 2)
