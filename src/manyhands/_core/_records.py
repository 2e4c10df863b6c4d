"""``NamedTuple``, ``Protocol`` and ``overload`` for the modules a first ``map`` imports,
without importing ``typing``.

``typing`` costs 12 ms to import here, most of a tiny job's first call (and its
``NamedTuple`` compiles every string annotation into a ``ForwardRef``, about 0.2 ms a
record). Type checkers see the real ``typing`` names (the ``TYPE_CHECKING`` branch); at run
time the records are what ``typing.NamedTuple`` makes, a ``collections.namedtuple`` with the
class body's methods, properties and docstring, and the protocols are plain classes, which
nothing instantiates or checks against at run time.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
    from typing import Protocol as Protocol
    from typing import overload as overload
else:
    from collections import namedtuple

    #: What ``typing.NamedTuple`` refuses to take from a class body: namedtuple's own.
    _PROHIBITED = frozenset(
        {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults"}
        | {"_make", "_replace", "_asdict", "_source"}
    )
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})

    class _NamedTupleMeta(type):
        def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, object]):
            if bases != (_NamedTupleBase,):
                raise TypeError(f"{name}: a record derives from NamedTuple alone")
            fields = tuple(namespace.get("__annotations__", {}))  # in the order written
            defaults = [namespace[field] for field in fields if field in namespace]
            if any(field not in namespace for field in fields[len(fields) - len(defaults) :]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            record = namedtuple(name, fields, defaults=defaults, module=namespace["__module__"])
            for key, value in namespace.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"{name}: cannot overwrite NamedTuple attribute {key}")
                if key not in _SPECIAL and key not in fields:
                    setattr(record, key, value)
            record.__annotations__ = namespace.get("__annotations__", {})
            return record

    _NamedTupleBase = type.__new__(_NamedTupleMeta, "NamedTuple", (), {})

    def NamedTuple(*_: object, **__: object) -> None:
        raise TypeError("manyhands' NamedTuple supports the class syntax only")

    NamedTuple.__mro_entries__ = lambda bases: (_NamedTupleBase,)

    class Protocol:
        """An interface for the type checker; a plain base class at run time."""

        __slots__ = ()

    def overload(fn):
        """The signatures before an implementation are for the type checker: the
        implementation's ``def`` replaces them."""
        return fn


__all__ = ["NamedTuple", "Protocol", "overload"]
