"""How many threads native libraries may start beside ours: workers x threads <= the CPUs
this process may use, so that two processes (or threads) multiplying matrices do not each
start one BLAS thread per CPU and fight over them (oversubscription).

Worker processes are fresh interpreters, so the limit is set the way every one of these
libraries reads it, and the way loky (joblib's process backend) sets it for its workers:
environment variables, in place before any library loads. In this process the libraries
are loaded already, and only threadpoolctl (the ``blas`` extra) can change their pools: the
thread backend holds a limit with it while it runs (``hold_thread_limit``). A variable the
caller has set is left as it is, in both cases: that is how a user says otherwise
(``OMP_NUM_THREADS=4`` for four OpenMP threads in each worker).
"""

from __future__ import annotations

import os
import threading

from .._system import available_cpus, inner_threads, native_threads_loaded

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["VARIABLES", "hold_thread_limit", "release_thread_limit", "worker_environment"]

#: OpenMP, and the BLAS libraries numpy and scipy are built with (OpenBLAS, MKL, BLIS,
#: Apple's Accelerate), and numexpr.
VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def worker_environment(workers: int) -> dict[str, str]:
    """The environment a worker process starts with: the caller's, with every variable of
    ``VARIABLES`` the caller has not set limited to ``inner_threads(workers)``."""
    environment = dict(os.environ)
    limit = str(inner_threads(workers))
    for name in VARIABLES:
        environment.setdefault(name, limit)
    return environment


def user_limited() -> bool:
    """Whether the caller has set any of ``VARIABLES``."""
    return any(name in os.environ for name in VARIABLES)


# The pools of BLAS and OpenMP belong to the process, not to a thread or a backend: one
# limit is held while any thread backend runs, and the original restored after the last.
_lock = threading.Lock()
_holders = 0
_limiter: Any = None
_no_threadpoolctl = False  # found missing once: not looked for at every chunk


def hold_thread_limit(threads: int) -> bool:
    """Limit this process's native thread pools so that ``threads`` x theirs <= the CPUs,
    until ``release_thread_limit()``; False (nothing held) where there is nothing to limit:
    one thread, no such library loaded, the caller's own variables, or no threadpoolctl.

    Concurrent holders share the first one's limit."""
    global _holders, _limiter, _no_threadpoolctl
    if threads <= 1 or _no_threadpoolctl or not native_threads_loaded() or user_limited():
        return False
    try:
        import threadpoolctl
    except ImportError:
        _no_threadpoolctl = True
        return False
    with _lock:
        if _holders == 0:
            limit = inner_threads(min(threads, available_cpus()))
            controller = threadpoolctl.ThreadpoolController()  # finds the libraries: 2-3 ms
            _limiter = controller.limit(limits=limit)
            _check_applied(controller, limit)
        _holders += 1
    return True


def _check_applied(controller: Any, limit: int) -> None:
    # OpenBLAS (0.3.31 here) ignores a new size set from any thread but the main one once
    # the main thread has set one: said at DEBUG, since nothing else can change it.
    missed = [
        pool["internal_api"]
        for pool in controller.info()  # reads each library's size again; no new search
        if pool.get("num_threads", limit) > limit
    ]
    if missed:
        from .._core import _log

        _log.debug(
            "could not limit %s to %d threads from thread %s (it keeps the size "
            "the main thread last set)",
            ", ".join(missed),
            limit,
            threading.current_thread().name,
        )


def release_thread_limit() -> None:
    """End a ``hold_thread_limit()`` that returned True; the last one restores the pools."""
    global _holders, _limiter
    with _lock:
        _holders -= 1
        if _holders == 0 and _limiter is not None:
            _limiter.restore_original_limits()
            _limiter = None
