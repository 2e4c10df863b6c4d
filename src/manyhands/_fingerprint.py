"""Fingerprints of items: equal items give equal bytes, in any process, on any run.

A journal recognises an item by its fingerprint, so the bytes must not depend on the process:
``hash()`` of a string is salted per process and a set's pickle lists its elements in that
salted order. Common values (None, bools, numbers, strings, bytes, and tuples, lists, dicts and
sets of them) are therefore encoded canonically, sets and dicts in sorted order; anything else
by its pickle, which is stable for the objects people pass as items (dataclasses, arrays).
Short encodings are the fingerprint itself; longer ones are hashed (BLAKE2b, 16 bytes).
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

__all__ = ["fingerprint"]

_HASH_OVER = 24  # bytes: longer encodings are hashed


def fingerprint(item: Any) -> bytes:
    """Bytes that identify ``item`` by value."""
    encoded = _encode(item)
    if len(encoded) <= _HASH_OVER:
        return encoded
    return b"#" + hashlib.blake2b(encoded, digest_size=16).digest()


def _encode(item: Any) -> bytes:
    kind = type(item)
    if kind is int:
        return b"i%d" % item
    if kind is str:
        return b"s" + str.encode(item, "utf-8", "surrogatepass")
    if kind is float:
        return b"f" + repr(item).encode()
    if item is None or kind is bool:
        return repr(item).encode()
    if kind is bytes:
        return b"b" + bytes(item)
    if kind is tuple or kind is list:
        return _sequence(b"t" if kind is tuple else b"l", [_encode(x) for x in item])
    if kind is dict:
        pairs = sorted(_sequence(b"", [_encode(k), _encode(v)]) for k, v in item.items())
        return _sequence(b"d", pairs)
    if kind is set or kind is frozenset:
        return _sequence(b"e", sorted(_encode(x) for x in item))
    return b"p" + _pickled(item)


def _sequence(tag: bytes, parts: list[bytes]) -> bytes:
    # Each part is prefixed with its length, so no two different lists encode alike.
    return tag + b"".join(b"%d:" % len(part) + part for part in parts)


def _pickled(item: Any) -> bytes:
    try:
        return bytes(pickle.dumps(item, protocol=4))
    except Exception:
        try:
            import cloudpickle

            return bytes(cloudpickle.dumps(item, protocol=4))
        except Exception:
            # Cannot be pickled at all (a lock, a socket): its type and repr are what is left.
            return f"{type(item).__module__}.{type(item).__qualname__}:{item!r}".encode()
