"""Checking the caller's arguments, and the defaults that depend on the backend.

Every message names the parameter, the value given, what is accepted, and the usual fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from ._core._engine import DEFAULT_POLICY, Policy
from ._core._records import NamedTuple
from ._core._task import Job
from ._errors import ArgumentTypeError, ArgumentValueError, short_repr
from ._system import available_cpus
from .backends import BACKEND_NAMES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._core._failure import Retry
    from ._core._task import Mode
    from ._journal import Journal

__all__ = [
    "BACKEND_CHOICES",
    "JournalOptions",
    "RunOptions",
    "check_fn",
    "check_items",
    "check_where",
    "default_workers",
]


class JournalOptions(NamedTuple):
    """Where a map records its finished items, and what a resumed run does with failures."""

    path: str
    retry_failed: bool = False
    #: "raise": a journal of another job is refused; "rerun": its mismatched records run again.
    mismatch: str = "raise"

    def open(self, fn: Callable[..., Any], mode: Mode, total: int | None) -> Journal:
        from ._journal import Journal, function_identity  # sqlite3 only when a journal is used

        return Journal.open(
            self.path,
            function=function_identity(fn),
            mode=mode,
            total=total,
            retry_failed=self.retry_failed,
            mismatch=self.mismatch,
        )


BACKEND_CHOICES: tuple[str, ...] = BACKEND_NAMES


class RunOptions(NamedTuple):
    """The per-call options of map/imap/starmap, checked."""

    ordered: bool = True
    chunksize: int | None = None
    progress: bool = False
    policy: Policy = DEFAULT_POLICY
    journal: JournalOptions | None = None
    #: Deliver ``(index, result)`` pairs (imap and istarmap).
    indexed: bool = False

    @classmethod
    def checked(
        cls,
        *,
        ordered: object = True,
        chunksize: object = None,
        progress: object = False,
        errors: object = "raise",
        timeout: object = None,
        retries: object = 0,
        memory_floor: object = None,
        journal: object = None,
        retry_failed: object = False,
        journal_mismatch: object = "raise",
        indexed: object = False,
        backend: str = "auto",
    ) -> RunOptions:
        size = check_positive_int("chunksize", chunksize, allow_none=True)
        limit = check_timeout(timeout)
        if limit is not None and size is not None:
            raise ArgumentValueError(
                f"timeout={limit:g} is per item, so items travel one at a time; "
                f"chunksize={size} cannot apply: drop chunksize="
            )
        if limit is not None and backend == "serial":
            raise ArgumentValueError(
                f"timeout={limit:g} needs a worker that can be stopped, and backend='serial' "
                "runs in your own thread: use backend='thread', 'process' or 'asyncio'"
            )
        policy = Policy(
            errors=check_errors(errors),
            retry=check_retries(retries),
            timeout=limit,
            memory_floor=check_memory_floor(memory_floor),
        )
        return cls(
            ordered=check_bool("ordered", ordered),
            chunksize=size,
            progress=check_bool("progress", progress),
            policy=policy,
            journal=check_journal(journal, retry_failed, journal_mismatch),
            indexed=check_bool("indexed", indexed),
        )

    @property
    def engine(self) -> dict[str, Any]:
        """The options the engine's drivers take, as keywords."""
        return {
            "ordered": self.ordered,
            "chunksize": self.chunksize,
            "policy": self.policy,
            "indexed": self.indexed,
        }

    def job(self, fn: Callable[..., Any], mode: Mode) -> Job:
        """The job record a map with these options runs."""
        policy = self.policy
        timed = policy.errors == "return" or policy.retry is not None
        return Job(
            fn,
            mode,
            stop_on_error=policy.stop_on_error,
            timed=timed or policy.timeout is not None,
            timeout=policy.timeout,
        )


def check_journal(
    journal: object, retry_failed: object, journal_mismatch: object
) -> JournalOptions | None:
    retry = check_bool("retry_failed", retry_failed)
    if journal_mismatch not in ("raise", "rerun"):
        raise ArgumentValueError(
            f"journal_mismatch={short_repr(journal_mismatch)} is not accepted; use 'raise' (a "
            "journal of another job is refused) or 'rerun' (items whose record does not match "
            "run again)"
        )
    if journal is None:
        for name, value, default in (
            ("retry_failed", retry, False),
            ("journal_mismatch", journal_mismatch, "raise"),
        ):
            if value != default:
                raise ArgumentValueError(
                    f"{name}={value!r} applies to a journal, and none was given: pass "
                    f"journal='path.db' as well, or drop {name}="
                )
        return None
    if not isinstance(journal, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"journal must be the path of a file (a str or pathlib.Path), got "
            f"{short_repr(journal)} ({type(journal).__name__})"
        )
    path = os.fspath(journal)
    if not isinstance(path, str) or not path.strip() or path == ":memory:":
        raise ArgumentValueError(
            f"journal={short_repr(journal)} is not a file path; give one such as "
            "journal='crawl.db' (it is created if it does not exist)"
        )
    return JournalOptions(path, retry_failed=retry, mismatch=str(journal_mismatch))


def check_errors(errors: object) -> str:
    if errors not in ("raise", "return"):
        raise ArgumentValueError(
            f"errors={errors!r} is not accepted; use errors='raise' (the first failure raises) "
            "or errors='return' (each failure takes its item's place as a manyhands.Failure)"
        )
    return str(errors)


