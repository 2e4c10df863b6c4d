"""Checking the caller's arguments, and the defaults that depend on the backend.

Every message names the parameter, the value given, what is accepted, and the usual fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

from ._core._engine import DEFAULT_POLICY, Policy
from ._core._records import NamedTuple
from ._errors import ArgumentTypeError, ArgumentValueError, short_repr
from ._system import available_cpus
from .backends import BACKEND_NAMES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from ._core._failure import Retry
    from ._core._task import Mode
    from ._journal import JournalFile

    F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "BACKEND_CHOICES",
    "CALL_KEYWORDS",
    "Dask",
    "Journal",
    "KEYWORDS",
    "Keywords",
    "RunOptions",
    "check_fn",
    "check_runs_on",
    "check_seconds",
    "check_items",
    "default_workers",
    "takes_options",
]


class Journal(NamedTuple):
    """``journal=Journal("run.db", ...)``: record every finished item of a map in that SQLite
    file, and say what a resumed run does (``journal="run.db"`` is ``Journal("run.db")``).

    ``retry_failed=True``: items that failed in an earlier run run again (by default their
    failures are returned from the journal). ``mismatch``: ``"raise"`` refuses a journal of
    another function or other items; ``"rerun"`` runs the items whose record does not match.
    """

    path: str | os.PathLike[str]
    retry_failed: bool = False
    mismatch: str = "raise"

    def open(self, fn: Callable[..., Any], mode: Mode, total: int | None) -> JournalFile:
        from ._journal import JournalFile, function_identity  # sqlite3 only when one is used

        return JournalFile.open(
            os.fspath(self.path),
            function=function_identity(fn),
            mode=mode,
            total=total,
            retry_failed=self.retry_failed,
            mismatch=self.mismatch,
        )


class Dask(NamedTuple):
    """``backend=Dask(...)``: run on a Dask cluster: the scheduler at ``address``
    (``"tcp://10.0.0.5:8786"``), or through ``client`` (a ``distributed.Client``); with
    neither, a local cluster started for the call or the Pool (``backend="dask"``)."""

    address: str | None = None
    client: Any = None


class Processes(NamedTuple):
    """``backend=Processes(threads=32)``: worker processes (``workers=`` of them, one per CPU
    by default) that each run ``threads`` items at once, on threads of their own. For waiting
    work whose CPU keeps one GIL busy (an HTTP client spends about 0.5 ms of CPU a request):
    every CPU then serves it. ``Processes()`` is ``"process"``."""

    threads: int = 1


BACKEND_CHOICES: tuple[str, ...] = BACKEND_NAMES


class Keywords:
    """The keyword options of every map (``map``, ``imap``, ``starmap``, ``istarmap``,
    ``amap``, ``aimap``, and the Pool's methods), with their defaults: declared here once.

    The functions take them as ``**options`` (typed for checkers by ``_keywords.py``, whose
    names a test holds equal to these); ``takes_options`` shows them in each function's
    signature, and ``RunOptions.checked`` checks them. A plain class, never instantiated:
    only its annotations and values are read (``KEYWORDS``).
    """

    ordered: bool = True
    chunksize: int | None = None
    progress: bool = False
    errors: str = "raise"
    timeout: float | None = None
    retries: int | Retry = 0
    memory_floor: int | None = None
    journal: str | os.PathLike[str] | Journal | None = None
    output: str = "forward"


#: Every map's keyword options and their defaults, in the order declared.
KEYWORDS: dict[str, object] = {name: getattr(Keywords, name) for name in Keywords.__annotations__}

#: What the one-call functions take besides: where the work runs (a Pool's constructor has
#: the same two).
CALL_KEYWORDS: dict[str, object] = {"backend": "auto", "workers": None}


def takes_options(
    *, method: bool = False, call: bool = False, lazy: bool = False
) -> Callable[[F], F]:
    """Show a ``**options`` function's keywords in its signature (``help``, ``inspect``).

    ``call``: ``backend`` and ``workers`` first (the one-call functions); ``lazy``:
    ``indexed`` last (``imap``, ``istarmap``); ``method``: a Pool's (``self`` first).
    ``inspect.signature`` follows ``__wrapped__``, so each function gets, there, a stand-in
    with the real signature: the code object of ``(fn, items, /)`` given the keyword-only
    names, and their defaults. Not ``exec`` (compiling two such functions costs a first call
    1.5 ms here) and not ``inspect.Signature`` (importing ``inspect`` costs 23 ms).
    """
    defaults: dict[str, object] = dict(CALL_KEYWORDS) if call else {}
    defaults.update(KEYWORDS)
    if lazy:
        defaults["indexed"] = False
    shape = _method_shape if method else _function_shape

    def decorate(fn: F) -> F:
        import types  # already imported by the time a map is: functools imports it

        code = shape.__code__
        names = code.co_varnames[: code.co_argcount] + tuple(defaults)
        stand_in = types.FunctionType(
            code.replace(
                co_kwonlyargcount=len(defaults),
                co_varnames=names,
                co_nlocals=len(names),
                co_name=fn.__name__,
            ),
            {},
            fn.__name__,
        )
        stand_in.__kwdefaults__ = defaults
        fn.__wrapped__ = stand_in  # type: ignore[attr-defined]
        return fn

    return decorate


def _function_shape(fn, items, /):  # type: ignore[no-untyped-def]
    """The positional part of every map's signature."""


def _method_shape(self, fn, items, /):  # type: ignore[no-untyped-def]
    """The positional part of every map method's signature."""


class RunOptions(NamedTuple):
    """The per-call options of a map, checked: the one record the engine takes."""

    ordered: bool = True
    chunksize: int | None = None
    progress: bool = False
    policy: Policy = DEFAULT_POLICY
    journal: Journal | None = None
    #: Deliver ``(index, result)`` pairs (imap and istarmap).
    indexed: bool = False

    @classmethod
    def checked(
        cls,
        given: Mapping[str, object],
        *,
        entry: str,
        backend: str = "auto",
        allowed: frozenset[str] | None = None,
    ) -> RunOptions:
        """``given`` checked: the keywords a call passed (``entry`` names the function in
        messages); ``allowed``: which of them it takes (default: every map's)."""
        names = allowed if allowed is not None else _RUN_NAMES
        unknown = [name for name in given if name not in names]
        if unknown:
            raise _unexpected(entry, unknown[0], names)
        values = {**KEYWORDS, "indexed": False, **given}
        size = check_positive_int("chunksize", values["chunksize"], allow_none=True)
        limit = check_timeout(values["timeout"])
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
            errors=check_errors(values["errors"]),
            retry=check_retries(values["retries"]),
            timeout=limit,
            memory_floor=check_memory_floor(values["memory_floor"]),
            output=check_output(values["output"]),
        )
        return cls(
            ordered=check_bool("ordered", values["ordered"]),
            chunksize=size,
            progress=check_bool("progress", values["progress"]),
            policy=policy,
            journal=check_journal(values["journal"]),
            indexed=check_bool("indexed", values["indexed"]),
        )


