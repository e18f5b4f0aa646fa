"""The condition language of matrix.yaml, parsed once into a small tree and evaluated
many times against facts, in Kleene's three-valued logic: a test on an unknown fact is
``None`` (unknown), never false.

Forms (YAML):
    {fact: gpu.cuda_cc, lt: "7.5"}            comparisons: is, is_not, in, not_in,
    {fact: packages.bitsandbytes, version: "<0.47"}   version (PEP 440 specifiers),
    {fact: packages.mslk, absent: true}       lt, le, gt, ge, matches (regex), absent
    {all: [...]}  {any: [...]}  {not: {...}}
"""

from __future__ import annotations

from quantdoctor.errors import InvalidInputError
from quantdoctor.rules.facts import Facts, is_known_fact
from quantdoctor.rules.versions import compare as compare_versions
from quantdoctor.rules.versions import satisfies, valid_specifier, version_key
from quantdoctor.rules.vocab import canonical_name

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

Tri = bool | None  # None is "unknown"

OPERATORS: tuple[str, ...] = (
    "is",
    "is_not",
    "in",
    "not_in",
    "version",
    "lt",
    "le",
    "gt",
    "ge",
    "matches",
    "absent",
)


_OPERATOR_SET = frozenset(OPERATORS)


class ConditionError(ValueError):
    """A malformed condition; ``path`` says where inside it."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class Node:
    """A node of a parsed condition: an immutable value (equal when its fields are)."""

    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, f) == getattr(other, f) for f in self.__slots__
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, *(getattr(self, f) for f in self.__slots__)))

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def eval(self, facts: Facts, missing: set[str]) -> Tri:
        raise NotImplementedError

    def facts(self) -> Iterable[str]:
        raise NotImplementedError


class Always(Node):
    __slots__ = ()

    def eval(self, facts: Facts, missing: set[str]) -> Tri:
        return True

    def facts(self) -> Iterable[str]:
        return ()


class All(Node):
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Node, ...]) -> None:
        self.parts = parts

    def eval(self, facts: Facts, missing: set[str]) -> Tri:
        result: Tri = True
        for part in self.parts:
            value = part.eval(facts, missing)
            if value is False:
                return False
            if value is None:
                result = None
        return result

    def facts(self) -> Iterable[str]:
        for p in self.parts:
            yield from p.facts()


class Any_(Node):
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Node, ...]) -> None:
        self.parts = parts

    def eval(self, facts: Facts, missing: set[str]) -> Tri:
        result: Tri = False
        for part in self.parts:
            value = part.eval(facts, missing)
            if value is True:
                return True
            if value is None:
                result = None
        return result

    def facts(self) -> Iterable[str]:
        for p in self.parts:
            yield from p.facts()


class Not(Node):
    __slots__ = ("part",)

    def __init__(self, part: Node) -> None:
        self.part = part

    def eval(self, facts: Facts, missing: set[str]) -> Tri:
        value = self.part.eval(facts, missing)
        return None if value is None else not value

    def facts(self) -> Iterable[str]:
        return self.part.facts()


def _compare(op: str, value: Any, operand: Any) -> bool:
    if isinstance(operand, bool) or not isinstance(operand, (int, float)):
        _check_late(op, operand)
        return bool(compare_versions(op, str(value), str(operand)))
    try:
        a, b = float(value), float(operand)
    except (TypeError, ValueError):
        return False
    return bool({"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op])


class Leaf(Node):
    __slots__ = ("fact", "op", "operand")

    def __init__(self, fact: str, op: str, operand: Any) -> None:
        self.fact = fact
        self.op = op
        self.operand = operand

    def eval(self, facts: Facts, missing: set[str]) -> Tri:
        if self.fact not in facts:
            missing.add(self.fact)
            return None
        value = facts[self.fact]
        if self.op == "absent":
            return (value is None) is bool(self.operand)
        if value is None:  # known absent satisfies only the negative tests
            return self.op in ("is_not", "not_in")
        return _TESTS[self.op](value, self.operand)

    def facts(self) -> Iterable[str]:
        return (self.fact,)


def _version_test(value: Any, spec: Any) -> bool:
    _check_late("version", spec)
    return satisfies(str(value), str(spec))


def _search(pattern: str, text: str) -> bool:
    import re  # only a rule that matches a pattern pays for re (half a process's start-up)

    _check_late("matches", pattern)
    return re.search(pattern, text) is not None


def _check_late(op: str, operand: Any) -> None:
    """Check at its first use an operand that a condition read back from quantdoctor's
    cache left unchecked (``parse(checked=False)``)."""
    if type(operand) in _KEPT and (op, operand) in _SAFE:
        return
    try:
        _check_operand("when", op, operand)
    except ConditionError as err:
        raise InvalidInputError(
            f"a rule read back from quantdoctor's cache is not one it wrote ({err}); "
            "run again with QUANTDOCTOR_CACHE_DIR set to an empty folder"
        ) from None


#: The (operator, operand) pairs whose operands passed ``_check_operand`` in this process
#: (the costly checks: patterns, version specifiers, versions compared).
_SAFE: set[tuple[str, Any]] = set()
#: The operands' types ``_SAFE`` holds (any other is checked again at each use).
_KEPT = (str, int, float)


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "is": lambda v, o: v == o,
    "is_not": lambda v, o: v != o,
    "in": lambda v, o: v in o,
    "not_in": lambda v, o: v not in o,
    "version": _version_test,
    "matches": lambda v, o: _search(o, str(v)[:4096]),  # a fact, not a log
    "lt": lambda v, o: _compare("lt", v, o),
    "le": lambda v, o: _compare("le", v, o),
    "gt": lambda v, o: _compare("gt", v, o),
    "ge": lambda v, o: _compare("ge", v, o),
}


def parse(raw: Any, path: str = "when", *, checked: bool = True) -> Node:
    """Parse a YAML condition into a tree, or raise ``ConditionError`` naming where.

    ``checked=False`` (conditions read back from quantdoctor's own cache, which passed
    every check when this very code wrote the entry) checks the types of the operands
    only, and leaves the costly checks (a pattern's compiling and how slowly it could run,
    a version specifier's or a version's reading) to each operand's first use, so that a
    load needs no ``re`` and reads no version of a package that is not installed."""
    if raw is None or raw is True:
        return Always()
    if not isinstance(raw, dict):
        raise ConditionError(path, f"expected a mapping, got {type(raw).__name__}")
    if len(raw) == 2 and "fact" in raw:  # the common form, read at once: a fact, one test
        op = next(key for key in raw if key != "fact")
        fact = raw["fact"]
        if op in _OPERATOR_SET and type(fact) is str and is_known_fact(fact):
            return _leaf(path, fact, op, raw[op], checked)
    keys = set(raw)
    for combinator, cls in (("all", All), ("any", Any_)):
        if combinator in raw:
            if keys != {combinator}:
                raise ConditionError(path, f"'{combinator}' must stand alone")
            items = raw[combinator]
            if not isinstance(items, list) or not items:
                raise ConditionError(f"{path}.{combinator}", "expected a non-empty list")
            return cls(
                tuple(
                    parse(item, f"{path}.{combinator}[{i}]", checked=checked)
                    for i, item in enumerate(items)
                )
            )
    if "not" in raw:
        if keys != {"not"}:
            raise ConditionError(path, "'not' must stand alone")
        return Not(parse(raw["not"], f"{path}.not", checked=checked))
    if "fact" not in raw:
        raise ConditionError(
            path, "expected 'fact' with one operator, or one of 'all', 'any', 'not'"
        )
    fact = raw["fact"]
    if not isinstance(fact, str) or not is_known_fact(fact):
        from quantdoctor.rules.facts import FACT_NAMES
        from quantdoctor.rules.vocab import suggest

        raise ConditionError(
            f"{path}.fact",
            f"{fact!r} is not a fact; {suggest(str(fact), (*FACT_NAMES, 'packages.<name>'))}",
        )
    ops = keys - {"fact"}
    if len(ops) != 1 or not ops <= _OPERATOR_SET:
        from quantdoctor.rules.vocab import suggest

        unknown = sorted(ops - set(OPERATORS))
        if unknown:
            problem = f"{unknown[0]!r} is not an operator; {suggest(unknown[0], OPERATORS)}"
        else:
            got = ", ".join(sorted(ops)) or "none"
            problem = f"expected exactly one operator, got {got}; valid values are " + ", ".join(
                OPERATORS
            )
        raise ConditionError(path, problem)
    op = ops.pop()
    return _leaf(path, fact, op, raw[op], checked)


def _leaf(path: str, fact: str, op: str, operand: Any, checked: bool) -> Leaf:
    """A test of a known fact by a known operator, its operand checked; read back
    unchecked, a pattern, a version specifier or a version compared is checked at its
    first use (``_check_late``), once its type is right."""
    if checked or op not in _LATE:
        _check_operand(path, op, operand)
    elif not isinstance(operand, _LATE[op]) or isinstance(operand, bool):
        raise ConditionError(f"{path}.{op}", "expected a pattern, version or number")
    return Leaf(fact, op, operand)


#: The operators whose operands' checks wait for their first use in a cached condition,
#: and the types those operands must have.
_LATE: dict[str, tuple[type, ...]] = {
    "matches": (str,),
    "version": (str,),
    "lt": (str, int, float),
    "le": (str, int, float),
    "gt": (str, int, float),
    "ge": (str, int, float),
}


def rule_condition(when: Any, holds_for: Mapping[str, str], *, checked: bool = True) -> Node:
    """A rule's ``when`` scoped by its ``holds_for`` (distribution -> PEP 440 specifier)."""
    node = parse(when, checked=checked)
    scope = [
        parse(
            {
                "fact": "torch.version" if dist == "torch" else f"packages.{canonical_name(dist)}",
                "version": spec,
            },
            checked=checked,
        )
        for dist, spec in holds_for.items()
    ]
    return All((*scope, node)) if scope else node


