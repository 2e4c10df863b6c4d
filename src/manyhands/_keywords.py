"""The keyword options' types, for type checkers: ``**options: Unpack[CallKeywords]``.

Imported by type checkers only (under ``TYPE_CHECKING``: it imports ``typing``) and by the
test that holds its names and types equal to ``_options.Keywords``, where the defaults live.
"""

from __future__ import annotations

import os
from typing import TypedDict

from ._core._failure import Retry
from ._options import Dask, Journal, Processes

__all__ = ["CallKeywords", "MapKeywords"]


class MapKeywords(TypedDict, total=False):
    """What every map takes: a Pool's methods and the one-call functions."""

    ordered: bool
    chunksize: int | None
    progress: bool
    errors: str
    timeout: float | None
    retries: int | Retry
    memory_floor: int | None
    journal: str | os.PathLike[str] | Journal | None
    output: str


class CallKeywords(MapKeywords, total=False):
    """What the one-call functions take besides: where the work runs."""

    backend: str | Processes | Dask
    workers: int | None
