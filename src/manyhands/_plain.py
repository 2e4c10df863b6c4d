"""The standard library's C pickler, where it pickles as cloudpickle would.

cloudpickle (27 ms to import here, with dataclasses, inspect and typing; three to five times
that beside a hundred threads that keep the GIL busy) is needed only for what must travel by
value: functions and classes defined in ``__main__``, lambdas, closures, anything that cannot
be found again by its module and name, and modules registered with
``cloudpickle.register_pickle_by_value``. Everything else both pickle by reference, the same
bytes. ``PlainPickler`` is the C pickler that refuses (``ByValue``) the first object that
cloudpickle would send by value: its callers then pickle with cloudpickle, from the start.

A leaf module: the planner (``_core``) sizes with it and the process backend ships with it.
"""

from __future__ import annotations

import pickle
import sys
import types

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ByValue", "PlainPickler", "by_reference"]


class ByValue(Exception):
    """Raised by ``PlainPickler`` for an object only cloudpickle pickles (by value)."""


def by_reference(obj: object) -> bool:
    """Whether ``obj`` (a function or a class) is found again by its module and qualified
    name, in a module cloudpickle has not been told to pickle by value."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return False
    if module_name == "__main__" or "<" in qualname:  # <lambda>, <locals>
        return False
    module = sys.modules.get(module_name)
    if module is None:
        return False
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            return False
    if found is not obj:
        return False
    cloudpickle = sys.modules.get("cloudpickle")
    if cloudpickle is not None:  # registered only through cloudpickle: only if imported
        registered = cloudpickle.list_registry_pickle_by_value()
        if any(module_name == name or module_name.startswith(name + ".") for name in registered):
            return False
    return True


class PlainPickler(pickle.Pickler):
    """``pickle.Pickler`` (the C one) that raises ``ByValue`` where cloudpickle would pickle
    by value. The C pickler calls ``reducer_override`` for every function and class it meets
    (not for exact ints, strings, lists, dicts or tuples: no cost there)."""

    def reducer_override(self, obj: object) -> Any:
        if isinstance(obj, (type, types.FunctionType)) and not by_reference(obj):
            raise ByValue(obj)
        return NotImplemented
