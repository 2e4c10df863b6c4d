"""What a test reads of the machine's shared memory and of this process's descriptors."""

from __future__ import annotations

import os

MiB = 1 << 20


def shm_names() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


def shmem() -> int | None:
    """Bytes of shared memory (tmpfs) in use on the machine (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("Shmem:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def shm_mapped(pid: int | str = "self") -> int | None:
    """Bytes of shared-memory files (``/dev/shm``) process ``pid`` has mapped (Linux), else
    None. Unlike ``shmem()``, nothing another process does changes it."""
    try:
        with open(f"/proc/{pid}/maps", encoding="ascii", errors="replace") as maps:
            total = 0
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith("/dev/shm/"):
                    start, end = (int(end, 16) for end in fields[0].split("-"))
                    total += end - start
            return total
    except OSError:
        return None


def shm_open() -> int | None:
    """Bytes of the shared-memory files (``/dev/shm``) this process holds open (Linux)."""
    if not os.path.isdir("/proc/self/fd"):
        return None
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("/dev/shm/"):
                total += os.stat(f"/proc/self/fd/{fd}").st_size
        except OSError:
            continue  # the directory's own descriptor, or closed meanwhile
    return total
