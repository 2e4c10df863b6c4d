"""What one strategy of ``bench`` costs the machine: CPU time and peak memory of the whole
process tree (this process and every process it started), sampled on a thread of its own.

CPU: this process's own time from ``os.times`` (the meter thread's own subtracted) plus, for
each child process, the CPU time last seen by a sample (children are found every other
tick, and their times are cumulative from their start, so only what a child spends after
its last sample is missed). Memory: the proportional set size (PSS: a page shared by N
processes counts 1/N in each, so forked children are not counted twice) where the system
reports it (Linux), else the resident set size; summed over the tree, every tick.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

__all__ = ["Meter", "Usage"]

#: Seconds between samples: about 1% of a core on the development machine.
TICK = 0.05


class Usage:
    """What a measured stretch cost: CPU seconds and the tree's peak memory over its start."""

    __slots__ = ("cpu", "memory")

    def __init__(self, cpu: float, memory: int) -> None:
        self.cpu = cpu
        self.memory = memory


class Meter:
    """``start()``, then ``stop()`` gives the ``Usage`` of the stretch between them."""

    def __init__(self) -> None:
        import psutil  # a core dependency, imported only by bench

        self._psutil = psutil
        self._me = psutil.Process()
        self._children: dict[int, Any] = {}
        self._child_cpu: dict[int, float] = {}
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._own_cpu = 0.0
        self._peak = 0
        self._baseline = 0
        self._started_cpu = 0.0

    def start(self) -> None:
        self._children.clear()
        self._child_cpu.clear()
        self._halt.clear()
        self._own_cpu = 0.0
        self._baseline = self._memory()
        self._peak = self._baseline
        self._started_cpu = _own_times()
        self._thread = threading.Thread(target=self._sample, name="manyhands-bench-meter")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> Usage:
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._tick(find=True)
        cpu = _own_times() - self._started_cpu - self._own_cpu + sum(self._child_cpu.values())
        return Usage(max(0.0, cpu), max(0, self._peak - self._baseline))

    def _sample(self) -> None:
        started = time.thread_time()
        tick = 0
        while not self._halt.wait(TICK):
            self._tick(find=tick % 2 == 0)
            tick += 1
        self._own_cpu = time.thread_time() - started

    def _tick(self, *, find: bool) -> None:
        psutil = self._psutil
        if find:
            try:
                for child in self._me.children(recursive=True):
                    self._children.setdefault(child.pid, child)
            except psutil.Error:
                pass
        for pid, child in list(self._children.items()):
            try:
                with child.oneshot():
                    times = child.cpu_times()
                    self._child_cpu[pid] = times.user + times.system
            except psutil.Error:  # gone: its last sample stands
                del self._children[pid]
        self._peak = max(self._peak, self._memory())

    def _memory(self) -> int:
        total = _size(self._me, self._psutil)
        for child in list(self._children.values()):
            total += _size(child, self._psutil)
        return total


def _size(process: Any, psutil: Any) -> int:
    try:
        if _PSS:
            return int(process.memory_full_info().pss)
        return int(process.memory_info().rss)
    except (psutil.Error, AttributeError):
        return 0


_PSS = os.path.exists("/proc/self/smaps_rollup")


def _own_times() -> float:
    times = os.times()
    return times.user + times.system
