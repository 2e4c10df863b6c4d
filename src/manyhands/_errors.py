"""The exception hierarchy of manyhands, and how a failed item's exception reaches the caller.

    Exception
     +-- ManyhandsError                    every error that manyhands raises itself
     |    +-- ArgumentValueError           (also ValueError) an argument with a bad value
     |    +-- ArgumentTypeError            (also TypeError)  an argument of the wrong type
     |    +-- SerializationError           (also TypeError)  a function, item or result that
     |    |                                                   cannot be pickled or unpickled
     |    +-- TaskTimeout                  (also TimeoutError) an item ran past ``timeout=``
     |    +-- WorkerCrashed                (also RuntimeError) a worker process died mid-item
     |    +-- RemoteError                  (also RuntimeError) a worker's exception that could
     |    |                                                   not travel back to the caller
     |    +-- PoolClosedError              (also RuntimeError) work submitted to a closed Pool
     |    +-- MissingDependency            (also ImportError) an optional engine is not
     |    |                                                   installed; says how to install it
     |    +-- ClusterUnavailable           (also ConnectionError) no Dask scheduler answered at
     |    |                                                   the address, or the local
     |    |                                                   cluster did not start
     |    +-- JournalError                 a journal file that cannot be used (not a journal,
     |         |                           unreadable, a newer format)
     |         +-- JournalMismatch         (also ValueError) it records another function or
     |         |                           other items
     |         +-- JournalInUse            (also RuntimeError) another run is writing it
     +-- RemoteTraceback                   carries a worker's traceback text; it is set as the
                                           ``__cause__`` of an exception raised in a worker

An exception raised by the user's function is never wrapped: ``map`` raises the user's own
exception object (a ``ValueError`` stays a ``ValueError``) with a note naming the item and, when
it happened in another process, the worker's traceback chained as its cause.
"""

from __future__ import annotations

import reprlib

TYPE_CHECKING = False  # typing stays off the start-up path of worker processes
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ArgumentTypeError",
    "ArgumentValueError",
    "ClusterUnavailable",
    "JournalError",
    "JournalInUse",
    "JournalMismatch",
    "ManyhandsError",
    "MissingDependency",
    "PoolClosedError",
    "RemoteError",
    "RemoteTraceback",
    "SerializationError",
    "TaskTimeout",
    "WorkerCrashed",
]


class ManyhandsError(Exception):
    """Base class of every exception that manyhands raises itself."""


class ArgumentValueError(ManyhandsError, ValueError):
    """An argument has a value that is not accepted; the message names it and the fix."""


class ArgumentTypeError(ManyhandsError, TypeError):
    """An argument has a type that is not accepted; the message names it and the fix."""


class SerializationError(ManyhandsError, TypeError):
    """The function, an item or a result could not be pickled to cross a process boundary.

    ``what`` is ``"function"``, ``"initializer"``, ``"item"`` or ``"result"``; ``index`` is the
    item's position in the input where one item is to blame, else None.
    """

    def __init__(self, message: str, *, what: str, index: int | None = None) -> None:
        super().__init__(message)
        self.what = what
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_serialization_error, (str(self), self.what, self.index))


def _rebuild_serialization_error(message: str, what: str, index: int | None) -> SerializationError:
    return SerializationError(message, what=what, index=index)


class TaskTimeout(ManyhandsError, TimeoutError):
    """An item ran longer than ``timeout=`` and was stopped; ``timeout`` is that limit."""

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_task_timeout, (str(self), self.timeout))


def _rebuild_task_timeout(message: str, timeout: float) -> TaskTimeout:
    return TaskTimeout(message, timeout=timeout)


class WorkerCrashed(ManyhandsError, RuntimeError):
    """A worker process died while it ran an item; ``exitcode`` and ``signal`` say how."""

    def __init__(self, message: str, *, exitcode: int | None, signal: int | None) -> None:
        super().__init__(message)
        self.exitcode = exitcode
        self.signal = signal

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_worker_crashed, (str(self), self.exitcode, self.signal))


