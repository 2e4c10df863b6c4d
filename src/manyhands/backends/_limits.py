"""How many threads the native libraries of each worker process may start: workers x
threads <= the CPUs this process may use, so that two processes multiplying matrices do not
each start one BLAS thread per CPU and fight over them (oversubscription).

Worker processes are fresh interpreters, so the limit is set the way every one of these
libraries reads it, and the way loky (joblib's process backend) sets it for its workers:
environment variables, in place before any library loads. A variable the caller has set
already is left as it is: that is how a user says otherwise (``OMP_NUM_THREADS=4`` for four
OpenMP threads in each worker).
"""

from __future__ import annotations

import os

from .._system import inner_threads

__all__ = ["VARIABLES", "worker_environment"]

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
