"""``typing.NamedTuple``'s class syntax, built on ``collections.namedtuple``.

Importing ``typing`` costs a process about half the interpreter's start-up on a small
machine, and the records the command line builds (facets, compiled rules, costs) need
nothing of it but this. A module writes::

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

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
        made = namedtuple(name, fields, defaults=defaults, module=ns["__module__"])  # type: ignore[misc]
        made.__annotations__ = dict(ns.get("__annotations__", {}))
        for key, value in ns.items():
            if key in _PROHIBITED:
                raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
            if key not in _SPECIAL and key not in made._fields:
                setattr(made, key, value)
        return made


NamedTuple = _NamedTupleMeta("NamedTuple", (), {"_root": True, "__module__": __name__})
