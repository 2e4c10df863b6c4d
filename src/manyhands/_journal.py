"""The journal: a SQLite file recording every finished item, so that a killed run resumes.

One file holds one job: a function (by module and name) over items (by index and
fingerprint). The engine asks it, batch by batch, what is already final (``recall``) and tells
it what becomes final (``record``); the engine decides when records are written (``flush``),
at most ``FLUSH_AFTER`` seconds after they are made.

    meta   key -> value    format, function, mode, total, seen, created
    runs   one row per run: started, ended, pid, host, state
           (running | finished | stopped | killed)
    items  one row per final item: idx, fingerprint, status (done | failed), result (the
           pickled result, or the pickled exception), kind, error_type, message, traceback,
           exitcode, signal, attempts, duration, worker, finished, run, input (a short repr)

The file is in WAL mode with ``synchronous=NORMAL``: a commit is a write to the WAL file, no
fsync, so it costs tens of microseconds and survives the process being killed (not a power
cut). Readers (``manyhands status``) never block the writer. Two writers are kept apart by the
``runs`` table: a run that finds another run marked running, whose process is still alive,
refuses to start (``JournalInUse``); a run whose process is gone was killed, and is marked so.

Results are pickled: a journal is trusted data, as a pickle file is. Do not open one you did not
write.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._core._failure import Failure
from ._core._store import Recalled
from ._errors import (
    JournalError,
    JournalInUse,
    JournalMismatch,
    RemoteError,
    RemoteTraceback,
    add_note,
    short_repr,
)
from ._fingerprint import fingerprint

__all__ = ["FORMAT", "JournalFile", "connect", "function_identity", "process_alive", "read_meta"]

FORMAT = 2
#: Formats this version opens: format 1 (before ``items.output``) gains the column.
_READS = ("1", "2")

log = logging.getLogger("manyhands")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, started REAL NOT NULL, ended REAL, pid INTEGER NOT NULL,
    host TEXT NOT NULL, state TEXT NOT NULL
);
CREATE TABLE items (
    idx INTEGER PRIMARY KEY, fingerprint BLOB NOT NULL, status TEXT NOT NULL, result BLOB,
    kind TEXT, error_type TEXT, message TEXT, traceback TEXT, exitcode INTEGER,
    signal INTEGER, attempts INTEGER NOT NULL, duration REAL, worker TEXT,
    finished REAL NOT NULL, run INTEGER NOT NULL, input TEXT, output TEXT
);
CREATE INDEX items_by_status ON items (status);
"""

_INSERT = "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

_RECALL = (
    "SELECT idx, fingerprint, status, result, kind, error_type, message, traceback, exitcode, "
    "signal, attempts, duration, input, output FROM items WHERE idx >= ? AND idx < ?"
)


