"""Benchmark workloads, importable so that every tool's workers load them by reference."""

from __future__ import annotations

import asyncio
import logging
import time

from planner_workloads import crc, sleep_50ms, spin, square

__all__ = [
    "async_sleep_50ms",
    "calibrate",
    "crc",
    "sleep_50ms",
    "sleep_200ms",
    "spin",
    "spin_logging",
    "square",
]


def sleep_200ms(x: int) -> int:
    """The lecture's slow(x), at a fifth of its sleep."""
    time.sleep(0.2)
    return x


async def async_sleep_50ms(x: int) -> int:
    await asyncio.sleep(0.05)
    return x


def calibrate(seconds: float) -> int:
    """How many ``spin`` iterations take ``seconds`` on this machine (median of 5)."""
    probe = 200_000
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        spin(probe)
        samples.append(time.perf_counter() - started)
    per_iteration = sorted(samples)[2] / probe
    return max(1, round(seconds / per_iteration))


def spin_logging(n: int) -> int:
    """``spin``, after a log line at INFO (the caller's logging is at WARNING: never made)."""
    logging.getLogger("bench").info("spinning %d", n)
    return spin(n)
