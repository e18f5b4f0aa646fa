"""PEP 440 versions and specifiers for the evaluator, without importing ``packaging``.

Every condition on a version (``holds_for``, ``version:``, ``lt: "2.6"``) is decided here.
``packaging`` costs a command ~8 ms of imports and regular expressions, more than the
evaluation itself, so the forms the matrix and overlays write (``>=0.45,<0.48``,
``==0.17.*``, ``~=2.6``, ``!=1.0``, versions like ``2.13.0+cu126``, ``0.19.0rc1``,
``1.0.post2.dev3``) are parsed and compared here, and anything else (an epoch, ``===``,
a local label in a specifier, a spelling outside the normal form) is handed to
``packaging`` itself, so that every answer is ``packaging``'s (``SpecifierSet(spec,
prereleases=True)``, ``Version``). ``tests/test_versions.py`` checks the two agree.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from functools import lru_cache
    from typing import Any
else:  # functools imports collections: ~3 ms of a command
    from quantdoctor._memo import lru_cache

#: The normal form (and its common variants: a "v", upper case, "-"/"_" separators are
#: left to packaging): release, pre-release, post-release, dev-release, local label. The
#: patterns are the grammar; ``_normal`` and ``_clause`` read it with ``str`` methods (a
#: process that imports ``re`` pays half its start-up), and ``tests/test_versions.py``
#: holds them to the patterns, match for match.
VERSION_PATTERN = (
    r"v?(\d+(?:\.\d+)*)"
    r"(?:(a|b|rc)(\d+))?"
    r"(?:\.post(\d+))?"
    r"(?:\.dev(\d+))?"
    r"(?:\+([a-z0-9]+(?:\.[a-z0-9]+)*))?"
)
SPEC_PATTERN = r"\s*(~=|==|!=|<=|>=|<|>)\s*([0-9a-z.+]+?)(\.\*)?\s*"
_OPS = ("~=", "==", "!=", "<=", ">=", "<", ">")
_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_SPEC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.+")
_INF = float("inf")
_PRE_ORDER = {"a": 0, "b": 1, "rc": 2}


class V:
    """A parsed version: what ``packaging.version.Version`` compares, as a sort key."""

    __slots__ = ("dev", "key", "local", "post", "pre", "public", "release")

    def __init__(
        self,
        release: tuple[int, ...],
        pre: tuple[int, int] | None,
        post: int | None,
        dev: int | None,
        local: tuple[Any, ...] | None,
    ) -> None:
        self.release = release
        self.pre = pre
        self.post = post
        self.dev = dev
        self.local = local
        trimmed = list(release)
        while trimmed and trimmed[-1] == 0:  # 1.0 == 1 (packaging strips every one)
            trimmed.pop()
        # packaging's _cmpkey: a dev release sorts before the pre-releases of its release
        if pre is None and post is None and dev is not None:
            pre_key: Any = (-_INF,)
        elif pre is None:
            pre_key = (_INF,)
        else:
            pre_key = pre
        post_key: Any = (-_INF,) if post is None else (post,)
        dev_key: Any = (_INF,) if dev is None else (dev,)
        self.public = (tuple(trimmed), pre_key, post_key, dev_key)
        if local is None:
            local_key: Any = ((-_INF, ""),)
        else:
            local_key = tuple((i, "") if isinstance(i, int) else (-_INF, i) for i in local)
        self.key = (*self.public, local_key)

    @property
    def is_prerelease(self) -> bool:
        return self.pre is not None or self.dev is not None

    @property
    def is_postrelease(self) -> bool:
        return self.post is not None

    def base(self) -> tuple[int, ...]:
        return self.public[0]


@lru_cache(maxsize=4096)
def _parse(text: str) -> V | None:
    """The version in the normal form, or None (then ``packaging`` decides)."""
    groups = _normal(text.strip())
    if groups is None:
        return None
    numbers, pre_word, pre_n, post_n, dev_n, local_text = groups
    release = tuple(int(x) for x in numbers.split("."))
    pre = (_PRE_ORDER[pre_word], int(pre_n)) if pre_word and pre_n else None
    post = int(post_n) if post_n is not None else None
    dev = int(dev_n) if dev_n is not None else None
    local = (
        tuple(int(p) if p.isdigit() else p for p in local_text.split(".")) if local_text else None
    )
    return V(release, pre, post, dev, local)


def _digits(text: str, i: int) -> int:
    """The end of the run of decimal digits (``\\d``: ``str.isdecimal``) from ``i``."""
    n = len(text)
    while i < n and text[i].isdecimal():
        i += 1
    return i


def _normal(
    text: str,
) -> tuple[str, str | None, str | None, str | None, str | None, str | None] | None:
    """``VERSION_PATTERN.fullmatch(text)``'s groups, read by hand (each part is optional
    and starts with what no earlier part can end with, so one pass decides)."""
    i = 1 if text.startswith("v") else 0
    end = _digits(text, i)
    if end == i:
        return None
    while end < len(text) - 1 and text[end] == "." and text[end + 1].isdecimal():
        end = _digits(text, end + 1)
    release, i = text[i:end], end
    pre_word = pre_n = post_n = dev_n = local = None
    for word in ("rc", "a", "b"):
        if text.startswith(word, i) and _digits(text, i + len(word)) > i + len(word):
            end = _digits(text, i + len(word))
            pre_word, pre_n, i = word, text[i + len(word) : end], end
            break
    for tag in (".post", ".dev"):
        if text.startswith(tag, i) and _digits(text, i + len(tag)) > i + len(tag):
            end = _digits(text, i + len(tag))
            if tag == ".post":
                post_n = text[i + len(tag) : end]
            else:
                dev_n = text[i + len(tag) : end]
            i = end
    if text.startswith("+", i):
        rest = text[i + 1 :]
        if rest and all(part and set(part) <= _LOCAL for part in rest.split(".")):
            local, i = rest, len(text)
    return (release, pre_word, pre_n, post_n, dev_n, local) if i == len(text) else None


@lru_cache(maxsize=4096)
def version_key(text: str) -> Any:
    """A sort key of ``text`` as a version (``packaging``'s order), or None if invalid."""
    v = _parse(text)
    if v is not None:
        return v.key
    from packaging.version import InvalidVersion, Version

    try:
        return ("packaging", Version(text))
    except InvalidVersion:
        return None


def compare(op: str, left: str, right: str) -> bool | None:
    """``left <op> right`` as versions (op: lt, le, gt, ge); None if either is invalid."""
    a, b = version_key(left), version_key(right)
    if a is None or b is None:
        return None
    if a[0] == "packaging" or b[0] == "packaging":
        from packaging.version import Version

        x: Any = a[1] if a[0] == "packaging" else Version(left)
        y: Any = b[1] if b[0] == "packaging" else Version(right)
    else:
        x, y = a, b
    return bool({"lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y}[op])


class _Clause:
    __slots__ = ("op", "prefix", "version")

    def __init__(self, op: str, version: V, prefix: bool) -> None:
        self.op = op
        self.version = version
        self.prefix = prefix

    def contains(self, c: V) -> bool:
        op, v = self.op, self.version
        if self.prefix:  # ==1.2.* / !=1.2.*: the release starts so (pre/post/dev aside)
            n = len(v.release)
            padded = (c.release + (0,) * n)[:n]
            return (padded == v.release) == (op == "==")
        public = c.public
        if op == "==":
            return public == v.public
        if op == "!=":
            return public != v.public
        if op == ">=":
            return public >= v.public
        if op == "<=":
            return public <= v.public
        if op == "<":
            # <V is <V.dev0 unless V is a pre- or dev release: nothing of a final V's
            # family (its dev and pre-releases) is below it
            if v.is_prerelease:
                return public < v.public
            return public < V(v.release, None, v.post, 0, None).public
        if op == ">":
            # >V leaves out V's post-releases (and V with a local label: public == V)
            if not public > v.public:
                return False
            if v.dev is not None or v.post is not None or c.base() != v.base():
                return True
            return c.pre != v.pre
        # ~=: at least this, and the same release but its last number
        stem = v.release[:-1]
        n = len(stem)
        return public >= v.public and (c.release + (0,) * n)[:n] == stem


def _clause(part: str) -> tuple[str, str, str | None] | None:
    """``SPEC_PATTERN.fullmatch(part)``'s groups (operator, version, ``.*``), by hand."""
    part = part.strip()
    op = next((o for o in _OPS if part.startswith(o)), None)
    if op is None:
        return None
    text = part[len(op) :].lstrip()
    star = None
    if text.endswith(".*") and len(text) > 2:
        text, star = text[:-2], ".*"
    return (op, text, star) if text and set(text) <= _SPEC_CHARS else None


@lru_cache(maxsize=1024)
def _clauses(spec: str) -> tuple[_Clause, ...] | None:
    """The specifier's clauses in the forms this module decides, else None."""
    out: list[_Clause] = []
    for part in spec.split(","):
        read = _clause(part)
        if read is None:
            return None
        op, text, star = read
        v = _parse(text)
        if v is None or v.local is not None or text.startswith("v"):
            return None
        if star and (op not in ("==", "!=") or v.pre or v.post is not None or v.dev is not None):
            return None
        if op == "~=" and len(v.release) < 2:
            return None  # invalid: packaging says so
        out.append(_Clause(op, v, bool(star)))
    return tuple(out)


@lru_cache(maxsize=1024)
def _packaging_set(spec: str) -> Any:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(spec, prereleases=True)


def valid_specifier(spec: str) -> bool:
    """Whether ``spec`` is a PEP 440 specifier set (``packaging``'s answer)."""
    if spec.strip() and _clauses(spec) is not None:
        return True
    from packaging.specifiers import InvalidSpecifier

    try:
        _packaging_set(spec)
    except InvalidSpecifier:
        return False
    return True


def satisfies(version: str, spec: str) -> bool:
    """Whether ``version`` is in ``SpecifierSet(spec, prereleases=True)``; False for a
    version that is not one (as ``packaging`` answers)."""
    clauses = _clauses(spec) if spec.strip() else None
    c = _parse(version)
    if clauses is not None and c is not None:
        return all(clause.contains(c) for clause in clauses)
    from packaging.version import InvalidVersion, Version

    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    return bool(_packaging_set(spec).contains(parsed, prereleases=True))
