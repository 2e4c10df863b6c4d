"""``journal_status``: what a journal holds, read without disturbing a run that writes it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ._errors import JournalError
from ._journal import connect, process_alive, read_meta

__all__ = ["JournalItem", "JournalStatus", "journal_status"]


@dataclass(frozen=True)
class JournalItem:
    """One recorded item, as ``journal_status`` lists it (the slowest items, the failures).

    ``input`` is a short text of the item; ``seconds`` its run time (for items that ran in a
    chunk, the chunk's mean); ``error`` is ``"Type: message"`` for a failure, else empty;
    ``output`` what the item wrote (a failure's last lines; every item's with
    ``output="capture"``), else empty.
    """

    index: int
    input: str
    seconds: float | None
    worker: str
    kind: str = ""
    error: str = ""
    attempts: int = 1
    exitcode: int | None = None
    signal: int | None = None
    output: str = ""


@dataclass(frozen=True)
class JournalStatus:
    """What a journal holds: counts, runs, throughput, the slowest items and the failures.

    ``total`` is None when the input had no length (a generator); ``pending`` is then None
    too, and ``seen`` says how many items the runs have pulled so far. ``state`` is that of the
    last run: ``"running"``, ``"finished"``, ``"stopped"`` (an error or Ctrl-C ended it) or
    ``"killed"`` (its process died without closing the journal). ``throughput`` is items
    finished per second of the runs' time.
    """

    path: str
    function: str
    mode: str
    total: int | None
    seen: int
    done: int
    failed: int
    runs: int
    state: str
    elapsed: float
    slowest: tuple[JournalItem, ...]
    failures: tuple[JournalItem, ...]

    @property
    def pending(self) -> int | None:
        return None if self.total is None else max(0, self.total - self.done - self.failed)

    @property
    def throughput(self) -> float | None:
        return (self.done + self.failed) / self.elapsed if self.elapsed > 0 else None

    def __str__(self) -> str:
        call = "starmap" if self.mode == "star" else "map"
        lines = [f"journal {self.path}: {call} of {self.function}"]
        if self.total is None:
            count = f"{self.seen} items seen so far (the input's length is unknown)"
        else:
            count = f"{self.total} items"
        pending = "" if self.pending is None else f", {self.pending} pending"
        lines.append(f"  {count}: {self.done} done, {self.failed} failed{pending}")
        lines.append(f"  {self.runs} run{'s' * (self.runs != 1)}, the last one {self.state}")
        if self.throughput is not None:
            lines.append(
                f"  throughput: {self.throughput:.1f} items/s over {self.elapsed:.1f} s of runs"
            )
        if self.slowest:
            lines.append("  slowest items:")
            lines.extend(
                f"    #{item.index:<6} {_seconds(item.seconds):>9}  {item.input}"
                for item in self.slowest
            )
        if self.failures:
            shown = "" if len(self.failures) == self.failed else f"; the first {len(self.failures)}"
            lines.append(f"  failures ({self.failed}{shown}):")
            for item in self.failures:
                how = ""
                if item.signal is not None:
                    how = f", signal {item.signal}"
                elif item.exitcode is not None:
                    how = f", exit code {item.exitcode}"
                tries = f"{item.attempts} attempt{'s' * (item.attempts != 1)}"
                lines.append(
                    f"    #{item.index:<6} {item.kind:<7} {item.error}  ({tries}{how}; "
                    f"input {item.input})"
                )
                lines.extend(_output_lines(item.output))
        return "\n".join(lines)


def journal_status(path: str | os.PathLike[str], *, limit: int = 10) -> JournalStatus:
    """Read the journal at ``path``: counts, runs, the ``limit`` slowest items and failures.

    Safe while a run writes it (a reader never blocks the writer). Raises ``JournalError``
    when there is no journal at ``path``.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise JournalError(f"there is no journal at {name!r} (no such file)")
    conn = connect(name, readonly=True)
    try:
        conn.execute("BEGIN")  # one consistent snapshot of a journal that may be written
        meta = read_meta(conn, name)
        counts = dict(conn.execute("SELECT status, count(*) FROM items GROUP BY status"))
        runs = conn.execute(
            "SELECT id, started, ended, pid, state FROM runs ORDER BY id"
        ).fetchall()
        elapsed = 0.0
        state = "never run"
        for run, started, ended, pid, state in runs:
            if state == "running" and not process_alive(pid, started):
                state = "killed"
            if ended is None:
                last = conn.execute("SELECT max(finished) FROM items WHERE run = ?", (run,))
                ended = time.time() if state == "running" else last.fetchone()[0] or started
            elapsed += max(0.0, ended - started)
        columns = (
            "idx, input, duration, worker, kind, error_type, message, attempts, exitcode, signal, "
            + ("output" if meta.get("format") != "1" else "NULL")  # written before there was one
        )
        slowest = conn.execute(
            f"SELECT {columns} FROM items WHERE status = 'done' AND duration IS NOT NULL "
            "ORDER BY duration DESC LIMIT ?",
            (limit,),
        ).fetchall()
        failures = conn.execute(
            f"SELECT {columns} FROM items WHERE status = 'failed' ORDER BY idx LIMIT ?", (limit,)
        ).fetchall()
        conn.execute("COMMIT")
    finally:
        conn.close()
    total = meta.get("total")
    return JournalStatus(
        path=name,
        function=meta.get("function", "?"),
        mode=meta.get("mode", "map"),
        total=None if total is None else int(total),
        seen=int(meta.get("seen", "0")),
        done=counts.get("done", 0),
        failed=counts.get("failed", 0),
        runs=len(runs),
        state=state,
        elapsed=elapsed,
        slowest=tuple(_item(row) for row in slowest),
        failures=tuple(_item(row) for row in failures),
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.1f} us"


#: Lines of a failure's output ``JournalStatus`` shows (the last ones).
_SHOWN_LINES = 10


def _output_lines(output: str) -> list[str]:
    if not output:
        return []
    lines = output.rstrip("\n").split("\n")
    shown = lines[-_SHOWN_LINES:]
    head = "output:" if shown == lines else f"output (its last {len(shown)} of {len(lines)} lines):"
    return [f"      {head}", *(f"      | {line}" for line in shown)]


def _item(row: tuple[object, ...]) -> JournalItem:
    index, text, seconds, worker, kind, type_name, message, attempts, exitcode, signal, output = row
    return JournalItem(
        index=int(index),  # type: ignore[call-overload]
        input=str(text),
        seconds=seconds,  # type: ignore[arg-type]
        worker=str(worker or ""),
        kind=str(kind or ""),
        error=f"{type_name}: {message}" if type_name else "",
        attempts=int(attempts),  # type: ignore[call-overload]
        exitcode=exitcode,  # type: ignore[arg-type]
        signal=signal,  # type: ignore[arg-type]
        output=str(output or ""),
    )