def function_identity(fn: Callable[..., Any]) -> str:
    """How a journal recognises the function: ``module:qualname``, not its code, so that a
    run with a bug fixed can finish the job the bug broke."""
    if isinstance(fn, functools.partial):
        return f"partial({function_identity(fn.func)})"
    named: Any = fn if isinstance(getattr(fn, "__qualname__", None), str) else type(fn)
    return f"{getattr(named, '__module__', None) or '?'}:{named.__qualname__}"


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the journal at ``path``, in autocommit mode (transactions by hand)."""
    if readonly:
        target, uri = f"file:{os.path.abspath(path)}?mode=ro", True
    else:
        target, uri = path, False
    try:
        conn = sqlite3.connect(
            target, timeout=10.0, isolation_level=None, check_same_thread=False, uri=uri
        )
        if not readonly:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        raise JournalError(_unusable(path, exc)) from exc
    return conn


def _unusable(path: str, exc: BaseException) -> str:
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
        return (
            f"journal={path!r} is not a manyhands journal (the file is not a SQLite database); "
            "give the path of a new file, or of a journal an earlier run wrote"
        )
    folder = os.path.dirname(os.path.abspath(path))
    return (
        f"journal={path!r} cannot be opened ({exc}); check that the folder {folder!r} exists "
        "and is writable"
    )


class JournalFile:
    """The store of one job's outcomes; open with ``JournalFile.open``, end with ``close``."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        run: int,
        *,
        retry_failed: bool,
        rerun_changed: bool,
        known: int,
        seen: int,
        total: int | None,
    ) -> None:
        self._conn = conn
        self.path = path
        self._run = run
        self._retry_failed = retry_failed
        self._rerun_changed = rerun_changed
        self._known = known  # one past the highest index recorded when the run began
        self._fingerprints: dict[int, bytes] = {}  # pulled, not final yet
        self._rows: list[tuple[Any, ...]] = []  # recorded, not written yet
        self._seen = seen  # items pulled, by this run or earlier ones
        # The input's length: written with the first records, once its items have matched.
        self._meta = [("seen", "0")] if total is None else [("seen", "0"), ("total", str(total))]
        self._unpicklable_logged = False

    @classmethod
    def open(
        cls,
        path: str,
        *,
        function: str,
        mode: str,
        total: int | None,
        retry_failed: bool,
        mismatch: str,
    ) -> JournalFile:
        """Open (or create) the journal for this job, and mark this run as its writer."""
        conn = connect(path)
        try:
            conn.execute("BEGIN IMMEDIATE")  # one opener at a time, across processes
            try:
                _prepare(conn, path, function=function, mode=mode, mismatch=mismatch)
                run = _claim(conn, path)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            known = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM items").fetchone()[0]
            seen = conn.execute("SELECT value FROM meta WHERE key = 'seen'").fetchone()
        except sqlite3.Error as exc:
            conn.close()
            raise JournalError(_unusable(path, exc)) from exc
        except BaseException:
            conn.close()
            raise
        return cls(
            conn,
            path,
            run,
            retry_failed=retry_failed,
            rerun_changed=mismatch == "rerun",
            known=int(known),
            seen=int(seen[0]) if seen else 0,
            total=total,
        )

    # -- the Store protocol ----------------------------------------------------------------

    def recall(self, start: int, items: Sequence[Any]) -> dict[int, Recalled]:
        prints = [fingerprint(item) for item in items]
        self._seen = max(self._seen, start + len(items))
        if start >= self._known:  # nothing was recorded this far in: the usual case
            self._fingerprints.update(zip(range(start, start + len(items)), prints, strict=True))
            return {}
        found = self._found(start, items, prints)
        # Kept until the item is recorded, for the items that will run (not the settled ones:
        # a resumed run of millions would otherwise hold every fingerprint).
        for offset, print_ in enumerate(prints):
            if offset not in found:
                self._fingerprints[start + offset] = print_
        return found

    def _found(self, start: int, items: Sequence[Any], prints: list[bytes]) -> dict[int, Recalled]:
        found: dict[int, Recalled] = {}
        for row in self._conn.execute(_RECALL, (start, start + len(items))):
            index, print_, status = row[0], row[1], row[2]
            offset = index - start
            if print_ != prints[offset]:
                if self._rerun_changed:
                    continue
                raise JournalMismatch(
                    f"journal {self.path!r} records item {index} as the input {row[12]}, but "
                    f"this run's item {index} is {short_repr(items[offset])}: the items "
                    "changed. Delete the journal to start over, or pass journal=manyhands."
                    "Journal(path, mismatch='rerun') (command line: --rerun-changed) to run the "
                    "changed items again"
                )
            if status == "done":
                result = self._loads(row[3], index)
                if result is not _MISSING:
                    found[offset] = Recalled(True, result)
            elif not self._retry_failed:
                found[offset] = Recalled(False, self._failure(row, items[offset]))
        return found

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
        now = time.time()
        append = self._rows.append
        prints = self._fingerprints
        for offset, (item, result) in enumerate(zip(items, results, strict=False)):
            index = start + offset
            print_ = prints.pop(index, None) or fingerprint(item)
            blob = self._dumps(result, index)
            if blob is None:
                continue
            output = None if outputs is None else outputs.get(offset)
            append(
                (index, print_, "done", blob, None, None, None, None, None, None, attempts,
                 seconds, worker, now, self._run, _describe(item), output)
            )  # fmt: skip

    def record_failure(self, failure: Failure, *, worker: str) -> None:
        exception = failure.exception
        blob = None if exception is None else self._dumps(exception, failure.index, quiet=True)
        index = failure.index
        self._rows.append(
            (index, self._fingerprints.pop(index, None) or fingerprint(failure.item), "failed",
             blob, failure.kind, failure.error_type, failure.message, failure.traceback,
             failure.exitcode,
             failure.signal, failure.attempts, failure.duration, worker, time.time(), self._run,
             _describe(failure.item), failure.output or None)
        )  # fmt: skip

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        conn = self._conn
        try:
            conn.execute("BEGIN")
            conn.executemany(_INSERT, rows)
            self._meta[0] = ("seen", str(self._seen))
            conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", self._meta)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise JournalError(
                f"could not write journal {self.path!r}: {exc} (is the disk full?)"
            ) from exc

    # -- lifetime --------------------------------------------------------------------------

    def close(self, *, finished: bool) -> None:
        """Write what is left and mark the run ended: ``finished``, or stopped before the end."""
        try:
            if self._rows:
                self.flush()
            self._conn.execute(
                "UPDATE runs SET ended = ?, state = ? WHERE id = ?",
                (time.time(), "finished" if finished else "stopped", self._run),
            )
        finally:
            self._conn.close()
            self._fingerprints.clear()

    # -- pickling ----------------------------------------------------------------------------

    def _dumps(self, value: Any, index: int, *, quiet: bool = False) -> bytes | None:
        try:
            return pickle.dumps(value, protocol=5)
        except Exception:
            pass
        try:
            import cloudpickle

            return bytes(cloudpickle.dumps(value, protocol=5))
        except Exception as exc:
            if not quiet and not self._unpicklable_logged:
                self._unpicklable_logged = True
                log.warning(
                    "manyhands: the result of item %d cannot be pickled into journal %r "
                    "(%s: %s), so it is not recorded and runs again on resume; further such "
                    "results are not reported",
                    index,
                    self.path,
                    type(exc).__name__,
                    exc,
                )
            return None

    def _loads(self, blob: bytes | None, index: int) -> Any:
        try:
            return pickle.loads(blob) if blob is not None else _MISSING
        except Exception as exc:
            log.warning(
                "manyhands: the recorded result of item %d in journal %r cannot be unpickled "
                "(%s: %s); it runs again",
                index,
                self.path,
                type(exc).__name__,
                exc,
            )
            return _MISSING

    def _failure(self, row: tuple[Any, ...], item: Any) -> Failure:
        index, kind, type_name, message, text = row[0], row[4], row[5], row[6], row[7]
        exception = self._loads(row[3], index) if row[3] is not None else _MISSING
        if not isinstance(exception, BaseException):
            exception = RemoteError(f"{type_name}: {message}", type_name=type_name)
        if text and exception.__cause__ is None:
            exception.__cause__ = RemoteTraceback(text)
        add_note(
            exception,
            f"manyhands: item {index} failed in an earlier run, as journal {self.path!r} "
            "records; pass journal=manyhands.Journal(path, retry_failed=True) (command line: "
            "--retry-failed) to run it again",
        )
        return Failure(
            index=index,
            item=item,
            kind=kind,
            exception=exception,
            traceback=text or "",
            exitcode=row[8],
            signal=row[9],
            attempts=row[10],
            duration=row[11],
            output=row[13] or "",
        )


