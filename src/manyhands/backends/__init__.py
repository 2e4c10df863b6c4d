"""Backends by name, imported only when first used (``import manyhands`` stays cheap)."""

from __future__ import annotations

import sys

# Worker processes import this package: keep typing off their start-up path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .._core._protocol import Backend

__all__ = ["BACKEND_NAMES", "create", "shutdown_elsewhere"]

#: name -> (module, class). Each implements the protocol of ``_core/_protocol.py``, nothing more.
_REGISTRY: dict[str, tuple[str, str]] = {
    "serial": ("manyhands.backends.serial", "SerialBackend"),
    "thread": ("manyhands.backends.thread", "ThreadBackend"),
    "process": ("manyhands.backends.process", "ProcessBackend"),
    "asyncio": ("manyhands.backends.aio", "AsyncioBackend"),
    "dask": ("manyhands.backends.daskdist", "DaskBackend"),
}

#: "auto" is not a backend: it is the engine's planner (``_core/_auto.py``) over the others.
BACKEND_NAMES: tuple[str, ...] = ("auto", *_REGISTRY)


def create(
    name: str,
    *,
    workers: int | None,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
    eager: bool,
    **settings: Any,
) -> Backend:
    """Start the backend called ``name``; ``eager`` starts every worker now, else on demand.

    ``workers`` may be None only for ``"dask"``, which then takes the cluster's size.
    ``settings``: that backend's own keywords (``address=`` or ``client=`` for ``"dask"``,
    ``thread_name_prefix=`` for threads, ``max_tasks_per_child=`` for processes).
    """
    module_name, class_name = _REGISTRY[name]
    __import__(module_name)  # not ``importlib``: that package is 0.3-0.6 ms of a first call
    cls = getattr(sys.modules[module_name], class_name)
    backend: Backend = cls(
        workers=workers, initializer=initializer, initargs=initargs, eager=eager, **settings
    )
    return backend


def shutdown_elsewhere(shutdown: Callable[..., None], *, cancel: bool) -> None:
    """Run ``shutdown(cancel=cancel)`` on a thread of its own.

    For a shutdown called on the thread that delivers a backend's outcomes (from a Future's
    callback): waiting there for the outcomes still to come would wait for itself.
    """
    import threading

    threading.Thread(target=shutdown, kwargs={"cancel": cancel}, name="manyhands-shutdown").start()
