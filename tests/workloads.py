"""Functions the tests run in workers; importable, so process workers load them by reference."""

from __future__ import annotations

import os
import threading
import time
import zlib
from pathlib import Path
from typing import Any

STATE: Any = None


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def identity(x: Any) -> Any:
    return x


def crc(data: bytes) -> int:
    return zlib.crc32(data)


def fail_on(bad: set[int]) -> Any:
    def work(x: int) -> int:
        if x in bad:
            raise ValueError(f"item {x} is bad")
        return x

    return work


def fail_at_5(x: int) -> int:
    if x == 5:
        raise KeyError(x)
    return x


def tiny_work(x: int) -> int:
    """A few microseconds of work whose length varies with x."""
    total = 0
    for i in range(x % 37):
        total += i
    return x + total - total


def set_state(value: Any) -> None:
    global STATE
    STATE = value


def get_state(_: Any) -> Any:
    return STATE


def pid_of(_: Any) -> int:
    return os.getpid()


def raise_in_initializer() -> None:
    raise RuntimeError("cannot open the database")


def touch_then_wait(args: tuple[str, float]) -> str:
    """Create a file (the test's signal that work started), then wait for up to ``args[1]``."""
    path, seconds = args
    Path(path).touch()
    time.sleep(seconds)
    return path


def record_thread(_: Any) -> str:
    return threading.current_thread().name


def nap_then_ident(seconds: float) -> int:
    """Sleeps ``seconds`` (0: none, a tiny item); the thread it ran on."""
    if seconds:
        time.sleep(seconds)
    return threading.get_ident()


def return_lock(x: int) -> Any:
    return threading.Lock() if x == 3 else x


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("Unpicklable refuses to be pickled")


