"""``patterns.literals``: text every match of a signature holds, so explain may skip it.

Explain compiles and searches only the signatures whose literal text the error holds. That
is sound only if every text a pattern matches holds its literals: checked on texts that
match each signature of the matrix (drawn by hypothesis from the pattern itself) and on
the explain corpus, and on patterns written to trip a scanner.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantdoctor.rules.matrix import load_matrix
from quantdoctor.rules.patterns import literals


def _signatures() -> list[str]:
    matrix = load_matrix(defaults=False)
    found = {s.pattern for r in matrix.rule_records for s in r.signatures}
    return sorted(found)


SIGNATURES = _signatures()


def test_most_signatures_have_literals_to_skip_by() -> None:
    with_text = [p for p in SIGNATURES if literals(p)]
    assert len(SIGNATURES) > 100
    assert len(with_text) > 0.8 * len(SIGNATURES)


@pytest.mark.parametrize("pattern", SIGNATURES)
def test_every_text_a_signature_matches_holds_its_literals(pattern: str) -> None:
    parts = literals(pattern)

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(re.compile(pattern, re.MULTILINE), fullmatch=False))
    def check(text: str) -> None:
        if re.search(pattern, text, re.MULTILINE):
            assert all(part in text for part in parts), (pattern, parts, text)

    check()


TRICKY = [
    (r"abc?def", "abdef"),
    (r"ab+cd", "abbbcd"),
    (r"x{0,3}yyyy", "yyyy"),
    (r"(foo|bar)bazz", "foobazz"),
    (r"foo|barr", "barr"),
    (r"[a-z]{2} quantize", "ab quantize"),
    (r"a\.b\(c\)", "a.b(c)"),
    (r"\u00e9tude", "\u00e9tude"),
    (r"(?i)Hello World", "hello world"),
    (r"NoneType\W{0,3}object", "NoneType' object"),
    (r"end of line$", "end of line"),
    (r"^start here", "start here"),
    (r"[\]x]yz{1,2}abc", "]yzzabc"),
]


@pytest.mark.parametrize(("pattern", "text"), TRICKY)
def test_tricky_patterns_keep_their_matches(pattern: str, text: str) -> None:
    assert re.search(pattern, text, re.MULTILINE)
    assert all(part in text for part in literals(pattern)), literals(pattern)
