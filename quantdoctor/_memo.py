"""``functools.lru_cache`` and ``functools.cached_property`` for the command line's modules.

Importing ``functools`` imports ``collections`` (with ``operator``, ``keyword``,
``reprlib``, ``itertools`` and ``types``): together a fifth of the interpreter's own
start-up on a small machine, for two decorators. A module writes::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from functools import cached_property, lru_cache
    else:
        from quantdoctor._memo import cached_property, lru_cache

and the type checker reads functools' signatures. ``lru_cache(maxsize=N)`` is functools'
own cache (``_functools._lru_cache_wrapper``, which ``functools.lru_cache`` wraps): the
results of up to N distinct calls (``None``: every call), the least recently used
forgotten first; where the interpreter lacks it, ``functools.lru_cache`` itself.
``cached_property`` computes an attribute on first access and stores it in the
instance's ``__dict__``, as functools' does.
``tests/test_memo.py`` holds them to functools' behaviour.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

try:  # functools' own cache, in C: what functools.lru_cache wraps
    from _functools import _lru_cache_wrapper  # type: ignore[import-not-found]
except ImportError:  # an interpreter without it: functools' lru_cache itself
    _lru_cache_wrapper = None


class _CacheInfo(tuple):  # type: ignore[type-arg]
    """``cache_info()``'s (hits, misses, maxsize, currsize), as functools' names them."""

    __slots__ = ()

    def __new__(cls, hits: int, misses: int, maxsize: int | None, currsize: int) -> _CacheInfo:
        return tuple.__new__(cls, (hits, misses, maxsize, currsize))

    def __repr__(self) -> str:
        return "CacheInfo(hits={}, misses={}, maxsize={}, currsize={})".format(*self)


def lru_cache(maxsize: int | None = 128) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if maxsize is not None and (type(maxsize) is not int or maxsize < 1):
        raise TypeError(f"maxsize must be a positive int or None, not {maxsize!r}")
    if _lru_cache_wrapper is None:
        import functools

        return functools.lru_cache(maxsize=maxsize)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        wrapper: Any = _lru_cache_wrapper(func, maxsize, False, _CacheInfo)
        for name in ("__module__", "__name__", "__qualname__", "__doc__"):  # update_wrapper's
            setattr(wrapper, name, getattr(func, name, None))
        wrapper.__dict__.update(getattr(func, "__dict__", {}))
        wrapper.__wrapped__ = func
        return wrapper  # type: ignore[no-any-return]

    return decorate


class cached_property:
    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func
        self.attrname: str | None = None
        self.__doc__ = func.__doc__
        self.__module__ = func.__module__

    def __set_name__(self, owner: type, name: str) -> None:
        if self.attrname is None:
            self.attrname = name
        elif name != self.attrname:
            raise TypeError(
                "Cannot assign the same cached_property to two different names "
                f"({self.attrname!r} and {name!r})."
            )

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        if self.attrname is None:
            raise TypeError(
                "Cannot use cached_property instance without calling __set_name__ on it."
            )
        value = instance.__dict__[self.attrname] = self.func(instance)
        return value
