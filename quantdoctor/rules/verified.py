"""Known unknowns: the newest version of each package the rules were checked against.

The matrix's ``verified:`` section records, per distribution, the newest version its rules
were verified with and how (a GPU run, the CPU suite, a source read). A machine with a
newer version gets an ``info`` finding from a rule generated here, ``verified.<name>``:
the verdicts may have drifted. Rules with an upper version bound rely on it: past the bound
a rule stops applying, and this finding says that nobody has checked what happens there.
"""

from __future__ import annotations

from collections.abc import Mapping

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, field_validator


class Verified(BaseModel):
    """One distribution's newest checked version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    #: how it was checked: "GPU run (...)", "CPU suite (constraints.txt)", "source read (...)"
    how: str

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        try:
            Version(v)
        except InvalidVersion:
            raise ValueError(f"{v!r} is not a version; valid look like '0.2.7'") from None
        return v


def fact_of(dist: str) -> str:
    """The Environment fact that holds a distribution's version."""
    if dist == "torch":
        return "torch.version"
    if dist in ("triton", "triton-windows"):
        return "triton.version"
    return f"packages.{dist}"


def rule_id(dist: str) -> str:
    return f"verified.{dist.replace('_', '-')}"


def verified_rules(
    verified: Mapping[str, Verified], packages: Mapping[str, str]
) -> list[dict[str, object]]:
    """One ``info`` rule per verified distribution, as matrix data.

    ``packages`` maps each engine to its distribution: a verified engine package selects
    that engine's plans; any other distribution (torch, diffusers, ...) concerns every plan,
    and so does one several engines share (diffusers is bfl's and layerwise_casting's
    package, and every engine's loader).
    """
    rules: list[dict[str, object]] = []
    for dist, v in verified.items():
        engines = sorted(e for e, p in packages.items() if p == dist)
        fact = fact_of(dist)
        rule: dict[str, object] = {
            "id": rule_id(dist),
            "when": {"fact": fact, "version": f">{v.version}"},
            "severity": "info",
            "message": (
                f"{dist} {{{fact}}} is newer than any version quantdoctor has checked "
                f"({v.version}); these verdicts may have drifted."
            ),
            "fix": f'if a plan fails here, pip install "{dist}=={v.version}" (the version checked)',
            "source": f"matrix.yaml verified: {dist} {v.version} ({v.how})",
        }
        if len(engines) == 1:
            rule["select"] = {"engine": engines}
        rules.append(rule)
    return rules
