"""Backends by name, imported only when first used (``import manyhands`` stays cheap)."""

from __future__ import annotations

import importlib

# Worker processes import this package: keep typing off their start-up path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .._core._protocol import Backend

__all__ = ["BACKEND_NAMES", "bind", "create", "shutdown_elsewhere"]

#: name -> (module, class). "auto" is a router over the others: it measures and chooses.
_REGISTRY: dict[str, tuple[str, str]] = {
    "auto": ("manyhands.backends.auto", "AutoBackend"),
    "serial": ("manyhands.backends.serial", "SerialBackend"),
    "thread": ("manyhands.backends.thread", "ThreadBackend"),
    "process": ("manyhands.backends.process", "ProcessBackend"),
    "asyncio": ("manyhands.backends.aio", "AsyncioBackend"),
    "dask": ("manyhands.backends.daskdist", "DaskBackend"),
}

BACKEND_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def bind(backend: Backend, job: Any, total: int | None) -> Backend:
    """The backend ``job`` runs on: ``backend`` itself, or its router for that job (auto)."""
    binder = getattr(backend, "bind", None)
    return backend if binder is None else binder(job, total)


def create(
    name: str,
    *,
    workers: int | None,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
    eager: bool,
    **where: Any,
) -> Backend:
    """Start the backend called ``name``; ``eager`` starts every worker now, else on demand.

    ``workers`` may be None only for ``"auto"``, which then chooses per job, and ``"dask"``,
    which then takes the cluster's size. ``where``: ``address=`` or ``client=`` for ``"dask"``.
    """
    module_name, class_name = _REGISTRY[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    backend: Backend = cls(
        workers=workers, initializer=initializer, initargs=initargs, eager=eager, **where
    )
    return backend


def shutdown_elsewhere(shutdown: Callable[..., None], *, cancel: bool) -> None:
    """Run ``shutdown(cancel=cancel)`` on a thread of its own.

    For a shutdown called on the thread that delivers a backend's outcomes (from a Future's
    callback): waiting there for the outcomes still to come would wait for itself.
    """
    import threading

    threading.Thread(target=shutdown, kwargs={"cancel": cancel}, name="manyhands-shutdown").start()