_RUN_NAMES = frozenset(KEYWORDS)
#: The lazy maps' (imap, istarmap) names.
LAZY_NAMES = _RUN_NAMES | {"indexed"}


def _unexpected(entry: str, name: str, names: frozenset[str]) -> ArgumentTypeError:
    import difflib  # on the error's path only

    close = difflib.get_close_matches(name, sorted(names), n=1)
    hint = f"; did you mean {close[0]}=?" if close else ""
    return ArgumentTypeError(
        f"{entry} got an unexpected keyword argument {name!r}{hint} (it takes "
        f"{', '.join(sorted(names))})"
    )


def check_output(output: object) -> str:
    """``output=``: what becomes of what the items write (``backends._output``)."""
    from .backends._output import MODES

    if output not in MODES:
        raise ArgumentValueError(
            f"output must be one of {', '.join(map(repr, MODES))}, got {short_repr(output)}: "
            "'forward' writes workers' lines to your sys.stdout/sys.stderr, 'tag' the same "
            "with each line prefixed by its item's index, 'capture' keeps each item's output "
            "(in the journal, and on its Failure), 'inherit' leaves worker processes writing "
            "to the descriptors they inherited"
        )
    return str(output)


def check_journal(journal: object) -> Journal | None:
    """``journal=``: a path, or a ``Journal`` (a path and what a resumed run does)."""
    if journal is None:
        return None
    if isinstance(journal, Journal):
        record = journal
        check_bool("Journal(retry_failed=)", record.retry_failed)
        if record.mismatch not in ("raise", "rerun"):
            raise ArgumentValueError(
                f"Journal(mismatch={short_repr(record.mismatch)}) is not accepted; use 'raise' "
                "(a journal of another job is refused) or 'rerun' (items whose record does not "
                "match run again)"
            )
    elif isinstance(journal, (str, os.PathLike)):
        record = Journal(journal)
    else:
        raise ArgumentTypeError(
            f"journal must be the path of a file (a str or pathlib.Path) or a "
            f"manyhands.Journal(path, ...), got {short_repr(journal)} ({type(journal).__name__})"
        )
    path = os.fspath(record.path)
    if not isinstance(path, str) or not path.strip() or path == ":memory:":
        raise ArgumentValueError(
            f"journal={short_repr(record.path)} is not a file path; give one such as "
            "journal='crawl.db' (it is created if it does not exist)"
        )
    return record._replace(path=path)


