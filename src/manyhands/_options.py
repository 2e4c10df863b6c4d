"""Checking the caller's arguments, and the defaults that depend on the backend.

Every message names the parameter, the value given, what is accepted, and the usual fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ._errors import ArgumentTypeError, ArgumentValueError, short_repr
from ._system import available_cpus
from .backends import BACKEND_NAMES

__all__ = ["BACKEND_CHOICES", "RunOptions", "check_fn", "check_items", "default_workers"]

BACKEND_CHOICES: tuple[str, ...] = BACKEND_NAMES


@dataclass(frozen=True)
class RunOptions:
    """The per-call options of map/imap/starmap, checked."""

    ordered: bool = True
    chunksize: int | None = None
    progress: bool = False

    @classmethod
    def checked(cls, *, ordered: object, chunksize: object, progress: object) -> RunOptions:
        return cls(
            ordered=check_bool("ordered", ordered),
            chunksize=check_positive_int("chunksize", chunksize, allow_none=True),
            progress=check_bool("progress", progress),
        )


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
