from __future__ import annotations

from typing import Any

from quantdoctor import Plan, Verdict, evaluate


def check(env: dict[str, Any], engine: str, scheme: str, **facets: str) -> Verdict:
    return evaluate(Plan(engine=engine, scheme=scheme, **facets), env)


def holding(verdict: Verdict) -> set[str]:
    """Ids of the rules that hold (not merely might)."""
    return {f.rule for f in verdict.findings if f.state == "holds"}


def assert_blocked_by(verdict: Verdict, rule: str) -> None:
    assert verdict.status == "blocked", verdict.summary()
    assert rule in holding(verdict), verdict.summary()
    finding = next(f for f in verdict.findings if f.rule == rule)
    assert finding.severity == "block" and finding.source and finding.message


def assert_passes(verdict: Verdict) -> None:
    assert verdict.status in ("ok", "warn"), verdict.summary()
