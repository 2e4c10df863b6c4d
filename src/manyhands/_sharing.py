"""``manyhands.shared(value)``: the handle. What it does with processes is in
``backends/_shared.py``, which writes the shared copy and maps it in workers; this module is
the part every layer may know (the planner sizes handles; a worker rebuilds them).
"""

from __future__ import annotations

import os
import threading

TYPE_CHECKING = False  # a worker imports this module: typing stays off its start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Generic, TypeVar

    T = TypeVar("T")

    class _Generic(Generic[T]):
        __slots__ = ()
else:
    T = None

    class _Generic:  # ``Shared[int]`` works at run time, without importing typing
        __slots__ = ()
        __class_getitem__ = classmethod(lambda cls, item: cls)


__all__ = ["Shared", "shared"]


def shared(value: T) -> Shared[T]:
    """``value``, to be shared with worker processes through shared memory instead of copied.

    Use the handle in the function (its closure, defaults or bound object) and read
    ``handle.value`` there. Large numpy arrays a function reaches are shared without this;
    ``shared()`` is for what that cannot see (a large dict, a model, a DataFrame of Python
    objects) and for data that several jobs use: it is pickled once for all of them, and
    each worker process unpickles it once. See ``Shared`` for its lifetime.
    """
    if isinstance(value, Shared):
        raise TypeError(f"shared(value): value is already shared ({value!r}); pass it as it is")
    return Shared(value)


class Shared(_Generic[T]):
    """A value shared with worker processes (``manyhands.shared(value)``).

    ``value`` is the object itself in the caller and in threads; in a worker process, its
    copy, unpickled once there from shared memory (numpy arrays in it are views of the
    shared pages, copy-on-write).

    Lifetime: the shared copy is written the first time a job sends the handle to worker
    processes, and is kept for later jobs until ``close()`` (or the end of a ``with`` block)
    or until the handle is garbage-collected; jobs already running keep what they use.
    A worker keeps its copy while a function that uses it is among the 32 it caches. Passed
    as an item, as a result, to Dask or on Windows, a handle travels as a pickled copy of
    its value.
    """

    __slots__ = ("__weakref__", "_file", "_lock", "_nbytes", "_value", "token")

    def __init__(self, value: T, *, token: str | None = None, nbytes: int | None = None) -> None:
        """``token`` and ``nbytes``: a worker process's copy of a caller's handle."""
        self._value = value
        #: Names this value in worker processes (unique across callers).
        self.token = os.urandom(12).hex() if token is None else token
        #: Its shared copy, made by ``copy()``.
        self._file: Any = None
        self._nbytes = nbytes
        self._lock = threading.Lock()

    @property
    def value(self) -> T:
        return self._value

    @property
    def nbytes(self) -> int | None:
        """The size of its shared copy (pickle and buffers), once it has been written."""
        return self._nbytes

    @property
    def copied(self) -> bool:
        """Whether it holds a shared copy now."""
        return self._file is not None

    def copy(self, write: Callable[[T], Any]) -> Any:
        """Its shared copy: ``write(value)`` makes it the first time (or after ``close()``);
        the result's ``nbytes`` is its size. ``backends._shared`` writes and maps it."""
        with self._lock:
            if self._file is None:
                self._file = write(self._value)
                self._nbytes = self._file.nbytes
            return self._file

    def close(self) -> None:
        """Release the shared copy; a job that uses the handle again writes a new one."""
        with self._lock:
            self._file = None

    def __enter__(self) -> Shared[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = type(self._value)
        return f"<manyhands.Shared {kind.__module__}.{kind.__qualname__} {self.token[:8]}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled other than by a function's pickle here (an item, a result, Dask): a copy.
        return shared, (self._value,)
