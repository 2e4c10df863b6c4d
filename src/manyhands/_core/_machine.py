"""What this machine costs: starting worker processes, handing work to a thread, moving bytes.

The planner's decisions depend on these figures, and they differ from machine to machine (a
worker process is ready in 40 ms on one laptop and 250 ms on a loaded two-core VM), so they
are measured here, never assumed from another machine:

* ``handoff``: seconds a round trip to a worker thread costs beyond the item's own run time,
  observed on every probe (the first item of an auto job goes to a thread);
* ``process_start``: seconds from spawning a worker process to its first "ready", observed by
  the process backend each time it starts one (``observe_process_start``);
* ``transfer_rate``: bytes per second through pickle and back, measured once, on first need,
  on a 1 MiB buffer (about a millisecond).

Each is refined by what real jobs observe (the median of the recent observations; for the
hand-off, their least: load only ever adds to it), and
``process_start`` is kept across processes in a small text file under the user's cache folder
(keyed by interpreter and machine), so that a new process does not start from nothing.
The file is never required: a missing, unreadable or unwritable cache only means the figure
is unknown until a job measures it. ``MANYHANDS_CACHE_DIR`` names another folder; set to an
empty string, it turns the file off.

This is the one process-wide record in manyhands (like the CPU count, it describes the machine,
not a job): ``machine()`` returns it, and it is safe to use from any thread.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque

from .._system import available_cpus, gil_enabled

__all__ = ["Machine", "machine"]

#: Observations each figure keeps; its estimate is their median.
_KEEP = 9


class Machine:
    """Measured costs of this machine; every figure is None until something measured it."""

    def __init__(self, *, cache_path: str | None = None, load_cache: bool = True) -> None:
        self.cpus = available_cpus()
        self.gil_enabled = gil_enabled()
        self._lock = threading.Lock()
        self._handoff: deque[float] = deque(maxlen=_KEEP)
        self._process_start: deque[float] = deque(maxlen=_KEEP)
        self._transfer_rate: float | None = None
        self._cache_path = cache_path if cache_path is not None else _default_cache_path()
        self._cache_loaded = not load_cache
        # normpath: one interpreter reached by two spellings of its path is one entry.
        executable = os.path.normpath(sys.executable)
        self._cache_key = f"{executable}|{sys.version.split()[0]}|{self.cpus}"

    # -- figures ---------------------------------------------------------------------------

    @property
    def handoff(self) -> float | None:
        """The least of the recent observations: a hand-off is never faster than it costs,
        and a loaded moment only adds to it (a median of loaded probes once made 30 ms items
        look too short to hand to a thread)."""
        with self._lock:
            return min(self._handoff) if self._handoff else None

    @property
    def process_start(self) -> float | None:
        self._load_cache()
        return self.process_start_seen

    @property
    def process_start_seen(self) -> float | None:
        """``process_start`` from what this process has seen, without reading the cache file
        (a first call that has no use for the figure does not read a file)."""
        with self._lock:
            return _median(self._process_start)

    @property
    def transfer_rate(self) -> float:
        """Bytes per second through ``pickle.dumps`` and ``loads`` (measured on first use)."""
        with self._lock:
            rate = self._transfer_rate
        if rate is None:
            rate = _measure_transfer_rate()
            with self._lock:
                self._transfer_rate = rate
        return rate

    @property
    def transfer_rate_seen(self) -> float | None:
        """``transfer_rate`` if measured already, without measuring it."""
        with self._lock:
            return self._transfer_rate

    def figures(self) -> dict[str, float | int | None]:
        """The measured figures, for ``explain()`` and the decision's evidence."""
        with self._lock:
            rate = self._transfer_rate
        return {
            "cpus": self.cpus,
            "handoff_seconds": self.handoff,
            "process_start_seconds": self.process_start,
            "transfer_bytes_per_second": rate,
        }

    # -- observations ----------------------------------------------------------------------

    def observe_handoff(self, seconds: float) -> None:
        if seconds >= 0:
            with self._lock:
                self._handoff.append(seconds)

    def observe_process_start(self, seconds: float) -> None:
        """A worker process was ready ``seconds`` after it was spawned."""
        if seconds <= 0:
            return
        self._load_cache()
        with self._lock:
            self._process_start.append(seconds)
            recent = list(self._process_start)
        self._save_cache(recent)

    # -- the cache file --------------------------------------------------------------------

    def _load_cache(self) -> None:
        with self._lock:
            if self._cache_loaded:
                return
            self._cache_loaded = True
        path = self._cache_path
        if not path:
            return
        try:
            with open(path, encoding="utf-8") as file:
                entries = _parse_cache(file.read())
        except (OSError, ValueError):
            return
        seen = [value for value in entries.get(self._cache_key, []) if value > 0]
        with self._lock:
            # Older observations first: what this process measures itself comes after them.
            merged = [*seen[-_KEEP:], *self._process_start]
            self._process_start.clear()
            self._process_start.extend(merged[-_KEEP:])

    def _save_cache(self, process_start: list[float]) -> None:
        path = self._cache_path
        if not path or not _safe_key(self._cache_key):
            return
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                with open(path, encoding="utf-8") as file:
                    entries = _parse_cache(file.read())
            except (OSError, ValueError):
                entries = {}
            entries[self._cache_key] = [round(s, 4) for s in process_start]
            # Written whole to a temporary file, then renamed: a reader never sees half a file.
            temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(temporary, "w", encoding="utf-8") as file:
                file.write(_format_cache(entries))
            os.replace(temporary, path)
        except OSError:
            return


