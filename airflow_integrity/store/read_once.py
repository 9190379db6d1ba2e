"""``read_once``: a property computed on first access and kept in the instance, without a lock.

``functools.cached_property`` takes a lock on every first access on Python 3.11 (removed in 3.12), which made
reading a page of events' bodies twice as slow. As there, the value is stored in the instance's ``__dict__``
under the property's name, so later accesses are plain attribute reads; a msgspec struct needs ``dict=True``. Two
threads reading it at once may both compute it; one value is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class read_once(Generic[T]):
    def __init__(self, compute: Callable[[Any], T]) -> None:
        self._compute = compute
        self._name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> read_once[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> T | read_once[T]:
        if instance is None:
            return self
        value = self._compute(instance)
        instance.__dict__[self._name] = value
        return value
