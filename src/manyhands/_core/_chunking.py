"""How many items the next chunk should carry, decided from measured task durations.

Small chunks spread long tasks over every worker; large chunks spare tiny tasks a round trip
each. Without a measurement the engine sends single items; each finished chunk reports the
seconds it took and the chunker aims the next chunk at ``target`` seconds of work. Four caps
keep that aim honest:

* growth: a chunk is at most twice the previous one, so a lazy consumer of ``imap`` sees its
  first results soon and a misleading early measurement costs little;
* balance: with a known total, a chunk holds at most ``remaining / (2 * workers)`` items, so
  the end of the run still spreads over every worker; but not fewer than an eighth of the
  target's worth, where the per-chunk cost of many tiny last chunks would outweigh the spread
  (a Dask task costs milliseconds: halving down to single items cost 0.2 s of a 1.4 s run);
* count: at most ``max_items``, which bounds the memory held by chunks in flight;
* bytes: where a backend reports how large the pickled items were, at most ``max_bytes``.
"""

from __future__ import annotations

import math

__all__ = ["Chunker"]


class Chunker:
    def __init__(
        self,
        *,
        workers: int,
        target: float,
        fixed: int | None = None,
        max_items: int = 8192,
        max_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self._workers = workers
        self._target = target
        self._fixed = fixed
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._last = 0
        self._items_measured = 0
        self._seconds_measured = 0.0
        self._bytes_per_item = 0.0

    def retarget(self, *, workers: int, target: float) -> None:
        """Follow a backend whose worker count or per-chunk target changed."""
        self._workers = workers
        self._target = target

    @property
    def seconds_per_item(self) -> float | None:
        """The mean measured wall time of one item, or None before any measurement."""
        if self._items_measured == 0:
            return None
        return self._seconds_measured / self._items_measured

    def observe(self, items: int, seconds: float) -> None:
        """Record that a chunk of ``items`` items took ``seconds`` to run."""
        if items > 0:
            self._items_measured += items
            self._seconds_measured += seconds

    def observe_bytes(self, items: int, nbytes: int) -> None:
        """Record the pickled size of ``items`` items (process and remote backends)."""
        if items > 0:
            per_item = nbytes / items
            self._bytes_per_item = max(self._bytes_per_item * 0.5, per_item)

    def next_size(self, remaining: int | None) -> int:
        """The size of the next chunk; ``remaining`` is the count of items left, if known."""
        if self._fixed is not None:
            return self._fixed
        per_item = self.seconds_per_item
        floor = 1
        if per_item is None:
            size = 1
        else:
            # min() before int(): a tiny measured time (even a subnormal float) gives inf.
            ideal = self._target / per_item if per_item > 0 else float(self._max_items)
            size = min(max(1, int(min(ideal, self._max_items))), max(1, 2 * self._last))
            if self._bytes_per_item > 0:
                size = min(size, max(1, int(self._max_bytes / self._bytes_per_item)))
            floor = max(1, int(min(ideal / 8, size)))
        if remaining is not None:
            size = min(size, max(floor, math.ceil(remaining / (2 * self._workers))))
        self._last = size
        return size

    def expected_seconds(self, items: int) -> float | None:
        """How long a chunk of ``items`` items should take, or None before any measurement."""
        per_item = self.seconds_per_item
        return None if per_item is None else per_item * items
