"""The backend protocol: the one narrow interface between the engine and an execution strategy.

A backend runs chunks. Ordering, the in-flight window, chunk sizing, error policy, progress and
statistics live once, in the engine above it; a backend only decides *where* a chunk runs.
"""

from __future__ import annotations

from ._records import NamedTuple, Protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._task import Chunk

__all__ = ["Backend", "Capabilities"]


class Capabilities(NamedTuple):
    """What the engine needs to know about a backend to drive it well."""

    #: ``submit`` runs the chunk in the caller's thread before it returns (serial).
    synchronous: bool
    #: Functions, items and results are pickled to reach the workers.
    pickles: bool
    #: Seconds of work a chunk should carry so the per-chunk cost stays a small fraction.
    chunk_target: float


class Backend(Protocol):
    """Runs chunks somewhere. Every method may be called from any thread."""

    name: str
    capabilities: Capabilities

    @property
    def workers(self) -> int:
        """How many chunks can run at once."""
        ...

    def submit(self, chunk: Chunk) -> None:
        """Start ``chunk`` soon, and call ``chunk.report`` once it is done.

        Skips the chunk when ``chunk.claim()`` returns False just before it would start.
        Raises ``SerializationError`` at once when the chunk cannot be sent to a worker.
        Never blocks for long: the engine bounds how many chunks are outstanding.
        """
        ...

    def stop(self, chunk: Chunk) -> str | None:
        """``chunk`` ran past its deadline: free what runs it, at once; return what its item
        wrote so far, where the backend keeps it (its ``Failure.output``).

        A process backend kills the worker (and starts another when work waits), an asyncio
        backend cancels the task, a thread backend abandons the thread (a thread cannot be
        killed) and starts a replacement. The engine has already recorded the timeout; an
        outcome that still arrives for the chunk is ignored.
        """
        ...

    def shutdown(self, *, cancel: bool) -> None:
        """Stop every worker and wait until they are gone.

        With ``cancel=False`` every submitted chunk is run and reported first; with
        ``cancel=True`` queued chunks are dropped and running ones stopped where the backend
        can stop them (processes are killed; threads finish their current chunk).
        """
        ...
