"""What a failed item leaves behind (``Failure``) and when it is tried again (``Retry``)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ._task import qualified_name, str_or_repr

__all__ = ["Failure", "Retry"]


@dataclass(frozen=True)
class Failure:
    """An item that failed for good, in its place among the results (``errors="return"``).

    ``kind`` is ``"error"`` (the function raised, or its result could not travel back),
    ``"timeout"`` (it ran past ``timeout=``) or ``"crash"`` (its worker process died; then
    ``exitcode`` or ``signal`` says how). ``exception`` is the original exception where it
    could travel, else None; ``traceback`` is always its text. ``attempts`` counts every
    try, retries included; ``duration`` is the last try's seconds, where measured.
    ``output`` is the end of what the item wrote to ``sys.stdout`` and ``sys.stderr`` (and,
    in a worker process, to its file descriptors 1 and 2) on its last try, up to the last 50
    lines or 8 KiB (all it wrote with ``output="capture"``, up to 1 MiB); empty when it
    wrote nothing, or ran in the caller's own thread with ``output="forward"`` (serial).
    """

    index: int
    item: Any
    kind: str
    exception: BaseException | None
    traceback: str
    exitcode: int | None = None
    signal: int | None = None
    attempts: int = 1
    duration: float | None = None
    output: str = ""

    @property
    def error_type(self) -> str:
        """The exception's class, qualified (``ValueError``, ``manyhands.WorkerCrashed``); for an
        exception that could not travel, the original class's name."""
        exception = self.exception
        if exception is None:
            return self.kind
        name = getattr(exception, "type_name", None) or qualified_name(type(exception))
        return str(name).replace("manyhands._errors.", "manyhands.")

    @property
    def message(self) -> str:
        """The exception's message (the last line of the traceback when it could not travel)."""
        if self.exception is None:
            return self.traceback.strip().rpartition("\n")[2]
        return str_or_repr(self.exception)

    def __repr__(self) -> str:
        what = type(self.exception).__name__ if self.exception is not None else self.kind
        return f"Failure(index={self.index}, kind={self.kind!r}, {what}, attempts={self.attempts})"


@dataclass(frozen=True)
class Retry:
    """Try a failed item again, alone, up to ``attempts`` tries in all.

    The wait before try ``n + 1`` is drawn uniformly from ``[0, min(max_delay, backoff *
    2 ** (n - 1))]`` ("full jitter": retries of many items spread out instead of arriving
    together). Only failures that are instances of ``on`` are retried; timeouts are
    ``manyhands.TaskTimeout`` and crashes ``manyhands.WorkerCrashed``, both Exceptions.
    """

    attempts: int = 3
    backoff: float = 0.1
    max_delay: float = 10.0
    on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        from .._errors import ArgumentTypeError, ArgumentValueError

        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ArgumentTypeError(
                f"Retry(attempts=) must be a whole number >= 1, got {self.attempts!r}"
            )
        if self.attempts < 1:
            raise ArgumentValueError(
                f"Retry(attempts={self.attempts}) must be >= 1 (1 means no retry)"
            )
        for name in ("backoff", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ArgumentValueError(f"Retry({name}=) must be seconds >= 0, got {value!r}")
        on = self.on if isinstance(self.on, tuple) else (self.on,)
        if not on or not all(isinstance(t, type) and issubclass(t, BaseException) for t in on):
            raise ArgumentTypeError(
                f"Retry(on=) must be an exception type or a tuple of them, got {self.on!r}"
            )
        object.__setattr__(self, "on", on)

    def allows(self, exception: BaseException | None, attempts_made: int) -> bool:
        """Whether an item that failed with ``exception`` after ``attempts_made`` tries runs
        again."""
        if attempts_made >= self.attempts:
            return False
        return exception is None or isinstance(exception, self.on)

    def delay(self, attempts_made: int, rng: random.Random) -> float:
        """Seconds to wait before the next try, after ``attempts_made`` tries."""
        ceiling = min(self.max_delay, self.backoff * 2 ** (attempts_made - 1))
        return rng.uniform(0.0, ceiling)
