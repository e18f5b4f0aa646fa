"""``quantdoctor._namedtuple.NamedTuple`` makes the class ``typing.NamedTuple`` makes."""

from __future__ import annotations

import pickle
import typing

import pytest

from quantdoctor import _namedtuple


def _body(base: type) -> dict[str, object]:
    class Point(base):  # type: ignore[misc,valid-type]
        """A point."""

        x: int
        y: int = 2
        label: str = "p"

        def norm(self) -> int:
            return abs(self.x) + abs(self.y)

        @classmethod
        def origin(cls) -> typing.Any:
            return cls(0, 0)

        @property
        def twice(self) -> int:
            return 2 * self.x

    p = Point(3)
    return {
        "fields": Point._fields,
        "defaults": Point._field_defaults,
        "hints": typing.get_type_hints(Point),
        "doc": Point.__doc__,
        "repr": repr(p),
        "values": (p.x, p.y, p.label, p.norm(), p.twice, Point.origin()),
        "replace": p._replace(y=5),
        "asdict": p._asdict(),
        "tuple": tuple(p) == (3, 2, "p") and p == (3, 2, "p"),
        "make": Point._make([1, 2, "q"]),
        "name": (Point.__name__, Point.__module__),
        "is_tuple": isinstance(p, tuple),
        "hash": hash(p) == hash((3, 2, "p")),
    }


def test_the_same_class_as_typing_makes() -> None:
    assert _body(_namedtuple.NamedTuple) == _body(typing.NamedTuple)  # type: ignore[arg-type]


def test_the_same_refusals() -> None:
    for base in (_namedtuple.NamedTuple, typing.NamedTuple):
        with pytest.raises(TypeError, match="Non-default namedtuple field y"):

            class A(base):  # type: ignore[misc,valid-type]
                x: int = 1
                y: int

        with pytest.raises(AttributeError, match="Cannot overwrite NamedTuple attribute _replace"):

            class B(base):  # type: ignore[misc,valid-type]
                x: int

                def _replace(self) -> None: ...


def test_the_project_s_records_pickle_and_compare() -> None:
    from quantdoctor.rules.core import Facets

    facets = Facets("quanto", "qint8", "", "balanced")
    assert pickle.loads(pickle.dumps(facets)) == facets
    assert facets._replace(offload="none").offload == "none"
    assert type(facets).__mro__[1] is tuple


WIDE = [f"f{i}" for i in range(14)]  # past the module's precompiled __new__ (12 fields)


@pytest.mark.parametrize(
    ("fields", "defaults"),
    [
        ([], []),
        (["x"], []),
        (["x", "y"], []),
        (["a", "b", "c"], [2, 3]),
        (["only"], [None]),
        (WIDE[:12], [0]),
        (WIDE, [1, 2]),
    ],
)
def test_the_class_collections_namedtuple_makes(fields: list[str], defaults: list[object]) -> None:
    import collections

    ours = _namedtuple.namedtuple("Rec", fields, defaults, __name__)
    theirs = collections.namedtuple("Rec", fields, defaults=defaults, module=__name__)  # type: ignore[misc]
    values = list(range(len(fields)))
    for cls in (ours, theirs):
        globals()["Rec"] = cls  # pickle finds the class by module and name
        made = cls(*values)
        assert pickle.loads(pickle.dumps(made)) == made
    for attr in ("_fields", "_field_defaults", "__doc__", "__match_args__", "__slots__"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    for name in ("__new__", "_make", "_replace", "__repr__", "_asdict", "__getnewargs__"):
        assert getattr(ours, name).__qualname__ == getattr(theirs, name).__qualname__
        assert getattr(ours, name).__doc__ == getattr(theirs, name).__doc__, name
    a, b = ours(*values), theirs(*values)
    assert (repr(a), a._asdict(), tuple(a), a.__getnewargs__()) == (
        repr(b), b._asdict(), tuple(b), b.__getnewargs__()
    )  # fmt: skip
    assert ours.__new__.__defaults__ == theirs.__new__.__defaults__
    assert [getattr(ours, f).__doc__ for f in fields] == [getattr(theirs, f).__doc__ for f in fields]
    for cls in (ours, theirs):
        with pytest.raises(TypeError, match=f"Expected {len(fields)} arguments, got"):
            cls._make([*values, 9])
        with pytest.raises(ValueError, match="Got unexpected field names"):
            cls(*values)._replace(nope=1)
    import inspect

    assert inspect.signature(ours) == inspect.signature(theirs)
    if fields:  # by keyword, and missing one, as namedtuple's __new__ binds them
        named = dict(zip(fields, values, strict=True))
        assert tuple(ours(**named)) == tuple(theirs(**named))
        required = len(fields) - len(defaults)
        if required:
            messages = []
            for cls in (ours, theirs):
                with pytest.raises(TypeError) as err:
                    cls(*values[: required - 1])
                messages.append(str(err.value))
            assert messages[0] == messages[1]
    with pytest.raises(ValueError):
        _namedtuple.namedtuple("Rec", ["_private"], [], __name__)
    with pytest.raises(ValueError):
        _namedtuple.namedtuple("Rec", ["x", "x"], [], __name__)