_MISSING = object()


def _prepare(
    conn: sqlite3.Connection, path: str, *, function: str, mode: str, mismatch: str
) -> None:
    """Create the tables in a new file, or check that the file records this job."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        for statement in _SCHEMA.split(";"):  # not executescript: it would commit first
            if statement.strip():
                conn.execute(statement)
        created = {"format": FORMAT, "function": function, "mode": mode, "created": time.time()}
        conn.executemany(
            "INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in created.items()]
        )
    else:
        meta = read_meta(conn, path, tables)
        _upgrade(conn, meta)
        recorded = (meta.get("function"), meta.get("mode"))
        if recorded != (function, mode):
            if mismatch != "rerun":
                raise JournalMismatch(
                    f"journal {path!r} records {_job(*recorded)}, not {_job(function, mode)}: "
                    "give another journal file, or pass journal=manyhands.Journal(path, "
                    "mismatch='rerun') (command line: --rerun-changed) to discard its records "
                    "and run every item again"
                )
            conn.execute("DELETE FROM items")
            conn.executemany(
                "UPDATE meta SET value = ? WHERE key = ?", [(function, "function"), (mode, "mode")]
            )


def _job(function: str | None, mode: str | None) -> str:
    return f"{'starmap' if mode == 'star' else 'map'} of {function}"


def read_meta(
    conn: sqlite3.Connection, path: str, tables: set[str] | None = None
) -> dict[str, str]:
    """The journal's meta table; refuses a file that is not a journal of a known format."""
    if tables is None:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    if not {"meta", "runs", "items"} <= tables:
        raise JournalError(
            f"{path!r} is a SQLite database but not a manyhands journal (its tables: "
            f"{', '.join(sorted(tables)) or 'none'}); give the path of a new file"
        )
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") not in _READS:
        raise JournalError(
            f"journal {path!r} has format {meta.get('format')!r}, and this manyhands reads "
            f"formats {', '.join(_READS)}: use the manyhands version that wrote it, or start a "
            "new journal"
        )
    return meta