def check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ArgumentTypeError(
            f"timeout must be seconds (a number > 0) or None, got {short_repr(timeout)} "
            f"({type(timeout).__name__})"
        )
    if not timeout > 0 or timeout == float("inf"):
        raise ArgumentValueError(
            f"timeout must be a finite number of seconds > 0, got timeout={timeout!r}; "
            "use None for no limit"
        )
    return float(timeout)


def check_memory_floor(memory_floor: object) -> int | None:
    if memory_floor is None:
        return None  # the default, worked out by the engine when the guard first looks
    if isinstance(memory_floor, bool) or not isinstance(memory_floor, int) or memory_floor < 0:
        raise ArgumentValueError(
            f"memory_floor must be bytes >= 0 (0 turns the guard off) or None for the default "
            f"(5% of memory, at most 1 GiB), got {short_repr(memory_floor)}"
        )
    return memory_floor


def check_retries(retries: object) -> Retry | None:
    if retries == 0 and type(retries) is int:
        return None  # the default: Retry's module (and dataclasses) is imported only if used
    from ._core._failure import Retry

    if isinstance(retries, Retry):
        return retries if retries.attempts > 1 else None
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise ArgumentTypeError(
            f"retries must be a whole number >= 0 or a manyhands.Retry(...), got "
            f"{short_repr(retries)} ({type(retries).__name__})"
        )
    if retries < 0:
        raise ArgumentValueError(f"retries must be >= 0, got retries={retries} (0: no retry)")
    return Retry(attempts=retries + 1) if retries else None


def check_fn(fn: object, name: str = "fn") -> Callable[..., Any]:
    if not callable(fn):
        raise ArgumentTypeError(
            f"{name} must be callable, got {short_repr(fn)} ({type(fn).__name__}); pass the "
            f"function itself, e.g. manyhands.map(work, items), not its result work(x)"
        )
    return fn


def check_items(items: object) -> Iterable[Any]:
    if isinstance(items, (str, bytes)):
        raise ArgumentTypeError(
            f"items must be an iterable of inputs, got a {type(items).__name__} "
            f"({short_repr(items)}), which would be split into characters; wrap it in a list: "
            f"[{short_repr(items)}]"
        )
    try:
        iter(items)  # type: ignore[call-overload]
    except TypeError:
        raise ArgumentTypeError(
            f"items must be iterable (a list, range, generator...), got {short_repr(items)} "
            f"({type(items).__name__})"
        ) from None
    return items  # type: ignore[return-value]


def check_backend(backend: object) -> str:
    if not isinstance(backend, str):
        raise ArgumentTypeError(
            f"backend must be a string, one of {', '.join(map(repr, BACKEND_CHOICES))}; "
            f"got {short_repr(backend)} ({type(backend).__name__})"
        )
    if backend not in BACKEND_CHOICES:
        raise ArgumentValueError(
            f"backend={backend!r} is not a backend; choose one of "
            f"{', '.join(map(repr, BACKEND_CHOICES))} ('auto', the default, measures and chooses)"
        )
    return backend


def check_where(backend: str, address: object, client: object) -> dict[str, Any]:
    """``address=`` / ``client=``: where a Dask backend runs; only for ``backend="dask"``."""
    pairs = (("address", address), ("client", client))
    given = {name: value for name, value in pairs if value is not None}
    if not given:
        return {}
    if backend != "dask":
        name, value = next(iter(given.items()))
        raise ArgumentValueError(
            f"{name}={short_repr(value)} says which Dask cluster to run on, and applies only "
            f"to backend='dask' (got backend={backend!r}): pass backend='dask' as well"
        )
    if len(given) == 2:
        raise ArgumentValueError(
            f"address={short_repr(address)} and client={short_repr(client)} were both given; "
            "pass one: the client already knows its scheduler's address"
        )
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ArgumentTypeError(
            f"address must be a Dask scheduler address such as 'tcp://10.0.0.5:8786', got "
            f"{short_repr(address)} ({type(address).__name__})"
        )
    return given


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be True or False, got {short_repr(value)}")
    return value


def check_positive_int(name: str, value: object, *, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        accepted = "a whole number >= 1" + (
            ", or None to choose automatically" if allow_none else ""
        )
        raise ArgumentTypeError(
            f"{name} must be {accepted}; got {short_repr(value)} ({type(value).__name__})"
        )
    if value < 1:
        hint = " (leave it as None to choose automatically)" if allow_none else ""
        raise ArgumentValueError(f"{name} must be >= 1, got {name}={value}{hint}")
    return value


def check_initializer(
    initializer: object, initargs: object
) -> tuple[Callable[..., object] | None, tuple[Any, ...]]:
    if initializer is not None:
        check_fn(initializer, "initializer")
    if not isinstance(initargs, (tuple, list)):
        raise ArgumentTypeError(
            f"initargs must be a tuple of arguments for initializer, got {short_repr(initargs)}; "
            f"for one argument write initargs=({short_repr(initargs)},)"
        )
    if initargs and initializer is None:
        raise ArgumentValueError(
            f"initargs={short_repr(initargs)} was given without an initializer; pass "
            "initializer= as well, or drop initargs"
        )
    return initializer, tuple(initargs)  # type: ignore[return-value]


def default_workers(backend: str) -> int:
    """Workers when the caller did not say: the usable CPUs for processes; more for threads."""
    if backend == "serial":
        return 1
    if backend == "asyncio":
        return 1024  # coroutines in flight: waiting costs a task, not a thread
    cpus = available_cpus()
    if backend == "thread":
        # As ThreadPoolExecutor: threads mostly wait, so a few more than CPUs, capped.
        return min(32, cpus + 4)
    return cpus
