"""The serial backend: every chunk runs in the caller's thread, inside ``submit``.

Reference semantics and debugging: breakpoints, profilers and ``print`` behave as in a loop,
and Ctrl-C or ``sys.exit`` inside the function propagate as they would from a loop.
"""

from __future__ import annotations

from collections.abc import Callable

from .._core._protocol import Capabilities
from .._core._task import Chunk, run_chunk
from .._errors import add_note
from . import _output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["SerialBackend"]


class SerialBackend:
    name = "serial"
    capabilities = Capabilities(synchronous=True, pickles=False, chunk_target=0.01)

    def __init__(
        self,
        *,
        workers: int,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        eager: bool = False,
    ) -> None:
        del workers, eager  # one worker: the caller's thread
        if initializer is not None:
            try:
                initializer(*initargs)
            except Exception as exc:
                add_note(exc, "manyhands: raised by the initializer (serial backend)")
                raise

    @property
    def workers(self) -> int:
        return 1

    def submit(self, chunk: Chunk) -> None:
        if not chunk.claim():
            return
        job = chunk.job
        results: list[Any] = []
        # The caller's own output is left as a loop's, unless tag or capture was asked for.
        lines = _output.lines_for(job.output, own_thread=True)
        with _output.Running(chunk.start, results, "serial", lines) as running:
            outcome = run_chunk(
                job.fn,
                job.mode,
                chunk.items,
                stop_on_error=job.stop_on_error,
                catch=Exception,  # Ctrl-C and sys.exit propagate, as from a loop
                worker="serial",
                timed=job.timed,
                results=results,
            )
        running.finish(outcome, len(chunk.items))
        chunk.complete(outcome)

    def stop(self, chunk: Chunk) -> None:
        """Nothing to stop: a serial chunk has finished by the time ``submit`` returns."""
        del chunk

    def shutdown(self, *, cancel: bool) -> None:
        del cancel