#: The cache file's first line; a file without it (another format, another version) is
#: taken as empty and written over.
_CACHE_HEADER = "manyhands machine cache 1"


def _safe_key(key: str) -> bool:
    return "\t" not in key and "\n" not in key and "\r" not in key


def _parse_cache(text: str) -> dict[str, list[float]]:
    """The cache file: its header line, then one line per interpreter, its key, a tab and
    the process start-ups seen, separated by spaces. Plain text rather than JSON: ``json``
    imports ``re``, 11-14 ms here, and the file is read on the first call of a job that
    may move to processes (under a busy GIL, a read that imports modules took 0.45 s)."""
    lines = text.splitlines()
    if not lines or lines[0] != _CACHE_HEADER:
        return {}
    entries: dict[str, list[float]] = {}
    for line in lines[1:]:
        key, tab, values = line.partition("\t")
        if tab:
            entries[key] = [float(value) for value in values.split()]  # ValueError: broken
    return entries


def _format_cache(entries: dict[str, list[float]]) -> str:
    lines = [_CACHE_HEADER]
    lines += [f"{key}\t{' '.join(map(str, values))}" for key, values in entries.items()]
    return "\n".join(lines) + "\n"


def _median(values: deque[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _measure_transfer_rate() -> float:
    """Bytes per second of a pickle round trip of 1 MiB (best of three: the machine's rate,
    not a moment's load)."""
    import pickle

    payload = bytes(1 << 20)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        pickle.loads(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        best = min(best, time.perf_counter() - started)
    # A socket between two processes costs about as much again as the pickle round trip.
    return len(payload) / max(2 * best, 1e-9)


def _default_cache_path() -> str:
    folder = os.environ.get("MANYHANDS_CACHE_DIR")
    if folder is None:
        if sys.platform == "win32":
            base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~")
        elif sys.platform == "darwin":
            base = os.path.expanduser("~/Library/Caches")
        else:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        folder = os.path.join(base, "manyhands")
    return os.path.join(folder, "machine.txt") if folder else ""


_machine: Machine | None = None
_machine_lock = threading.Lock()


def machine() -> Machine:
    """This process's ``Machine`` (made on first use)."""
    global _machine
    with _machine_lock:
        if _machine is None:
            _machine = Machine()
        return _machine
