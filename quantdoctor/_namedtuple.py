"""``typing.NamedTuple``'s class syntax, making the class ``collections.namedtuple`` makes.

Importing ``typing`` costs a process about half the interpreter's start-up on a small
machine, and ``collections`` (with the ``operator``, ``keyword``, ``reprlib`` and
``itertools`` it imports) a fifth; the records the command line builds (facets, compiled
rules, costs) need nothing of them but this. A module writes::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from quantdoctor._namedtuple import NamedTuple

and its class is the same class ``typing.NamedTuple`` would make (fields in the order
annotated, defaults, methods, docstring), which the type checker reads as typing's.
``tests/test_namedtuple.py`` holds the two to the same behaviour.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    from _collections import _tuplegetter  # type: ignore[import-not-found]  # namedtuple's fields
except ImportError:  # an interpreter without it: a property of the item, as namedtuple's
    from operator import itemgetter

    def _tuplegetter(index: int, doc: str) -> Any:
        return property(itemgetter(index), doc=doc)


#: What typing.NamedTuple refuses to let a class body define, and does not copy.
_PROHIBITED = frozenset(
    {
        "__new__",
        "__init__",
        "__slots__",
        "__getnewargs__",
        "_fields",
        "_field_defaults",
        "_make",
        "_replace",
        "_asdict",
        "_source",
    }
)
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})


class _NamedTupleMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if ns.get("_root", False):
            return super().__new__(mcs, name, bases, ns)
        fields = list(ns.get("__annotations__", {}))
        defaults: list[Any] = []
        for field in fields:
            if field in ns:
                defaults.append(ns[field])
            elif defaults:
                raise TypeError(
                    f"Non-default namedtuple field {field} cannot follow default field"
                    f"{'s' if len(defaults) > 1 else ''} "
                    f"{', '.join(f for f in fields if f in ns)}"
                )
        made = namedtuple(name, fields, defaults, ns["__module__"])
        made.__annotations__ = dict(ns.get("__annotations__", {}))
        for key, value in ns.items():
            if key in _PROHIBITED:
                raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
            if key not in _SPECIAL and key not in made._fields:
                setattr(made, key, value)
        return made


_tuple_new = tuple.__new__
#: ``__new__`` of a record of 0 to 12 fields, compiled with this module: a class takes a
#: copy under its fields' names (``code.replace``), which binds arguments by name as
#: namedtuple's own does, without compiling source at each class (a tenth of a
#: millisecond each, ten classes on the command line's paths).
_NEW = (
    lambda _cls: _tuple_new(_cls, ()),
    lambda _cls, _0: _tuple_new(_cls, (_0,)),
    lambda _cls, _0, _1: _tuple_new(_cls, (_0, _1)),
    lambda _cls, _0, _1, _2: _tuple_new(_cls, (_0, _1, _2)),
    lambda _cls, _0, _1, _2, _3: _tuple_new(_cls, (_0, _1, _2, _3)),
    lambda _cls, _0, _1, _2, _3, _4: _tuple_new(_cls, (_0, _1, _2, _3, _4)),
    lambda _cls, _0, _1, _2, _3, _4, _5: _tuple_new(_cls, (_0, _1, _2, _3, _4, _5)),
    lambda _cls, _0, _1, _2, _3, _4, _5, _6: _tuple_new(_cls, (_0, _1, _2, _3, _4, _5, _6)),
    lambda _cls, _0, _1, _2, _3, _4, _5, _6, _7: _tuple_new(_cls, (_0, _1, _2, _3, _4, _5, _6, _7)),
    lambda _cls, _0, _1, _2, _3, _4, _5, _6, _7, _8: _tuple_new(
        _cls, (_0, _1, _2, _3, _4, _5, _6, _7, _8)
    ),
    lambda _cls, _0, _1, _2, _3, _4, _5, _6, _7, _8, _9: _tuple_new(
        _cls, (_0, _1, _2, _3, _4, _5, _6, _7, _8, _9)
    ),
    lambda _cls, _0, _1, _2, _3, _4, _5, _6, _7, _8, _9, _10: _tuple_new(
        _cls, (_0, _1, _2, _3, _4, _5, _6, _7, _8, _9, _10)
    ),
    lambda _cls, _0, _1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11: _tuple_new(
        _cls, (_0, _1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11)
    ),
)
_FUNCTION: Any = type(_NEW[0])  # types.FunctionType, without importing types


def namedtuple(typename: str, fields: list[str], defaults: list[Any], module: str) -> Any:
    """The class ``collections.namedtuple(typename, fields, defaults=defaults,
    module=module)`` returns, built the way it builds it (fields, ``__new__`` with their
    defaults, ``_make``, ``_replace``, ``_asdict``, the repr, pickling), without
    importing ``collections``."""
    for field in (typename, *fields):
        if not field.isidentifier() or (field in fields and field.startswith("_")):
            raise ValueError(f"Type names and field names must be valid identifiers: {field!r}")
    if len(set(fields)) != len(fields):
        raise ValueError(f"Encountered duplicate field name: {fields!r}")
    names = tuple(sys.intern(f) for f in fields)
    count = len(names)
    arg_list = ", ".join(names)
    if count == 1:
        arg_list += ","
    repr_fmt = "(" + ", ".join(f"{f}=%r" for f in names) + ")"
    namespace = {"_tuple_new": _tuple_new, "__builtins__": {}, "__name__": f"namedtuple_{typename}"}
    if count < len(_NEW):  # the module's own __new__ of this many fields, under their names
        code = _NEW[count].__code__.replace(co_varnames=("_cls", *names), co_name="__new__")
        new = _FUNCTION(code, namespace, "__new__")
    else:  # namedtuple's way: compiled here, from the fields checked above to be identifiers
        new = eval(f"lambda _cls, {arg_list}: _tuple_new(_cls, ({arg_list}))", namespace)
        new.__name__ = "__new__"
    new.__doc__ = f"Create new instance of {typename}({arg_list})"
    new.__defaults__ = tuple(defaults)

    def _make(cls: Any, iterable: Any) -> Any:
        result = _tuple_new(cls, iterable)
        if len(result) != count:
            raise TypeError(f"Expected {count} arguments, got {len(result)}")
        return result

    _make.__doc__ = f"Make a new {typename} object from a sequence or iterable"

    def _replace(self: Any, /, **kwds: Any) -> Any:
        result = self._make(map(kwds.pop, names, self))
        if kwds:
            raise ValueError(f"Got unexpected field names: {list(kwds)!r}")
        return result

    _replace.__doc__ = f"Return a new {typename} object replacing specified fields with new values"

    def __repr__(self: Any) -> str:
        "Return a nicely formatted representation string"
        text: str = self.__class__.__name__ + repr_fmt % self
        return text

    def _asdict(self: Any) -> dict[str, Any]:
        "Return a new dict which maps field names to their values."
        return dict(zip(self._fields, self, strict=True))

    def __getnewargs__(self: Any) -> tuple[Any, ...]:
        "Return self as a plain tuple.  Used by copy and pickle."
        return tuple(self)

    for method in (new, _make, _replace, __repr__, _asdict, __getnewargs__):
        method.__qualname__ = f"{typename}.{method.__name__}"
    body: dict[str, Any] = {
        "__doc__": f"{typename}({arg_list})",
        "__slots__": (),
        "_fields": names,
        "_field_defaults": dict(zip(names[count - len(defaults) :], defaults, strict=True)),
        "__new__": new,
        "_make": classmethod(_make),
        "_replace": _replace,
        "__repr__": __repr__,
        "_asdict": _asdict,
        "__getnewargs__": __getnewargs__,
        "__match_args__": names,
    }
    for index, field in enumerate(names):
        body[field] = _tuplegetter(index, sys.intern(f"Alias for field number {index}"))
    made = type(typename, (tuple,), body)
    made.__module__ = module
    return made


NamedTuple = _NamedTupleMeta("NamedTuple", (), {"_root": True, "__module__": __name__})
