"""The evaluator: ``evaluate(plan, env, matrix) -> Verdict``, in three-valued logic.

A verdict is ``blocked`` when a block rule holds, ``unknown`` when none holds but one
might (a fact it reads is unknown), ``warn`` when a warn rule holds, else ``ok``. A plan
that does not pass gets the nearest plans that do: another offload first, then another
mode of the same scheme, then a scheme of the same bits, then another engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from quantdoctor.rules.core import (
    OFFLOAD_MEMORY_RANK,
    Core,
    Facets,
    Ranker,
    check_device,
    grid,
    render,
)
from quantdoctor.rules.facts import Facts, facts_from_json
from quantdoctor.rules.matrix import Matrix, load_matrix
from quantdoctor.rules.models import Environment, Finding, Plan, Verdict

__all__ = [
    "OFFLOAD_MEMORY_RANK",
    "EnvLike",
    "Ranker",
    "as_plan",
    "check_device",
    "default_matrix",
    "evaluate",
    "evaluate_grid",
    "grid_plans",
    "render",
    "to_facts",
]

EnvLike = Environment | Mapping[str, Any]


@lru_cache(maxsize=1)
def default_matrix() -> Matrix:
    """The matrix used when none is given: built-in plus the default overlays (cached)."""
    return load_matrix()


def as_plan(plan: Plan | Mapping[str, str]) -> Plan:
    """``plan``, or the ``Plan`` a mapping spells; ``InvalidInputError`` naming the field
    otherwise (pydantic's error says the same, deeper in)."""
    from pydantic import ValidationError

    from quantdoctor.errors import InvalidInputError

    if isinstance(plan, Plan):
        return plan
    if not isinstance(plan, Mapping):
        raise InvalidInputError(f"plan: expected a Plan or a mapping, got {type(plan).__name__}")
    try:
        return Plan.model_validate(dict(plan))
    except ValidationError as err:
        from quantdoctor._printable import printable

        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "plan"
        msg = str(first["msg"]).removeprefix("Value error, ").removeprefix(f"{where}: ")
        # a key of the caller's mapping is shown escaped and cut (it may come from a file)
        raise InvalidInputError(f"plan: {printable(where, limit=100)}: {msg}") from None


def _check_call(matrix: Any, device: Any, alternatives: Any) -> None:
    """The keyword arguments of ``evaluate``: a wrong type is bad input, said as such."""
    from quantdoctor.errors import InvalidInputError

    if matrix is not None and not isinstance(matrix, Matrix):
        raise InvalidInputError(
            f"matrix: expected a Matrix (quantdoctor.load_matrix(extra=...) reads a file), "
            f"got {type(matrix).__name__}"
        )
    if type(device) is not int or device < 0:
        raise InvalidInputError(f"device: expected a GPU index (an int, 0 or more), got {device!r}")
    if type(alternatives) is not int or alternatives < 0:
        raise InvalidInputError(
            f"alternatives: expected how many to offer (an int, 0 or more), got {alternatives!r}"
        )


def to_facts(env: EnvLike, device: int = 0) -> Facts:
    if not isinstance(env, Environment):
        # A mapping from the caller is checked as an env file is: a malformed one is an
        # EnvironmentFileError naming the key, never an error from deep in the evaluator.
        from quantdoctor.rules.envfile import parse_env

        env = parse_env(env, "env")
    check_device(device, env.gpus)
    return facts_from_json(env.to_json_dict(), device=device)


def facets(plan: Plan) -> Facets:
    return Facets(plan.engine, plan.scheme, plan.mode, plan.offload, plan.component, plan.dtype)


def _plan(f: Mapping[str, str]) -> Plan:
    return Plan.model_construct(None, **f)  # the evaluator's own candidates: already checked


def to_verdict(data: Mapping[str, Any], plan: Plan | None = None) -> Verdict:
    """The pydantic ``Verdict`` of the core's plain verdict (no second validation)."""
    return Verdict.model_construct(
        status=data["status"],
        plan=plan if plan is not None else _plan(data["plan"]),
        findings=tuple(
            Finding.model_construct(**{**f, "missing": tuple(f["missing"])})
            for f in data["findings"]
        ),
        alternatives=tuple(_plan(a) for a in data["alternatives"]),
    )


class _Evaluator:
    """``Core`` for callers holding ``Plan`` models (``advise.recommend``)."""

    def __init__(self, facts: Facts, matrix: Matrix, rank: Ranker | None = None) -> None:
        self.core = Core(facts, matrix, rank)

    def _facets(self, plan: Plan) -> tuple[Plan, Facets]:
        if not plan.mode:  # a plan that names no mode is evaluated in its engine's default
            plan = self.core.matrix.check_plan(plan)
        return plan, facets(plan)

    def status(self, plan: Plan) -> str:
        return self.core.status(self._facets(plan)[1])

    def verdict(self, plan: Plan, *, alternatives: int = 5) -> Verdict:
        plan, f = self._facets(plan)
        return to_verdict(self.core.verdict(f, alternatives=alternatives), plan)


def evaluate(
    plan: Plan,
    env: EnvLike,
    matrix: Matrix | None = None,
    *,
    device: int = 0,
    alternatives: int = 5,
    rank: Ranker | None = None,
) -> Verdict:
    """The verdict for one plan on one environment (``env`` may be a JSON mapping).

    ``plan`` may be a mapping of its fields. ``rank`` orders alternatives from other
    engines by cost (see ``Ranker``)."""
    _check_call(matrix, device, alternatives)
    plan = as_plan(plan)
    matrix = matrix or default_matrix()
    evaluator = _Evaluator(to_facts(env, device), matrix, rank)
    return evaluator.verdict(matrix.check_plan(plan), alternatives=alternatives)


def _choices(
    arg: str, facet: str, given: Iterable[str] | None, valid: Sequence[str]
) -> list[str] | None:
    """``given`` (``engines=``, ``modes=``) as the vocabulary spells them, or
    ``InvalidInputError`` naming the bad one (a bare string, read letter by letter, would
    select nothing and say nothing)."""
    from quantdoctor.errors import InvalidInputError
    from quantdoctor.rules.core import check_choice

    if given is None:
        return None
    if isinstance(given, str):
        raise InvalidInputError(f"{arg}: expected a list, like [{given!r}]; got a str")
    return [check_choice(facet, str(v), valid, said=arg) for v in given]


def _grid(
    matrix: Matrix, engines: Iterable[str] | None, modes: Iterable[str] | None
) -> list[Facets]:
    from quantdoctor.rules.vocab import MODES

    return grid(
        matrix,
        _choices("engines", "engine", engines, matrix.engine_names),
        _choices("modes", "mode", modes, MODES),
    )


def grid_plans(
    matrix: Matrix, engines: Iterable[str] | None = None, *, modes: Iterable[str] | None = None
) -> list[Plan]:
    """Every engine x scheme x offload, in each engine's default mode (``modes``: in each
    of those the engine has)."""
    return [_plan(f.to_json()) for f in _grid(matrix, engines, modes)]


def evaluate_grid(
    env: EnvLike,
    matrix: Matrix | None = None,
    *,
    engines: Iterable[str] | None = None,
    modes: Iterable[str] | None = None,
    device: int = 0,
    alternatives: int = 0,
    rank: Ranker | None = None,
) -> list[Verdict]:
    """Verdicts for the whole grid on one environment (``modes``: as ``grid_plans``)."""
    matrix = matrix or default_matrix()
    core = Core(to_facts(env, device), matrix, rank)
    plans = _grid(matrix, engines, modes)
    return [to_verdict(core.verdict(f, alternatives=alternatives)) for f in plans]
