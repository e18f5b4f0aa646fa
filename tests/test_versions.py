"""rules/versions.py decides what packaging decides: every version, specifier and order.

The evaluator compares versions without importing packaging (its import costs a command
more than the evaluation); these tests hold it to packaging's answers on generated
versions and specifiers of every form, the fallbacks included, and on every specifier
the built-in matrix writes.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from quantdoctor.rules.matrix import load_matrix
from quantdoctor.rules.versions import compare, satisfies, valid_specifier, version_key

releases = st.lists(st.integers(0, 12), min_size=1, max_size=4).map(
    lambda parts: ".".join(map(str, parts))
)
pre = st.sampled_from(["", "a0", "a1", "b2", "rc1", "rc10"])
post = st.sampled_from(["", ".post0", ".post1", ".post12"])
dev = st.sampled_from(["", ".dev0", ".dev3"])
local = st.sampled_from(["", "+cpu", "+cu126", "+rocm6.2", "+1.2", "+abc.5", "+git20260101"])
#: spellings packaging accepts outside the normal form, and strings it rejects
odd = st.sampled_from(
    ["1.0RC1", "v2.6", "V1.0", "1.0-1", "1!2.0", "1.0a", "1.0.dev", " 2.6.0 ", "1.0_post2",
     "2.6.0+CPU", "1.0-dev1", "", "x", "1..0", "1.0+", "2.6.0+cu126.post", "nightly"]
)  # fmt: skip


@st.composite
def versions(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(odd)
    return draw(releases) + draw(pre) + draw(post) + draw(dev) + draw(local)


@st.composite
def clauses(draw: st.DrawFn) -> str:
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "~=", "==="]))
    if op in ("==", "!=") and draw(st.booleans()):
        return f"{op}{draw(releases)}.*"
    v = draw(releases) + draw(pre) + draw(post) + draw(dev)
    if draw(st.integers(0, 7)) == 0:
        v += draw(local)  # a local label in a specifier: only ==/!= allow it
    space = draw(st.sampled_from(["", " "]))
    return f"{op}{space}{v}"


specifiers = st.lists(clauses(), min_size=1, max_size=3).map(",".join)


def _packaging_contains(version: str, spec: str) -> bool:
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    return bool(SpecifierSet(spec, prereleases=True).contains(parsed, prereleases=True))


def _packaging_valid(spec: str) -> bool:
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        return False
    return True


@settings(max_examples=3000, deadline=None)
@given(versions(), specifiers)
def test_a_version_satisfies_a_specifier_as_packaging_says(version: str, spec: str) -> None:
    valid = _packaging_valid(spec)
    assert valid_specifier(spec) is valid, spec
    if valid:
        assert satisfies(version, spec) is _packaging_contains(version, spec), (version, spec)


@settings(max_examples=2000, deadline=None)
@given(versions(), versions())
def test_versions_order_as_packaging_orders_them(left: str, right: str) -> None:
    try:
        a, b = Version(left), Version(right)
    except InvalidVersion:
        assert compare("lt", left, right) is None
        return
    for op, want in (("lt", a < b), ("le", a <= b), ("gt", a > b), ("ge", a >= b)):
        assert compare(op, left, right) is want, (op, left, right)


def test_an_invalid_version_has_no_key() -> None:
    for text in ("", "x", "1..0", "nightly", "1.0+"):
        assert version_key(text) is None


#: versions the probe reports (torch builds, release candidates, nightlies, dev builds)
SEEN = (
    "2.13.0+cpu", "2.11.0+cu128", "2.6.0", "2.5.1+rocm6.2", "2.4.0a0+git1234abc",
    "2.8.0.dev20250601+cu126",
    "0.45.0", "0.48.2", "0.49.0.dev0", "0.2.7", "0.18.0", "0.19.0", "3.4.0", "0.2.8", "0.47.0",
    "0.42.1", "0.43.0rc1", "1.15.0", "5.24.0", "12.8", "13.0", "3.3.0", "3.7.0", "0.13.1",
)  # fmt: skip


def test_every_specifier_of_the_matrix_decides_as_packaging_does() -> None:
    matrix = load_matrix(defaults=False)
    specs: set[str] = set()
    for rule in matrix.rule_data:
        specs.update((rule.get("holds_for") or {}).values())
    text = str(matrix.rule_data)
    specs.update(re.findall(r"'version': '([^']+)'", text))
    assert len(specs) > 20
    for spec in sorted(specs):
        assert valid_specifier(spec), spec
        for version in SEEN:
            assert satisfies(version, spec) is _packaging_contains(version, spec), (version, spec)


@pytest.mark.parametrize("spec", ["", "garbage", ">=", "~=1", "==1.0.*.*", ">=1.0.*", "=1.0"])
def test_specifiers_packaging_refuses_are_refused(spec: str) -> None:
    assert valid_specifier(spec) is _packaging_valid(spec)


def test_the_hand_readers_are_the_patterns() -> None:
    """``_normal`` and ``_clause`` (no ``re`` on the command line's path) give the groups
    ``VERSION_PATTERN`` and ``SPEC_PATTERN`` give, on real spellings and on random ones."""
    import random
    import re

    from quantdoctor.rules import versions

    version = re.compile(versions.VERSION_PATTERN)
    spec = re.compile(versions.SPEC_PATTERN)
    seeds = ["2.13.0", "v1.0", "0.19.0rc1", "1.0a2.post3.dev4", "2.13.0+cu126", "1.0+a.b.1"]
    seeds += ["1!2", "1.0.dev", "1.0rc", "1.0+", "1.0+A", "1..2", "٣.٣", "1.0.post1.dev2+x"]
    seeds += [">=0.45,<0.48", "==0.17.*", "~=2.6", "!=1.0", " >= 1.0 ", "===1", "==1.*.*", "<1."]
    alphabet = "0123456789.abcdevpostr+*=<>!~ ,A٣\t"
    rng = random.Random(11)
    texts = list(seeds)
    for _ in range(20000):
        chars = list(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(len(chars) + 1)
            if rng.random() < 0.5 or not chars:
                chars.insert(pos, rng.choice(alphabet))
            else:
                del chars[min(pos, len(chars) - 1)]
        texts.append("".join(chars))
    for text in texts:
        m = version.fullmatch(text)
        assert versions._normal(text) == (m.groups() if m else None), repr(text)
        m = spec.fullmatch(text)
        assert versions._clause(text) == (m.groups() if m else None), repr(text)
