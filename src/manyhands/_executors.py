"""Drop-in executors: the standard library's constructors, manyhands' workers.

    from manyhands import ProcessPoolExecutor   # was: from concurrent.futures import ...

Each is a ``Pool`` with its backend fixed, so everything else is unchanged: ``submit``,
``map`` (``Executor.map``), ``shutdown``, the context manager, futures that work with
``wait`` and ``as_completed``. What changes is what manyhands adds: a worker that dies fails
only the call it was running (the standard library breaks the whole pool), functions defined
in ``__main__`` or a notebook, and lambdas, run in processes, and Ctrl-C stops cleanly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._errors import ArgumentTypeError, ArgumentValueError, short_repr
from ._options import check_positive_int
from ._pool import Pool

__all__ = ["ProcessPoolExecutor", "ThreadPoolExecutor"]


class ThreadPoolExecutor(Pool):
    """``concurrent.futures.ThreadPoolExecutor``'s constructor, on manyhands' threads.

    ``max_workers`` defaults as there (``min(32, CPUs + 4)``); ``thread_name_prefix`` names
    the threads ``{prefix}_0``, ``{prefix}_1``...
    """

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        if not isinstance(thread_name_prefix, str):
            raise ArgumentTypeError(
                f"thread_name_prefix must be a string, got {short_repr(thread_name_prefix)} "
                f"({type(thread_name_prefix).__name__})"
            )
        workers = check_positive_int("max_workers", max_workers, allow_none=True)
        settings = {"thread": {"thread_name_prefix": thread_name_prefix}}
        self._start(
            "thread",
            workers=workers,
            initializer=initializer,
            initargs=initargs,
            settings=settings if thread_name_prefix else {},
        )


class ProcessPoolExecutor(Pool):
    """``concurrent.futures.ProcessPoolExecutor``'s constructor, on manyhands' processes.

    ``max_workers`` defaults to the CPUs this process may use. ``mp_context``: manyhands'
    workers are always fresh interpreters, as with the ``"spawn"`` start method, on every
    platform; a ``"spawn"`` or ``"forkserver"`` context is accepted as asking for that, a
    ``"fork"`` one is refused (its workers would share the caller's memory, which these do
    not). ``max_tasks_per_child``: a worker is replaced after running that many calls (a
    chunk of ``map`` counts as one, as in the standard library).
    """

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        max_tasks_per_child: int | None = None,
    ) -> None:
        workers = check_positive_int("max_workers", max_workers, allow_none=True)
        _check_context(mp_context)
        tasks = check_positive_int("max_tasks_per_child", max_tasks_per_child, allow_none=True)
        self._start(
            "process",
            workers=workers,
            initializer=initializer,
            initargs=initargs,
            settings={"process": {"max_tasks_per_child": tasks}} if tasks else {},
        )


def _check_context(mp_context: object) -> None:
    if mp_context is None:
        return
    method = getattr(mp_context, "get_start_method", None)
    if method is None:
        raise ArgumentTypeError(
            f"mp_context must be a multiprocessing context, such as "
            f"multiprocessing.get_context('spawn'), or None; got {short_repr(mp_context)}"
        )
    name = method()
    if name == "fork":
        raise ArgumentValueError(
            "mp_context=multiprocessing.get_context('fork') cannot be honoured: manyhands' "
            "worker processes are fresh interpreters (as with 'spawn'), never forks of this "
            "one, so they do not share its memory; functions and data travel pickled "
            "(cloudpickle). Drop mp_context=, or pass get_context('spawn')"
        )
