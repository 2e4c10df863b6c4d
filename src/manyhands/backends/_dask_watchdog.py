"""A Dask preload: the scheduler or worker process exits when the manyhands caller is gone.

``_dask_cluster`` starts ``dask scheduler`` and ``dask worker`` with ``--preload`` of this
module and the caller's pid in ``MANYHANDS_PARENT_PID``. A caller that ends normally stops them
itself; one killed with SIGKILL cannot, and without this the cluster would run on forever.
The worker's own processes follow their nanny out (Dask's nanny kills its child when it dies).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

#: Seconds between two looks at the parent.
INTERVAL = 0.5


def dask_setup(server: Any = None) -> None:
    """Dask's preload hook: start watching the parent of this process."""
    parent = int(os.environ.get("MANYHANDS_PARENT_PID", "0"))
    if parent:
        threading.Thread(
            target=_watch, args=(parent,), name="manyhands-watchdog", daemon=True
        ).start()


def _watch(parent: int) -> None:
    while _alive(parent):
        time.sleep(INTERVAL)
    os._exit(0)


def _alive(parent: int) -> bool:
    if os.name == "posix":
        return os.getppid() == parent  # reparented: the parent died
    import psutil

    return psutil.pid_exists(parent)
