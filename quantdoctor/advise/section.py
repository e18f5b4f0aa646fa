"""The recommendation as a section of the doctor report (plain data the report renders)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

if TYPE_CHECKING:
    from typing import Any

    from quantdoctor.advise.recommend import Estimate
    from quantdoctor.rules.core import Core
    from quantdoctor.rules.matrix import Matrix
    from quantdoctor.rules.models import Verdict
    from quantdoctor.rules.records import VerdictRecord


def _item(mark: str, text: str) -> dict[str, Any]:
    return {"mark": mark, "text": text, "fix": None}


# --- Recommendation ---------------------------------------------------------------
# The report ends with the best plans of quantdoctor.recommend for this machine.

RECOMMENDED = 3


def recommendation_section(
    env: Mapping[str, Any],
    verdicts: Sequence[Verdict | VerdictRecord],
    matrix: Matrix | None = None,
    device: int = 0,
    facts: Mapping[str, Any] | None = None,
    core: Core | None = None,
) -> dict[str, Any] | None:
    """The report's "Recommended" lines. ``facts`` (the report's, already checked) and
    verdicts as records keep pydantic out of the report (``plain_recommend``); ``core``
    is the evaluator that judged them."""
    from quantdoctor.advise.recommend import plain_recommend

    title = "Recommended (fastest first; quantdoctor recommend --model FILE sizes them)"
    try:
        if matrix is None:
            from quantdoctor.rules.matrix import load_matrix

            matrix = load_matrix()
        result = plain_recommend(
            dict(env),
            matrix=matrix,
            device=device,
            verdicts=verdicts,
            limit=RECOMMENDED,
            facts=facts,
            core=core,
        )
        picks = list(result.plans)[:RECOMMENDED]
    except Exception as err:  # a doctor reports a part that fails; it does not die of it
        why = f"{type(err).__name__}: {err}"
        return {"title": title, "items": [_item("unknown", f"no recommendation: {why}")]}
    if not picks:
        return None
    return {"title": title, "items": [_item("ok", _pick_text(p)) for p in picks]}


def _pick_text(pick: Estimate) -> str:
    """A recommended plan and what it costs, where known."""
    costs = [f"{pick.speed:.2f}x bf16 speed"] if pick.speed is not None else []
    costs.append(f"{pick.bytes_per_param:.2f} bytes/param")
    return f"{pick.plan.label()} ({', '.join(costs)})"