def check_errors(errors: object) -> str:
    if errors not in ("raise", "return"):
        raise ArgumentValueError(
            f"errors={errors!r} is not accepted; use errors='raise' (the first failure raises) "
            "or errors='return' (each failure takes its item's place as a manyhands.Failure)"
        )
    return str(errors)


def check_timeout(timeout: object) -> float | None:
    return check_seconds("timeout", timeout, none="no limit")


def check_seconds(name: str, value: object, *, none: str) -> float | None:
    """``value`` as seconds: a finite number > 0, or None (which means ``none``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(
            f"{name} must be seconds (a number > 0) or None, got {short_repr(value)} "
            f"({type(value).__name__})"
        )
    if not value > 0 or value == float("inf"):
        raise ArgumentValueError(
            f"{name} must be a finite number of seconds > 0, got {name}={value!r}; "
            f"use None for {none}"
        )
    return float(value)


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


#: The backends that call ``fn`` without awaiting what it returns.
_CALLING_BACKENDS = frozenset({"serial", "thread", "process", "dask"})


def check_runs_on(fn: Callable[..., Any], backend: str) -> None:
    """Refuse an ``async def`` function on a backend that would only call it: every
    result would be an unawaited coroutine (or, from a process, one that cannot travel)."""
    if backend not in _CALLING_BACKENDS:
        return
    from ._core._task import is_coroutine_function

    if is_coroutine_function(fn):
        name = getattr(fn, "__name__", "fn")
        raise ArgumentValueError(
            f"fn={name} is an async def function, and backend={backend!r} calls it without "
            "awaiting: every result would be an unawaited coroutine. Use backend='asyncio' "
            "(or 'auto', which runs coroutines on asyncio), or wrap it in a plain function "
            "that calls asyncio.run"
        )


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


def check_backend(backend: object) -> tuple[str, dict[str, Any]]:
    """``backend=``: its name, and its settings (where a ``Dask(...)`` connects)."""
    if isinstance(backend, Dask):
        return "dask", _check_dask(backend)
    if isinstance(backend, Processes):
        threads = backend.threads
        if type(threads) is not int or threads < 1:
            raise ArgumentValueError(
                f"Processes(threads={short_repr(threads)}): threads is how many items each "
                "worker process runs at once, a whole number of at least 1"
            )
        return "process", {} if threads == 1 else {"threads": threads}
    if not isinstance(backend, str):
        raise ArgumentTypeError(
            f"backend must be a string, one of {', '.join(map(repr, BACKEND_CHOICES))}, "
            f"manyhands.Processes(threads=...) or manyhands.Dask(address=...); got "
            f"{short_repr(backend)} ({type(backend).__name__})"
        )
    if backend not in BACKEND_CHOICES:
        raise ArgumentValueError(
            f"backend={backend!r} is not a backend; choose one of "
            f"{', '.join(map(repr, BACKEND_CHOICES))} ('auto', the default, measures and chooses)"
        )
    return backend, {}


def _check_dask(dask: Dask) -> dict[str, Any]:
    address, client = dask
    if address is not None and client is not None:
        raise ArgumentValueError(
            f"Dask(address={short_repr(address)}, client={short_repr(client)}): pass one; the "
            "client already knows its scheduler's address"
        )
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ArgumentTypeError(
            f"Dask(address=) must be a scheduler address such as 'tcp://10.0.0.5:8786', got "
            f"{short_repr(address)} ({type(address).__name__})"
        )
    if address is not None:
        return {"address": address}
    return {} if client is None else {"client": client}


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