def _upgrade(conn: sqlite3.Connection, meta: dict[str, str]) -> None:
    """Bring a format 1 journal (an earlier manyhands wrote it) to this format: the items'
    output column, empty for what it recorded."""
    if meta.get("format") == "1":
        conn.execute("ALTER TABLE items ADD COLUMN output TEXT")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'format'", (str(FORMAT),))


def _claim(conn: sqlite3.Connection, path: str) -> int:
    """Refuse when a live run is writing the journal; mark dead ones killed; add this run."""
    host = socket.gethostname()
    for run, started, pid, owner_host in conn.execute(
        "SELECT id, started, pid, host FROM runs WHERE state = 'running'"
    ).fetchall():
        if owner_host != host or process_alive(pid, started):
            where = "this process" if pid == os.getpid() and owner_host == host else f"pid {pid}"
            raise JournalInUse(
                f"journal {path!r} is being written by another run ({where} on {owner_host}, "
                f"since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}); wait "
                "for it to end, or give this run another journal file"
            )
        last = conn.execute("SELECT max(finished) FROM items WHERE run = ?", (run,)).fetchone()[0]
        conn.execute(
            "UPDATE runs SET state = 'killed', ended = ? WHERE id = ?", (last or started, run)
        )
    cursor = conn.execute(
        "INSERT INTO runs (started, pid, host, state) VALUES (?, ?, ?, 'running')",
        (time.time(), os.getpid(), host),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def process_alive(pid: int, started: float) -> bool:
    """Whether the process that started a run at ``started`` still runs (pids are reused)."""
    import psutil

    try:
        return bool(psutil.Process(pid).create_time() <= started + 1.0)
    except psutil.Error:
        return False


def _describe(item: Any) -> str:
    """A short text of the item, for ``manyhands status``."""
    if isinstance(item, str):
        return item if len(item) <= 80 else item[:77] + "..."
    if type(item) is int or type(item) is float:
        return repr(item)
    return short_repr(item)
