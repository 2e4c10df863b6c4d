"""Pool statistics: a listener that counts items and busy time, and the frozen record it gives."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ._core._decision import Decision
from ._core._task import ChunkOutcome

__all__ = ["PoolStatistics", "StatisticsRecorder"]


@dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of what a Pool has done since it was created."""

    #: The backends that ran work, in the order they were first used.
    backends: tuple[str, ...]
    #: Items that ran to a result.
    items_done: int
    #: Items that failed (raised, or their worker died).
    items_failed: int
    #: Seconds each worker spent running items, by worker name.
    busy: Mapping[str, float]
    #: Seconds since the Pool was created.
    elapsed: float
    #: Where each ``map`` of ``backend="auto"`` ran and why, in the order they were made
    #: (a revision follows the decision it revises).
    decisions: tuple[Decision, ...] = ()

    @property
    def utilisation(self) -> float:
        """Busy time over elapsed time, summed over workers (2.0: two workers always busy)."""
        return sum(self.busy.values()) / self.elapsed if self.elapsed > 0 else 0.0


class StatisticsRecorder:
    """Thread-safe counters; ``record`` is called for every finished chunk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._backends: list[str] = []
        self._done = 0
        self._failed = 0
        self._busy: dict[str, float] = {}
        self._decisions: list[Decision] = []

    def used(self, backend: str) -> None:
        with self._lock:
            if backend not in self._backends:
                self._backends.append(backend)

    def record(self, outcome: ChunkOutcome) -> None:
        """A ``submit()``ed call finished."""
        failed = len(outcome.errors)
        self.advanced(
            done=outcome.ran - failed, failed=failed, busy=outcome.busy, worker=outcome.worker
        )

    def snapshot(self) -> PoolStatistics:
        with self._lock:
            return PoolStatistics(
                backends=tuple(self._backends),
                items_done=self._done,
                items_failed=self._failed,
                busy=MappingProxyType(dict(self._busy)),
                elapsed=time.perf_counter() - self._started,
                decisions=tuple(self._decisions),
            )

    # Listener protocol: the engine tells it about every chunk of a map.
    def started(self, total: int | None) -> None:
        del total

    def decided(self, decision: Decision) -> None:
        with self._lock:
            self._decisions.append(decision)

    def advanced(self, *, done: int, failed: int, busy: float, worker: str) -> None:
        with self._lock:
            self._done += done
            self._failed += failed
            if worker:
                self._busy[worker] = self._busy.get(worker, 0.0) + busy

    def recalled(self, *, done: int, failed: int) -> None:
        pass  # found in a journal: they did not run here

    def finished(self) -> None:
        pass
