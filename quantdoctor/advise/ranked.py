"""``evaluate`` with alternatives ranked by the cost model: the public ``quantdoctor.evaluate``.

The rules layer evaluates without knowing costs (``rules.evaluate`` takes a ``rank``); this
is where the two meet, so every caller that shows alternatives to a person uses it.
"""

from __future__ import annotations

from quantdoctor.advise.recommend import cost_rank
from quantdoctor.rules.evaluate import EnvLike
from quantdoctor.rules.evaluate import evaluate as _evaluate

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from quantdoctor.rules.matrix import Matrix
    from quantdoctor.rules.models import Plan, Verdict


def evaluate(
    plan: Plan,
    env: EnvLike,
    matrix: Matrix | None = None,
    *,
    device: int = 0,
    alternatives: int = 5,
) -> Verdict:
    """The verdict for one plan on one environment (``env`` may be a JSON mapping), its
    alternatives from other engines ranked by what they cost here."""
    return _evaluate(plan, env, matrix, device=device, alternatives=alternatives, rank=cost_rank)
