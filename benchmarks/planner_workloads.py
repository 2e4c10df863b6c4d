"""The auto planner's benchmark workloads: lean imports, so no tool's clock pays for another's.

Importable by every tool's workers by reference. Each function is what a user would write.
"""

from __future__ import annotations

import hashlib
import time
import urllib.request
import zlib

#: Set by the case runner before the clock starts: where the local HTTP server listens.
URL = ""


def spin(iterations: int) -> int:
    """Pure-Python CPU work: ``iterations`` additions."""
    total = 0
    for i in range(iterations):
        total += i
    return total


def square(x: int) -> int:
    return x * x


def crc(data: bytes) -> int:
    return zlib.crc32(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compress(data: bytes) -> int:
    return len(zlib.compress(data))


def sleep_50ms(x: int) -> int:
    time.sleep(0.05)
    return x


def fetch(url: str) -> int:
    """One HTTP GET with urllib, as a script would write it."""
    with urllib.request.urlopen(url, timeout=60) as response:
        return len(response.read())
