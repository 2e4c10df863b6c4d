"""Plans: which backend the engine's next chunk goes to, how large it is, how many are out.

The engine asks its plan before every chunk (``place``), tells it every outcome
(``finished``), and wakes it on its own timer heap (``wake_at`` / ``tick``). A plan never waits
and is only ever called from the engine's thread, so it needs no lock.

* ``FixedPlan``: one backend the caller named; the window is ``max(4, 3 x workers)`` chunks
  (one for a backend that runs chunks in the caller's thread).
* ``AutoPlan`` (``_auto.py``): ``backend="auto"``, which measures, decides, keeps checking
  the decision, and sets how many chunks are in flight on each backend it uses.
"""

from __future__ import annotations

from ._decision import Decision
from ._protocol import Backend
from ._records import NamedTuple, Protocol
from ._task import Chunk, ChunkOutcome

__all__ = ["FixedPlan", "Placement", "Plan", "as_plan"]


class Placement(NamedTuple):
    """Where one chunk goes: the backend, its name, the seconds of work a chunk should carry
    there, and how many workers share the work (the chunker's balance cap)."""

    backend: Backend
    kind: str
    target: float
    workers: int


class Plan(Protocol):
    #: Every decision made so far, in order (an explicit backend makes none).
    decisions: list[Decision]

    def window(self) -> int:
        """How many chunks' worth of results may be started and not yet delivered."""
        ...

    def place(self, *, force: bool = False) -> Placement | None:
        """Where the next chunk goes; None: nothing more may be sent now (hold the input).

        ``force``: a chunk that must go now whatever the limits (a retry, the items of a
        crashed chunk), since its slot is already started.
        """
        ...

    def sent(self, chunk: Chunk, placement: Placement) -> None:
        """``chunk`` was submitted where ``place`` said."""
        ...

    def finished(self, chunk: Chunk, placement: Placement, outcome: ChunkOutcome | None) -> None:
        """``chunk`` is done (``outcome`` None: it was stopped, past its deadline)."""
        ...

    def wake_at(self) -> float | None:
        """When the plan wants ``tick`` (the engine's clock), or None."""
        ...

    def tick(self, now: float) -> None:
        """The time ``wake_at`` asked for has come."""
        ...


class FixedPlan:
    """A backend the caller named: everything goes there, under the usual window."""

    def __init__(self, backend: Backend) -> None:
        self.decisions: list[Decision] = []
        capabilities = backend.capabilities
        workers = backend.workers
        self._placement = Placement(backend, backend.name, capabilities.chunk_target, workers)
        # In the caller's thread a second outstanding chunk would only run early; elsewhere
        # three chunks per worker keep every worker fed while one result waits its turn.
        self._window = 1 if capabilities.synchronous else max(4, 3 * workers)

    def window(self) -> int:
        return self._window

    def place(self, *, force: bool = False) -> Placement:
        del force
        return self._placement

    def sent(self, chunk: Chunk, placement: Placement) -> None:
        del chunk, placement

    def finished(self, chunk: Chunk, placement: Placement, outcome: ChunkOutcome | None) -> None:
        del chunk, placement, outcome

    def wake_at(self) -> None:
        return None

    def tick(self, now: float) -> None:
        del now


def as_plan(target: Backend | Plan) -> Plan:
    """``target`` itself when it is a plan, else a ``FixedPlan`` over the backend."""
    if hasattr(target, "place"):
        return target  # type: ignore[return-value]  # a plan: it has place
    return FixedPlan(target)
