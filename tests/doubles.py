"""Test doubles for driving the engine directly: a fake clock and an inline backend."""

from __future__ import annotations

from manyhands._core._protocol import Capabilities
from manyhands._core._task import Chunk, ChunkOutcome, run_chunk


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Inline:
    """Runs each chunk at once (like serial) but as a backend that reports asynchronously."""

    name = "inline"
    capabilities = Capabilities(synchronous=False, pickles=False, chunk_target=0.01)
    workers = 2

    def __init__(self) -> None:
        self.outcomes: list[tuple[Chunk, ChunkOutcome]] = []

    def submit(self, chunk: Chunk) -> None:
        chunk.claim()
        outcome = run_chunk(
            chunk.job.fn, "map", chunk.items, stop_on_error=False, catch=Exception, worker="w"
        )
        self.outcomes.append((chunk, outcome))

    def stop(self, chunk: Chunk) -> None:
        pass

    def shutdown(self, *, cancel: bool) -> None:
        pass
