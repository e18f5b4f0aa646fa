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
