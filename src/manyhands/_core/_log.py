"""The "manyhands" logger, without importing ``logging`` on the path of a job that logs nothing.

``logging`` costs ~10 ms to import, a third of a tiny job's first call. If no module of the
process has imported it, no handler, level or filter can exist, so a DEBUG record could reach
no one: ``debug`` then returns at once. Warnings are always logged (Python's last-resort
handler prints them), importing ``logging`` then.
"""

from __future__ import annotations

import sys

__all__ = ["debug", "warning"]

NAME = "manyhands"


def debug(message: str, *args: object) -> None:
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(NAME).debug(message, *args)


def warning(message: str, *args: object) -> None:
    import logging

    logging.getLogger(NAME).warning(message, *args)
