"""Log records of workers elsewhere, carried to the caller as records, not text.

    caller (parent)                               worker process (or Dask worker)
    ---------------                               -------------------------------
    levels_of(job) ── with a job's first chunk ─>  apply(): the caller's levels set here, and
                                                  a handler on the root logger
    replay(record) <── ("log", fields) ─────────  emit(): each record that passes, with the
      the caller's own logger handles it:          item and the worker (the record factory:
      its level, filters, handlers, caplog         ``_output.Running`` says what runs here)

A record the caller would drop is never made in the worker: the levels (the root logger's,
every logger's own, ``logging.disable``) are the caller's at the start of the job. Both ends
live here, as the format of a record on the wire does. Thread workers' records are made in
the caller's process; the same factory gives them their item.
"""

from __future__ import annotations

import sys
import threading

# typing stays off every worker's start-up path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["NO_LOGGING", "Forwarder", "attribute_records", "levels", "levels_of", "replay"]

#: (root level, ``logging.disable`` level, {logger name: its own level}).
Levels = tuple[int, int, dict[str, int]]

_WARNING = 30


#: What ``levels()`` says of a caller that has not imported ``logging``: it has no handler,
#: level or filter, so the defaults hold (warnings, to the last resort). A worker then
#: imports ``logging`` only once something there does (10-17 ms of a worker's start here).
NO_LOGGING: Levels = (-1, 0, {})
_DEFAULTS: Levels = (_WARNING, 0, {})


def levels() -> Levels:
    """The caller's logging levels now (without importing ``logging`` if nothing has)."""
    logging = sys.modules.get("logging")
    if logging is None:
        return NO_LOGGING
    manager = logging.Logger.manager
    own = {
        name: logger.level
        for name, logger in list(manager.loggerDict.items())
        if isinstance(logger, logging.Logger) and logger.level
    }
    return (logging.root.level, manager.disable, own)


def levels_of(job: Any) -> Levels:
    """The caller's levels at the start of ``job``: taken the first time a backend whose
    workers are elsewhere asks, then kept on the job for every chunk."""
    if job.levels is None:
        job.levels = levels()
    return job.levels  # type: ignore[no-any-return]


def replay(fields: dict[str, Any]) -> None:
    """Hand a worker's record to the caller's logger of the same name (its level, filters and
    handlers decide what becomes of it, as for a record made here)."""
    import logging

    record = logging.makeLogRecord(fields)
    logger = logging.getLogger(record.name) if record.name != "root" else logging.root
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


#: Loggers a Dask worker process keeps at its own levels (``Forwarder(shared=True)``).
_HOST_LOGGERS = ("distributed", "dask", "tornado", "bokeh", "asyncio")


