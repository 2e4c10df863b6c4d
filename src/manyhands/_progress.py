"""The progress bar: a listener that counts items on a tqdm bar (a widget in notebooks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._core._decision import Decision

__all__ = ["ProgressBar"]


class ProgressBar:
    def __init__(self, description: str) -> None:
        self._description = description
        self._bar: Any = None
        self._failed = 0
        self._resumed = 0

    @classmethod
    def for_function(cls, fn: Callable[..., Any]) -> ProgressBar:
        """A bar described by the function's name."""
        return cls(str(getattr(fn, "__name__", type(fn).__name__)))

    def started(self, total: int | None) -> None:
        from tqdm.auto import tqdm  # imported here: a notebook check that costs on import

        class Bar(tqdm):  # type: ignore[type-arg]
            # tqdm's monitor thread outlives every bar (it is process-wide); the bar is
            # updated once per chunk, which is all the refreshing it needs.
            monitor_interval = 0

        self._bar = Bar(total=total, desc=self._description, unit="item", dynamic_ncols=True)

    def decided(self, decision: Decision) -> None:
        workers = "" if decision.workers is None else f" x{decision.workers}"
        self._bar.set_description(f"{self._description} [{decision.backend}{workers}]")

    def advanced(self, *, done: int, failed: int, busy: float, worker: str) -> None:
        if failed:
            self._failed += failed
            self._bar.set_postfix(failed=self._failed, refresh=False)
        self._bar.update(done + failed)

    def recalled(self, *, done: int, failed: int) -> None:
        # Finished in an earlier run: counted, so that the bar shows the whole job.
        self._resumed += done + failed
        self._bar.set_postfix(resumed=self._resumed, refresh=False)
        self._bar.update(done + failed)

    def finished(self) -> None:
        if self._bar is not None:
            self._bar.close()
