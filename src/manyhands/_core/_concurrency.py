"""Adaptive concurrency for waiting work: add threads while it pays, shed when it hurts.

A pure state machine, ticked with explicit times and counters so that tests drive it with a
fake clock. The auto router ticks it every ``interval`` seconds while items wait for a slot.

* Grow: while items wait for a slot, the process uses little CPU and latency holds, the
  limit doubles each tick (up to ``cap``). Waiting work gains from every slot until something
  saturates, so a burst of slow calls starts within a few ticks.
* Check: every ``max(2 x latency, 3 ticks)`` the throughput since the last check is compared
  with the one before. If the limit grew meanwhile and throughput rose by less than ``GAIN``,
  the extra slots bought nothing: growth stops and the limit goes back to where it was.
* Shed: when latency climbs past ``LATENCY_LIMIT`` times the best seen (the far end is
  saturated), the limit is cut by a quarter and growth stops.
* When the process's CPU use reaches ``CPU_BUSY`` of one core on two ticks in a row, more
  threads only contend for the GIL: growth stops. (One busy tick is often just the cost of
  starting the threads the last doubling asked for.)
"""

from __future__ import annotations

__all__ = ["ConcurrencyController"]

GAIN = 1.10
LATENCY_LIMIT = 1.5
CPU_BUSY = 0.8


class ConcurrencyController:
    def __init__(self, *, start: int, cap: int, interval: float = 0.005) -> None:
        self.limit = max(1, min(start, cap))
        self.cap = cap
        self.interval = interval
        self.growing = True
        self._last: tuple[float, float] | None = None  # time, cpu seconds at the last tick
        self._best_latency: float | None = None
        self._busy_ticks = 0
        # The last throughput check: when, completed items then, limit then, throughput.
        self._check: tuple[float, int, int, float | None] | None = None

    def tick(
        self,
        *,
        now: float,
        completed: int,
        cpu_seconds: float,
        latency: float | None,
        backlog: bool,
    ) -> int:
        """Take the counters at ``now``; return the new limit.

        ``completed`` and ``cpu_seconds`` are running totals (items finished, process CPU
        time); ``latency`` is the mean seconds per item finished since the last tick (None if
        none); ``backlog`` says whether items are waiting for a slot.
        """
        last, self._last = self._last, (now, cpu_seconds)
        if last is None or now <= last[0]:
            self._check = (now, completed, self.limit, None)
            return self.limit
        busy = (cpu_seconds - last[1]) / (now - last[0]) >= CPU_BUSY
        self._busy_ticks = self._busy_ticks + 1 if busy else 0
        if self._busy_ticks >= 2:
            self.growing = False
        if latency is not None:
            if self._best_latency is None or latency < self._best_latency:
                self._best_latency = latency
            elif latency > LATENCY_LIMIT * self._best_latency:
                self.limit = max(1, (self.limit * 3) // 4)
                self.growing = False
                return self.limit
        if self._best_latency is not None and self._throughput_check(now, completed):
            return self.limit
        if self.growing and backlog and self.limit < self.cap:
            self.limit = min(self.cap, self.limit * 2)
        return self.limit

    def _throughput_check(self, now: float, completed: int) -> bool:
        """Compare throughput with the last check's; True when it reverted the limit."""
        assert self._best_latency is not None
        assert self._check is not None
        since, done_then, limit_then, throughput_then = self._check
        if now - since < max(2 * self._best_latency, 3 * self.interval):
            return False
        throughput = (completed - done_then) / (now - since)
        self._check = (now, completed, self.limit, throughput)
        grew = self.limit > limit_then
        if throughput_then is not None and grew and throughput < GAIN * throughput_then:
            self.growing = False
            self.limit = limit_then
            return True
        return False
