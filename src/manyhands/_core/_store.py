"""The store protocol: how the engine asks a durable record (the journal) what is already done.

The engine pulls a batch of items and asks the store to ``recall`` it: items the store holds a
final outcome for are settled from it and never run; the others run as usual. Every item that
becomes final is ``record``ed; the engine decides when buffered records are written
(``flush``), so that one policy bounds the work at risk for every store.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._records import NamedTuple, Protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._failure import Failure

__all__ = ["Recalled", "Store"]


class Recalled(NamedTuple):
    """A final outcome the store already holds: the result, or the ``Failure``."""

    ok: bool
    value: Any


class Store(Protocol):
    """Durable outcomes of one job's items, by index. Called only from the engine's thread."""

    def recall(self, start: int, items: Sequence[Any]) -> dict[int, Recalled]:
        """Outcomes already held for ``items`` (indices ``start...``), by offset in ``items``.

        Raises when the store's record of an item does not match the item given.
        """
        ...

    def record(
        self,
        start: int,
        items: Sequence[Any],
        results: Sequence[Any],
        *,
        worker: str,
        seconds: float,
        attempts: int = 1,
        outputs: dict[int, str] | None = None,
    ) -> None:
        """``items`` (indices ``start...``) ran to ``results``, ``seconds`` each on average;
        ``outputs``: what items wrote, by offset from ``start``, where kept."""
        ...

    def record_failure(self, failure: Failure, *, worker: str) -> None:
        """An item failed for good."""
        ...

    def flush(self) -> None:
        """Make every record so far durable."""
        ...