class ExceptionWithRequiredArgs(Exception):
    """Pickles, but cannot be unpickled: __init__ needs two arguments, args holds one."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")


def raise_odd_exception(x: int) -> int:
    if x == 2:
        raise ExceptionWithRequiredArgs(42, "no")
    return x


def first_fast_then_slow(x: int) -> int:
    """Item 0 returns at once; every other item sleeps for five minutes."""
    if x:
        time.sleep(300)
    return x


def sleepy(x: int) -> int:
    """Waits 20 ms: a stand-in for a network call."""
    time.sleep(0.02)
    return x


def busy(x: int) -> int:
    """Pure-Python CPU work for about 30 ms."""
    deadline = time.thread_time() + 0.03
    total = 0
    while time.thread_time() < deadline:
        total += 1
    return x


async def async_sleepy(x: int) -> int:
    import asyncio

    await asyncio.sleep(0.001)
    return x


def fast_first_then_busy(x: int) -> int:
    """Item 0 is trivial (the probe says: run it here); the rest burn 30 ms of CPU each."""
    return x if x == 0 else busy(x)


# -- the crash matrix: item 7 misbehaves, every other item returns itself -------------------

RELEASE = threading.Event()  # lets an abandoned thread finish once a test is done


def bad_raise(x: int) -> int:
    if x == 7:
        raise ValueError("item 7 is bad")
    return x


def bad_exit(x: int) -> int:
    if x == 7:
        os._exit(3)
    return x


def bad_sigkill(x: int) -> int:
    if x == 7:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    return x


def bad_segfault(x: int) -> int:
    if x == 7:
        import ctypes

        ctypes.string_at(0)  # reads address 0: SIGSEGV
    return x


def bad_hang(x: int) -> int:
    if x == 7:
        RELEASE.wait(300)  # in a worker process: until it is killed
    return x


async def bad_hang_async(x: int) -> int:
    if x == 7:
        import asyncio

        await asyncio.sleep(300)
    return x


def bad_result(x: int) -> Any:
    return threading.Lock() if x == 7 else x


def calls_logged(args: tuple[str, int]) -> int:
    """Appends a line per call to a file per item; fails the first call of item 3."""
    folder, x = args
    log = Path(folder) / f"{x}.calls"
    with log.open("a") as handle:
        handle.write("call\n")
    if x == 3 and len(log.read_text().splitlines()) == 1:
        raise ConnectionError("first call of item 3 fails")
    return x


def bad_hang_every(x: int) -> int:
    """Every item hangs until RELEASE is set: every thread that runs one is abandoned."""
    RELEASE.wait(300)
    return x


def waits_then_computes(x: int) -> int:
    """The first ten items wait (threads are right); the rest keep the GIL busy for 30 ms."""
    if x < 10:
        time.sleep(0.05)
        return x
    return busy(x)


def counted(args: tuple[str, int]) -> int:
    """Appends ``x`` to FOLDER/calls at each call (so a test counts runs); fails for x < 0."""
    folder, x = args
    with open(Path(folder) / "calls", "a") as handle:
        handle.write(f"{x}\n")
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x


def counted_other(args: tuple[str, int]) -> int:
    """Another function, for journals that must refuse it."""
    return counted(args)


def gated(args: tuple[str, int]) -> int:
    """Item 0 finishes at once; the others wait until FOLDER/open exists."""
    folder, x = args
    if x > 0:
        while not (Path(folder) / "open").exists():
            time.sleep(0.005)  # waits on a file the test creates
    return x


def gated_first(args: tuple[str, int]) -> int:
    """Item 0 waits until FOLDER/open exists; the others finish at once."""
    folder, x = args
    if x == 0:
        while not (Path(folder) / "open").exists():
            time.sleep(0.005)  # waits on a file the test creates
    return x


def marked_gate(args: tuple[str, int]) -> int:
    """Items from 20 on write FOLDER/started-X-PID, then wait until FOLDER/open exists."""
    folder, x = args
    if x >= 20:
        (Path(folder) / f"started-{x}-{os.getpid()}").touch()
        while not (Path(folder) / "open").exists():
            time.sleep(0.005)  # waits on a file the test creates
    return x * x


#: The pid below which ``listening_sockets`` looks: the test that started the job's process.
SOCKETS_BELOW = "MANYHANDS_TEST_SOCKETS_BELOW"


def listening_sockets(_: Any) -> list[list[Any]]:
    """Every listening socket of the process tree the job runs in, as [ip, port, pid].

    The tree's root is this process's ancestor whose parent is the pid in
    ``$MANYHANDS_TEST_SOCKETS_BELOW`` (the test), so a worker reports the caller's whole tree:
    itself, its siblings, a local cluster's scheduler and nannies.
    """
    import psutil

    below = int(os.environ[SOCKETS_BELOW])
    root = psutil.Process()
    while root.ppid() != below:
        root = root.parent()
        assert root is not None, f"pid {below} is not an ancestor of {os.getpid()}"
    found = []
    for process in [root, *root.children(recursive=True)]:
        try:
            sockets = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found += [
            [s.laddr.ip, s.laddr.port, process.pid]
            for s in sockets
            if s.status == psutil.CONN_LISTEN
        ]
    return found


def logs(x: int) -> int:
    """Logs at every level on "tests.worker", and once on "tests.worker.verbose"."""
    import logging

    logger = logging.getLogger("tests.worker")
    logger.debug("debug from item %d", x)
    logger.info("info from item %d", x)
    logger.warning("warning from item %d", x, extra={"lock": threading.Lock()})
    logging.getLogger("tests.worker.verbose").debug("verbose debug from item %d", x)
    if x == 3:
        try:
            raise ValueError("three")
        except ValueError:
            logger.exception("failed on item %d", x)
    return x


def has_logging(_: Any) -> bool:
    """Whether this process has imported ``logging``."""
    import sys

    return "logging" in sys.modules


def prints(x: int) -> int:
    """Prints 50 long lines of one character (a letter per item), and one line to stderr."""
    import sys

    line = "abcdefgh"[x % 8] * 4000
    for _ in range(50):
        print(line)
    print(f"stderr of item {x}", file=sys.stderr)
    return x


def stream_facts(_: Any) -> tuple[bool, bool, bool]:
    """What libraries ask of ``sys.stdout``: is it a terminal, closed, a descriptor behind it."""
    import sys

    return (sys.stdout.isatty(), sys.stdout.closed, sys.stdout.fileno() >= 0)


def says(x: int) -> int:
    """Prints a line in two writes (so a line can only stay whole if it is kept whole), one
    to stderr, and fails on item 3 after printing."""
    import sys

    print(f"item {x} ", end="")
    print("says hello")
    print(f"item {x} on stderr", file=sys.stderr)
    if x == 3:
        raise ValueError("three")
    return x


def dies_after_saying(x: int) -> int:
    """Item 2 writes a line from Python and one straight to descriptor 2 (as C code would),
    then its process ends as a crash would end it."""
    import os

    print(f"python line of item {x}")
    if x == 2:
        os.write(2, b"last words of item 2, from C\n")
        os._exit(9)
    return x


def says_then_waits(gate: Any) -> int:
    """Prints, then blocks until ``gate`` (an Event) is set: to time out after printing."""
    print("started, now stuck")
    gate.wait(60)
    return 0


async def says_async(x: int) -> int:
    """A coroutine that prints half a line, awaits, and prints the rest."""
    import asyncio

    print(f"item {x} ", end="")
    await asyncio.sleep(0)
    print("says hello")
    if x == 3:
        raise ValueError("three")
    return x


async def logs_async(x: int) -> int:
    """``logs``, as a coroutine that awaits before it logs (other items' tasks run then)."""
    import asyncio

    await asyncio.sleep(0)
    return logs(x)


async def async_nap(x: int) -> int:
    """Waits 20 ms on the event loop: a stand-in for an async network call."""
    import asyncio

    await asyncio.sleep(0.02)
    return x


def long_in_a_worker(args: tuple[str, int]) -> int:
    """Sleeps 1.5 s; marks FOLDER/finished when that sleep ended in a process other than
    the caller's (whose pid is the second argument)."""
    folder, caller = args
    time.sleep(1.5)
    if os.getpid() != caller:
        (Path(folder) / "finished").touch()
    return caller


def environment(name: str) -> str | None:
    """The value of the environment variable ``name`` where this runs."""
    return os.environ.get(name)


class Blob:
    """A buffer that pickles out of band under protocol 5, as a numpy array does."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> Any:
        import pickle

        if protocol >= 5:
            return Blob, (pickle.PickleBuffer(self.data),)
        return Blob, (bytes(self.data),)


def reads_blob(blob: Blob) -> Any:
    """A function whose closure holds ``blob``: for each item, what its worker sees of it."""

    def read(x: int) -> tuple[str, str, int, int]:
        data = blob.data
        holder = type(getattr(data, "obj", data)).__name__
        return type(data).__name__, holder, zlib.crc32(data), os.getpid()

    return read


def writes_blob(blob: Blob) -> Any:
    """Writes the item's value into the first byte of ``blob``; returns what it then reads."""

    def write(x: int) -> int:
        blob.data[0] = x
        return int(blob.data[0])

    return write


def blob_seen(blob: Blob) -> tuple[str, str, int, int]:
    """What a worker sees of an item ``blob``: as ``reads_blob``'s function says it."""
    data = blob.data
    holder = type(getattr(data, "obj", data)).__name__
    return type(data).__name__, holder, zlib.crc32(data), os.getpid()


def makes_blob(x: int) -> Blob:
    """A 2 MiB result (out of band under protocol 5), each byte ``x``."""
    return Blob(bytearray([x]) * (2 << 20))


def reads_blob_then_dies_on(blob: Blob, bad: int) -> Any:
    def read(x: int) -> int:
        if x == bad:
            os._exit(3)
        return zlib.crc32(blob.data)

    return read


def reads_handle(handle: Any) -> Any:
    """Per item: the worker's pid, the identity of its copy of the handle's value, its size."""

    def read(x: int) -> tuple[int, int, int]:
        return os.getpid(), id(handle.value), len(handle.value)

    return read


def reads_handle_too(handle: Any) -> Any:
    """Another function over the same handle (another job): what ``reads_handle`` says."""

    def read_too(x: int) -> tuple[int, int, int]:
        return os.getpid(), id(handle.value), len(handle.value)

    return read_too


#: Three items meet here, in one worker process that runs them on threads at once.
MEETING = threading.Barrier(3)


def meets(x: int) -> tuple[int, int, int]:
    """Waits until three items run at once in this process; (item, pid, thread)."""
    print(f"start {x}")
    MEETING.wait(timeout=60)
    print(f"end {x}")
    if x == 1:
        raise ValueError("item 1 is bad")
    return x, os.getpid(), threading.get_ident()


def dies_among_threads(args: tuple[str, int]) -> int:
    """On a first run, items 0-2 meet (they run at once), then item 1 ends its process while
    the other two still run; run again (FOLDER/ran-X exists), an item returns, or item 1
    dies alone. Each run is recorded as FOLDER/ran-X-PID."""
    folder, x = args
    again = (Path(folder) / f"ran-{x}").exists()
    (Path(folder) / f"ran-{x}").touch()
    (Path(folder) / f"ran-{x}-{os.getpid()}").touch()
    if x == 1:
        if not again:
            MEETING.wait(timeout=60)
        os._exit(3)
    if x < 3 and not again:
        MEETING.wait(timeout=60)
        RELEASE.wait(300)  # until item 1 ends the process
    return x


def stdout_ref(_: Any) -> Any:
    """A weak reference to ``sys.stdout`` as an item on a thread of the caller sees it."""
    import sys
    import weakref

    return weakref.ref(sys.stdout)