def _rebuild_worker_crashed(
    message: str, exitcode: int | None, signal: int | None
) -> WorkerCrashed:
    return WorkerCrashed(message, exitcode=exitcode, signal=signal)


class RemoteError(ManyhandsError, RuntimeError):
    """A worker raised an exception that could not be sent back as itself.

    ``type_name`` is the qualified name of the original exception's class.
    """

    def __init__(self, message: str, *, type_name: str) -> None:
        super().__init__(message)
        self.type_name = type_name

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_remote_error, (str(self), self.type_name))


def _rebuild_remote_error(message: str, type_name: str) -> RemoteError:
    return RemoteError(message, type_name=type_name)


class PoolClosedError(ManyhandsError, RuntimeError):
    """Work was given to a Pool after ``shutdown()`` or after its ``with`` block ended."""


class MissingDependency(ManyhandsError, ImportError):
    """An optional engine is not installed; the message gives the command that installs it."""


class ClusterUnavailable(ManyhandsError, ConnectionError):
    """No cluster answered at the address given (or its workers did not start)."""


class JournalError(ManyhandsError):
    """A journal file cannot be used; the message says why and what to do."""


class JournalMismatch(JournalError, ValueError):
    """The journal records a different job: another function, or other items at an index."""


class JournalInUse(JournalError, RuntimeError):
    """Another run, in this process or another, is writing the journal right now."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process, as text.

    Set as the ``__cause__`` of the exception that reaches the caller, so that the usual
    traceback printout shows where in the worker the error happened.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n\n" + self.text.rstrip("\n") + "\n(traceback from the worker process)"


_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlist = 4
_short.maxtuple = 4
_short.maxdict = 4


def short_repr(value: object) -> str:
    """A repr of ``value`` short enough for one line of an error message."""
    try:
        return _short.repr(value)
    except Exception as exc:  # a user's __repr__ may raise; the message must not
        return f"<{type(value).__qualname__} whose repr raised {type(exc).__name__}>"


def callable_name(fn: object) -> str:
    """``module.qualname`` of a function, method or class; a short repr of anything else."""
    qualname = getattr(fn, "__qualname__", None)
    if isinstance(qualname, str):
        module = getattr(fn, "__module__", None)
        return f"{module}.{qualname}" if isinstance(module, str) else qualname
    return short_repr(fn)


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)`` on 3.11+; on 3.10 the note is kept in ``__notes__`` all the same."""
    adder = getattr(exc, "add_note", None)
    if adder is not None:
        adder(note)
        return
    notes = getattr(exc, "__notes__", None)
    if notes is None:
        notes = []
        try:
            exc.__notes__ = notes  # type: ignore[attr-defined]
        except AttributeError:  # an exception class with __slots__ and no __dict__
            return
    notes.append(note)


def broken_pool(kind: str, cause: BaseException | None, worker: str, detail: str) -> Exception:
    """The ``concurrent.futures`` error for a pool whose initializer failed in ``worker``:
    ``BrokenThreadPool`` (threads), ``BrokenProcessPool`` (processes), else
    ``BrokenExecutor``; the initializer's own exception is its ``__cause__``.

    Code written against an Executor catches these; the cause names the real problem.
    Imported here, on the failure's path: ``concurrent.futures.process`` imports
    multiprocessing.
    """
    broken: type[Exception]
    if kind == "thread":
        from concurrent.futures.thread import BrokenThreadPool

        broken = BrokenThreadPool
    elif kind == "process":
        from concurrent.futures.process import BrokenProcessPool

        broken = BrokenProcessPool
    else:
        from concurrent.futures import BrokenExecutor

        broken = BrokenExecutor
    error = broken(
        f"A worker's initializer failed in {worker} ({detail}): the pool cannot run work; "
        "fix the initializer (its exception is the cause, above) and start a new pool"
    )
    error.__cause__ = cause
    return error