def _check_operand(where: str, op: str, operand: Any) -> None:
    """Check a test's operand; ``where`` is the test's path (``when.all[0]``)."""
    if op == "is" or op == "is_not":
        return
    path = f"{where}.{op}"
    if op in ("in", "not_in") and not isinstance(operand, list):
        raise ConditionError(path, "expected a list")
    if op == "version" and not valid_specifier(str(operand)):
        raise ConditionError(
            path, f"{operand!r} is not a version specifier; valid look like '>=0.45,<0.48'"
        )
    if (
        op in ("lt", "le", "gt", "ge")
        and not isinstance(operand, (int, float))
        and version_key(str(operand)) is None
    ):
        raise ConditionError(path, f"{operand!r} is neither a number nor a version")
    if op == "matches":
        import re

        from quantdoctor.rules.patterns import unsafe

        try:
            re.compile(str(operand))
        except re.error as err:
            raise ConditionError(path, f"bad regular expression: {err}") from None
        why = unsafe(str(operand))
        if why:
            raise ConditionError(path, f"pattern could run slowly on long text: {why}")
    if op == "absent" and not isinstance(operand, bool):
        raise ConditionError(path, "expected true or false")
    if op in _LATE and type(operand) in _KEPT:
        _SAFE.add((op, operand))
