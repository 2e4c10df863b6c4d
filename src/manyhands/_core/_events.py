"""Listeners: how progress bars and statistics follow a job."""

from __future__ import annotations

from ._decision import Decision
from ._records import Protocol

__all__ = ["Listener"]


class Listener(Protocol):
    """Told, in the caller's thread, how a job advances. Must be quick and must not raise."""

    def started(self, total: int | None) -> None:
        """The job begins; ``total`` is the number of items when the input has a length."""

    def decided(self, decision: Decision) -> None:
        """The backend chose where the job runs (``backend="auto"``), or revised it."""

    def advanced(self, *, done: int, failed: int, busy: float, worker: str) -> None:
        """Items became final: ``done`` with a result, ``failed`` for good (after retries).

        ``busy`` is the seconds ``worker`` spent on the outcome that made them final.
        """

    def recalled(self, *, done: int, failed: int) -> None:
        """Items were found final in the journal (an earlier run's outcome); they do not run."""

    def finished(self) -> None:
        """The job ended: all results delivered, an error raised, or the consumer stopped."""