class Forwarder:
    """The worker's end: ``apply`` the caller's levels; records then go to ``send``, each
    with the item it came from (``running``, as in a thread worker of the caller's).

    ``shared``: the process is not ours alone (a Dask worker): the handler is added beside
    its own, forwards only records made while a chunk runs on their thread, and the levels
    of the host's loggers (``distributed``...) and ``logging.disable`` are left as they are.
    """

    def __init__(self, send: Callable[[bytes], None], worker: str, *, shared: bool = False) -> None:
        self._send = send
        self._worker = worker
        self._shared = shared
        self._own: dict[str, int] = {}
        self._applied: Levels | None = None
        self._installed = False
        #: The caller has no ``logging``, nor has this process yet: the defaults are applied
        #: once something here imports it (``catch_up``).
        self._deferred = False

    def apply(self, caller: Levels) -> None:
        if caller == NO_LOGGING:
            self._deferred = "logging" not in sys.modules
            if self._deferred:
                return
            caller = _DEFAULTS
        self._deferred = False
        if caller == self._applied:
            return
        import logging

        root_level, disabled, own = caller
        if not self._installed:
            handler = _Handler(self)
            if self._shared:
                logging.root.addHandler(handler)
            else:  # nothing printed here: the caller's handlers print
                logging.root.handlers[:] = [handler]
            _install_factory()
            self._installed = True
        logging.root.setLevel(root_level)
        if self._shared:
            own = {
                name: level
                for name, level in own.items()
                if name.partition(".")[0] not in _HOST_LOGGERS
            }
        else:
            logging.disable(disabled)
        for name in self._own.keys() - own.keys():  # set by the job before, not by this one
            logging.getLogger(name).setLevel(logging.NOTSET)
        for name, level in own.items():
            logging.getLogger(name).setLevel(level)
        self._own = dict(own)
        self._applied = caller

    def catch_up(self) -> None:
        """Before a chunk runs: if ``logging`` has been imported here since the caller's
        levels came (by unpickling a function whose module imports it, or by a chunk
        before), records go to the caller from now on. One made in the chunk that imported
        it is printed by logging's last resort, to this worker's stderr, which reaches the
        caller's stderr as that item's output, as a record of the caller's would be printed
        there by the caller's last resort."""
        if self._deferred and "logging" in sys.modules:
            self.apply(_DEFAULTS)

    @property
    def shared(self) -> bool:
        return self._shared

    def forward(self, record: Any, text: Callable[[Any], str | None]) -> None:
        import pickle  # here: the thread backend imports this module, and not pickle (or re)

        fields = dict(record.__dict__)
        fields["msg"] = record.getMessage()  # the arguments may not pickle; the text does
        fields["args"] = None
        fields["exc_text"] = text(record)
        fields["exc_info"] = None
        fields["processName"] = self._worker
        fields.setdefault("manyhands_item", None)  # made outside a chunk (an initializer)
        fields["manyhands_worker"] = self._worker
        try:
            payload = pickle.dumps(("log", fields), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # an extra= value that will not pickle travels as its repr
            fields = {key: _plain(value) for key, value in fields.items()}
            payload = pickle.dumps(("log", fields), protocol=pickle.HIGHEST_PROTOCOL)
        self._send(payload)


def _plain(value: Any) -> Any:
    import pickle

    try:
        pickle.dumps(value)
    except Exception:
        return repr(value)
    return value


def _handler_class() -> type:
    import logging

    class Handler(logging.Handler):
        def __init__(self, forwarder: Forwarder) -> None:
            super().__init__()
            self._forwarder = forwarder
            self._format = logging.Formatter()
            self._local = threading.local()

        def emit(self, record: logging.LogRecord) -> None:
            if getattr(self._local, "busy", False):
                return  # a record made while sending one (by pickle's own logging, say)
            if self._forwarder.shared and getattr(record, "manyhands_worker", None) is None:
                return  # the host's own, or another thread's: not a chunk's
            self._local.busy = True
            try:
                self._forwarder.forward(record, self._exception_text)
            except OSError:
                pass  # the caller is gone: nobody reads this any more
            except Exception:
                self.handleError(record)
            finally:
                self._local.busy = False

        def _exception_text(self, record: logging.LogRecord) -> str | None:
            if record.exc_info:
                return self._format.formatException(record.exc_info)
            return record.exc_text

    return Handler


def _Handler(forwarder: Forwarder) -> Any:
    return _handler_class()(forwarder)


_factory_installed = False
_factory_lock = threading.Lock()


def attribute_records() -> None:
    """Records made on a thread (or asyncio task) that runs a chunk (``_output.Running``)
    carry ``manyhands_item`` and ``manyhands_worker``, in a thread worker and in a worker
    process alike. The record factory that sets them is installed once, and only where
    ``logging`` is imported already (importing it costs a first call 10 ms; a process
    without it has no handler)."""
    if not _factory_installed and "logging" in sys.modules:
        _install_factory()


def _install_factory() -> None:
    global _factory_installed
    import logging

    from ._output import current

    with _factory_lock:
        if _factory_installed:
            return
        made = logging.getLogRecordFactory()  # the caller's own, if it set one: kept

        def factory(*args: Any, **kwargs: Any) -> Any:
            record = made(*args, **kwargs)
            running = current()
            if running is not None:
                record.manyhands_item = running.item
                record.manyhands_worker = running.worker
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True
