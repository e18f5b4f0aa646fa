"""Which rules an engine's error message, or a whole pasted traceback, matches.

Text is cleaned first (ANSI colour codes removed, line endings unified, pytest's ``E``
prefix dropped, a bare ``NotImplementedError`` line written ``NotImplementedError: `` as
``str(exc)`` formatting would), then every signature of every rule is searched
(``re.MULTILINE``, so ``^`` and ``$`` anchor at lines of a traceback). Each rule keeps
its best match, and the rules are ranked: a match in the final exception (the one that
was actually raised, after any "During handling of the above exception" chain) beats
one in an earlier traceback or log line; then rules that select the plan being run
(when one is given); then the longer, more specific match; then severity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quantdoctor.rules.matrix import Matrix
    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.schema import Rule

__all__ = ["Match", "clean", "explain", "final_exception_start"]

#: Pasted logs can be long; signatures are searched in at most this much of the end.
MAX_TEXT = 1_000_000

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_HEADER = re.compile(r"Traceback \(most recent call last\)")
#: A line that names an exception: ``pkg.mod.SomeError: message`` (pytest prefixes ``E``).
_EXC_LINE = re.compile(
    r"^(?:E\s+)?(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*"
    r"(?:Error|Exception|Warning|Exit|Interrupt|Missing|Fault)\b(?::|$)",
    re.MULTILINE,
)
#: A line that is only an exception's name, as a message-less exception prints; it is
#: written ``Name: `` so that signatures of the ``Name: message`` form match it.
_BARE_EXC = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception))$", re.MULTILINE)
#: pytest's ``E   `` prefix on the lines of the exception it shows.
_PYTEST_E = re.compile(r"^E {3,}", re.MULTILINE)
#: Lines of a traceback's frame block (CPython and IPython), skipped to reach the message.
_FRAME = re.compile(r"^(?:\s|File |Cell In\[|-+>|\^|~|$)")
_SEVERITY = {"block": 2, "warn": 1, "info": 0}


@dataclass(frozen=True)
class Match:
    """One rule whose signature matched, with the text it matched."""

    rule: str
    severity: str
    message: str
    fix: str
    source: str
    matched: str
    #: the signature that matched, and where that signature's text comes from
    pattern: str
    signature_source: str
    #: whether the match lies in the final (raised) exception
    final: bool
    rank: tuple[int, int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "source": self.source,
            "matched": self.matched,
        }


def clean(text: str) -> str:
    """Remove ANSI codes, unify line endings, and give bare exception lines a colon."""
    text = _ANSI.sub("", text[-MAX_TEXT:])
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _BARE_EXC.sub(r"\1: ", _PYTEST_E.sub("", text))


def final_exception_start(text: str) -> int:
    """Offset where the final exception's message starts (0 when there is no traceback)."""
    headers = list(_HEADER.finditer(text))
    if headers:
        start = text.find("\n", headers[-1].end())
        if start < 0:
            return len(text)
        offset = start + 1
        for line in text[offset:].splitlines(keepends=True):
            if not _FRAME.match(line):
                return offset
            offset += len(line)
        return headers[-1].start()
    lines = list(_EXC_LINE.finditer(text))
    return lines[-1].start() if lines else 0


def _source_text(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "; ".join(source)


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)


def _preference(rule: Rule, plan: Plan | None) -> int:
    """+1 for each of the plan's engine and offload the rule selects, -1 for another engine."""
    if plan is None:
        return 0
    select = rule.select
    score = 0
    if select.engine:
        score += 1 if plan.engine in select.engine else -1
    if select.offload and plan.offload in select.offload:
        score += 1
    return score


def _best(rule: Rule, text: str, final_at: int, plan: Plan | None) -> Match | None:
    best: Match | None = None
    for sig in rule.signatures:
        for m in _compiled(sig.pattern).finditer(text):
            if m.end() == m.start():
                continue  # an empty match says nothing
            final = m.start() >= final_at
            rank = (
                int(final),
                _preference(rule, plan),
                len(m.group(0)),
                _SEVERITY.get(rule.severity, 0),
                m.start(),
            )
            if best is None or rank > best.rank:
                best = Match(
                    rule=rule.id,
                    severity=rule.severity,
                    message=rule.message,
                    fix=rule.fix,
                    source=_source_text(rule.source),
                    matched=m.group(0).strip(),
                    pattern=sig.pattern,
                    signature_source=sig.source,
                    final=final,
                    rank=rank,
                )
    return best


def explain_rules(
    text: str,
    rules: Iterable[Rule],
    plan: Plan | None = None,
    facts: Mapping[str, Any] | None = None,
) -> list[Match]:
    """Match ``text`` against ``rules``; best first (see the module docstring).

    Messages and fixes name facts (``{packages.diffusers}``): they are filled from
    ``facts`` and the plan where given, and said to be unknown otherwise.
    """
    from quantdoctor.rules.evaluate import render

    cleaned = clean(text)
    final_at = final_exception_start(cleaned)
    found = [m for r in rules if r.signatures and (m := _best(r, cleaned, final_at, plan))]
    shown = dict(facts or {})
    if plan is not None:
        shown.update({f"plan.{k}": v for k, v in plan.model_dump().items()})
    found = [replace(m, message=render(m.message, shown), fix=render(m.fix, shown)) for m in found]
    return sorted(found, key=lambda m: m.rank, reverse=True)


def explain(text: str, matrix: Matrix | None = None, *, plan: Plan | None = None) -> list[Match]:
    """Which rules of ``matrix`` (default: built-in plus overlays) an error text matches.

    ``plan``, when given, ranks rules that select its engine and offload first among
    matches of equal place (``guard`` passes the plan it guards).
    """
    if matrix is None:
        from quantdoctor.rules.evaluate import default_matrix

        matrix = default_matrix()
    return explain_rules(text, matrix.rules, plan)
