"""``NamedTuple``, ``Protocol`` and ``overload`` for the modules a first ``map`` imports,
without importing ``typing``.

``typing`` costs 12 ms to import here, most of a tiny job's first call (and its
``NamedTuple`` compiles every string annotation into a ``ForwardRef``, about 0.2 ms a
record). Type checkers see the real ``typing`` names (the ``TYPE_CHECKING`` branch); at run
time the records are what ``typing.NamedTuple`` makes, a ``collections.namedtuple`` with the
class body's methods, properties and docstring, and the protocols are plain classes, which
nothing instantiates or checks against at run time.

The records are built here rather than by ``collections.namedtuple``, which compiles each
record's ``__new__`` from source: that ``eval`` is half of the 130-170 us a record cost, and a
first ``map`` makes ten (2 ms of its 15). Here each ``__new__`` is a function written out
for its number of fields (up to 24), renamed to the record's fields (``code.replace``); the
rest is namedtuple's own (a tuple subclass, ``_tuplegetter`` fields, ``_make``,
``_replace``, ``_asdict``, the same ``repr``). Records of more fields than are written out
are made by ``collections.namedtuple``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
    from typing import Protocol as Protocol
    from typing import overload as overload
else:
    from collections import namedtuple
    from operator import itemgetter
    from types import FunctionType

    try:
        from _collections import _tuplegetter
    except ImportError:  # an interpreter without it: what namedtuple falls back to

        def _tuplegetter(index, doc):
            return property(itemgetter(index), doc=doc)

    _tuple_new = tuple.__new__

    #: A record's ``__new__`` by its number of fields.
    _NEW = (
        lambda _cls: _tuple_new(_cls, ()),
        lambda _cls, a: _tuple_new(_cls, (a,)),
        lambda _cls, a, b: _tuple_new(_cls, (a, b)),
        lambda _cls, a, b, c: _tuple_new(_cls, (a, b, c)),
        lambda _cls, a, b, c, d: _tuple_new(_cls, (a, b, c, d)),
        lambda _cls, a, b, c, d, e: _tuple_new(_cls, (a, b, c, d, e)),
        lambda _cls, a, b, c, d, e, f: _tuple_new(_cls, (a, b, c, d, e, f)),
        lambda _cls, a, b, c, d, e, f, g: _tuple_new(_cls, (a, b, c, d, e, f, g)),
        lambda _cls, a, b, c, d, e, f, g, h: _tuple_new(_cls, (a, b, c, d, e, f, g, h)),
        lambda _cls, a, b, c, d, e, f, g, h, i: _tuple_new(_cls, (a, b, c, d, e, f, g, h, i)),
        lambda _cls, a, b, c, d, e, f, g, h, i, j: _tuple_new(_cls, (a, b, c, d, e, f, g, h, i, j)),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k)
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k, m)
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n)
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o)
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o, p: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o, p)
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q)
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r)
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s)
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s, t: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s, t)
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s, t, u: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s, t, u)
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s, t, u, v: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s, t, u, v)
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s, t, u, v, w: _tuple_new(
            _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s, t, u, v, w)
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s, t, u, v, w, x: (
            _tuple_new(_cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s, t, u, v, w, x))
        ),
        lambda _cls, a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s, t, u, v, w, x, y: (
            _tuple_new(
                _cls, (a, b, c, d, e, f, g, h, i, j, k, m, n, o, p, q, r, s, t, u, v, w, x, y)
            )
        ),
    )

    def _make(cls, iterable):
        result = _tuple_new(cls, iterable)
        if len(result) != len(cls._fields):
            raise TypeError(f"Expected {len(cls._fields)} arguments, got {len(result)}")
        return result

    import sys

    #: What namedtuple's ``_replace`` raises for a field it does not have (3.13 made it a
    #: TypeError).
    _UNEXPECTED_FIELD = TypeError if sys.version_info >= (3, 13) else ValueError

    def _replace(self, /, **changes):
        result = self._make(map(changes.pop, self._fields, self))
        if changes:
            raise _UNEXPECTED_FIELD(f"Got unexpected field names: {list(changes)!r}")
        return result

    def _repr(self):
        values = ", ".join(
            f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True)
        )
        return f"{self.__class__.__name__}({values})"

    def _asdict(self):
        return dict(zip(self._fields, self, strict=True))

    def _getnewargs(self):
        return tuple(self)

    def _record(name, fields, defaults, module, qualname):
        """What ``namedtuple(name, fields, defaults=defaults, module=module)`` makes."""
        if len(fields) >= len(_NEW):
            return namedtuple(name, fields, defaults=defaults, module=module)
        if len(set(fields)) != len(fields) or any(field.startswith("_") for field in fields):
            raise ValueError(f"{name}: field names must be unique and not start with '_'")
        code = _NEW[len(fields)].__code__.replace(co_varnames=("_cls", *fields), co_name="__new__")
        new = FunctionType(code, globals(), "__new__", tuple(defaults) or None)
        new.__qualname__ = f"{qualname}.__new__"
        new.__doc__ = f"Create new instance of {name}({', '.join(fields)})"
        namespace = {
            "__doc__": f"{name}({', '.join(fields)})",
            "__slots__": (),
            "_fields": fields,
            "_field_defaults": dict(
                zip(fields[len(fields) - len(defaults) :], defaults, strict=True)
            ),
            "__new__": new,
            "_make": classmethod(_make),
            "_replace": _replace,
            "__repr__": _repr,
            "_asdict": _asdict,
            "__getnewargs__": _getnewargs,
            "__match_args__": fields,
        }
        for index, field in enumerate(fields):
            namespace[field] = _tuplegetter(index, f"Alias for field number {index}")
        record = type(name, (tuple,), namespace)
        record.__module__ = module
        record.__qualname__ = qualname
        return record

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
            module = namespace["__module__"]
            record = _record(name, fields, defaults, module, namespace.get("__qualname__", name))
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
