"""The evaluator: ``evaluate(plan, env, matrix) -> Verdict``, in three-valued logic.

A verdict is ``blocked`` when a block rule holds, ``unknown`` when none holds but one
might (a fact it reads is unknown), ``warn`` when a warn rule holds, else ``ok``. A plan
that does not pass gets the nearest plans that do: another offload first, then another
mode of the same scheme, then a scheme of the same bits, then another engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

from quantdoctor.errors import InvalidInputError
from quantdoctor.rules.facts import Facts, facts_from_json
from quantdoctor.rules.matrix import Matrix, load_matrix
from quantdoctor.rules.models import Environment, Finding, Plan, Verdict
from quantdoctor.rules.schema import Rule
from quantdoctor.rules.vocab import DTYPES, OFFLOADS

EnvLike = Environment | Mapping[str, Any]

#: How much GPU memory each offload mode saves (0: none); the nearest offload is the one
#: whose saving is closest to what the user asked for, the faster one on a tie.
OFFLOAD_MEMORY_RANK: dict[str, int] = {
    "none": 0,
    "model": 1,
    "balanced": 2,
    "group": 3,
    "sequential": 4,
}
#: How a message names a fact that is unknown, where plain "unknown" would read badly.
_UNKNOWN_WORDS = {
    "gpu.name": "this GPU",
    "gpu.cuda_cc": "an unknown compute capability",
    "torch.version": "(unknown version)",
}
_TEMPLATE = re.compile(r"\{([a-z_]+(?:\.[a-z0-9_\-]+)*)\}")


@lru_cache(maxsize=1)
def default_matrix() -> Matrix:
    """The matrix used when none is given: built-in plus the default overlays (cached)."""
    return load_matrix()


def to_facts(env: EnvLike, device: int = 0) -> Facts:
    if not isinstance(env, Environment):
        # A mapping from the caller is checked as an env file is: a malformed one is an
        # EnvironmentFileError naming the key, never an error from deep in the evaluator.
        from quantdoctor.rules.envfile import parse_env

        env = parse_env(env, "env")
    check_device(device, env.gpus)
    return facts_from_json(env.to_json_dict(), device=device)


def check_device(device: int, gpus: Sequence[object] | None) -> None:
    """``device`` must name a GPU of the environment (0 also stands for "no GPU")."""
    if device == 0:
        return
    if device < 0:
        raise InvalidInputError(f"--device {device}: a GPU index is 0 or more")
    if gpus is not None and device >= len(gpus):
        have = f"GPUs 0-{len(gpus) - 1}" if len(gpus) > 1 else ("GPU 0" if gpus else "no GPU")
        shown = str(device) if device < 10**6 else f"{str(device)[:6]}..."
        raise InvalidInputError(f"--device {shown}: this environment has {have}")


def render(text: str, facts: Facts) -> str:
    """A rule's message or fix with its ``{fact}`` names filled in (unknown ones in words)."""

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        unknown = "(unknown version)" if key.startswith("packages.") else "unknown"
        value = facts.get(key, _UNKNOWN_WORDS.get(key, unknown))
        return "none" if value is None else str(value)

    return _TEMPLATE.sub(sub, text)


def _facets(plan: Plan) -> dict[str, str]:
    return {
        "engine": plan.engine,
        "scheme": plan.scheme,
        "mode": plan.mode,
        "offload": plan.offload,
        "component": plan.component,
        "dtype": plan.dtype,
    }


def _findings(plan: Plan, facts: Facts, rules: Iterable[Rule]) -> list[Finding]:
    facets = _facets(plan)
    found: list[Finding] = []
    shown: Facts | None = None
    for rule in rules:
        if rule.signature_only or not rule.selects(facets):
            continue
        missing: set[str] = set()
        holds = rule.condition.eval(facts, missing)
        if holds is False:
            continue
        if holds is None and rule.severity != "block":
            continue  # only a rule that could block makes a verdict unknown
        if shown is None:
            shown = {**facts, **{f"plan.{k}": v for k, v in facets.items()}}
        found.append(
            Finding(
                rule=rule.id,
                severity=rule.severity,
                message=render(rule.message, shown),
                fix=render(rule.fix, shown),
                source="; ".join(rule.sources),
                state="holds" if holds else "unknown",
                missing=tuple(sorted(missing)),
            )
        )
    return found


def _status(findings: list[Finding]) -> str:
    holds = [f for f in findings if f.state == "holds"]
    if any(f.severity == "block" for f in holds):
        return "blocked"
    # a note that might hold changes nothing a verdict decides: only block/warn can be unknown
    if any(f.state == "unknown" and f.severity != "info" for f in findings):
        return "unknown"
    if any(f.severity == "warn" for f in holds):
        return "warn"
    return "ok"


#: Findings are listed as a verdict reads: what blocks, what might, what warns, then notes.
_SEVERITY_ORDER = {"block": 0, "warn": 2, "info": 3}


def _sort(findings: list[Finding]) -> tuple[Finding, ...]:
    def key(f: Finding) -> int:
        return 1 if f.state == "unknown" else _SEVERITY_ORDER[f.severity]

    return tuple(sorted(findings, key=key))


#: Orders plans best first on these facts (the cost model, ``advise.recommend.rank_plans``).
#: The rules layer does not know costs: a caller that wants alternatives ranked by them
#: passes one in; without it, ties keep the matrix's engine order.
Ranker = Callable[[list[Plan], Facts, Matrix], list[Plan]]


class _Evaluator:
    """Evaluates plans against one environment's facts, remembering statuses."""

    def __init__(self, facts: Facts, matrix: Matrix, rank: Ranker | None = None) -> None:
        self.facts = facts
        self.matrix = matrix
        self.rank = rank
        self._status: dict[Plan, str] = {}

    def findings(self, plan: Plan) -> list[Finding]:
        if not plan.mode:  # a plan that names no mode is evaluated in its engine's default
            plan = self.matrix.check_plan(plan)
        return _findings(plan, self.facts, self.matrix.rules_for(plan.engine))

    def status(self, plan: Plan) -> str:
        if plan not in self._status:
            self._status[plan] = _status(self.findings(plan))
        return self._status[plan]

    def verdict(self, plan: Plan, *, alternatives: int = 5) -> Verdict:
        findings = self.findings(plan)
        status = _status(findings)
        self._status[plan] = status
        alts: tuple[Plan, ...] = ()
        if status not in ("ok", "warn") and alternatives:
            alts = tuple(self.alternatives(plan, alternatives))
        return Verdict(status=status, plan=plan, findings=_sort(findings), alternatives=alts)

    def _candidates(self, plan: Plan) -> Iterator[Iterator[Plan]]:
        """Tiers of candidate plans, nearest first; each tier is built lazily."""
        engines = self.matrix.engines
        asked = OFFLOAD_MEMORY_RANK[plan.offload]
        others = [o for o in OFFLOADS if o != plan.offload]
        offloads = sorted(others, key=lambda o: (abs(OFFLOAD_MEMORY_RANK[o] - asked), o != "none"))
        facets = _facets(plan)

        def build(changes: Iterable[dict[str, str]]) -> Iterator[Plan]:
            for change in changes:
                try:
                    yield Plan(**{**facets, **change})
                except ValueError:
                    continue

        yield build({"offload": o} for o in offloads)
        if plan.mode == "prequantized":
            # a file's engine and scheme are in its bytes: only how it loads can change
            yield build(
                {"dtype": d, "offload": o}
                for d in DTYPES
                if d != plan.dtype
                for o in (plan.offload, *offloads)
            )
            return
        # the same quantization, applied at another time (post instead of pre, say)
        yield build(
            {"mode": m, "offload": o}
            for m in engines[plan.engine].modes
            if m != plan.mode
            for o in (plan.offload, *offloads)
        )
        bits = engines[plan.engine].schemes[plan.scheme].bits
        same_bits = [
            s
            for s, spec in engines[plan.engine].schemes.items()
            if spec.bits == bits and s != plan.scheme
        ]
        yield build(
            {"scheme": s, "offload": o} for o in (plan.offload, *offloads) for s in same_bits
        )

        # Another engine: the nearest bits and offload first; among equals, the plan the
        # cost model (the ``rank`` given) ranks faster, then more accurate.
        order = self.matrix.engine_names
        others = [e for e in order if e != plan.engine]
        modes = {
            e: plan.mode if plan.mode in engines[e].modes else engines[e].default_mode
            for e in others
        }
        speed = self._speed_rank(
            list(build({"engine": e, "scheme": s, "mode": modes[e]} for e in others
                       for s in engines[e].schemes))
        )  # fmt: skip
        ranked: list[tuple[tuple[int, int, int, int], dict[str, str]]] = []
        for engine in others:
            for s, spec in engines[engine].schemes.items():
                for o in (plan.offload, *offloads):
                    cost = (
                        abs(spec.bits - bits),
                        abs(OFFLOAD_MEMORY_RANK[o] - asked),
                        speed.get((engine, s), len(speed)),
                        order.index(engine),
                    )
                    change = {"engine": engine, "scheme": s, "offload": o, "mode": modes[engine]}
                    ranked.append((cost, change))
        ranked.sort(key=lambda t: t[0])
        yield build(change for _, change in ranked)

    def _speed_rank(self, plans: list[Plan]) -> dict[tuple[str, str], int]:
        """Each (engine, scheme)'s place in the cost model's ranking on these facts."""
        if self.rank is None:
            return {}
        order = self.rank(plans, self.facts, self.matrix)
        return {(p.engine, p.scheme): i for i, p in enumerate(order)}

    def alternatives(self, plan: Plan, limit: int) -> list[Plan]:
        """The nearest passing plans, a few from each tier so the list stays varied.

        Each tier (offload, mode, scheme, engine) gets a share of ``limit``; a share a tier
        cannot fill passes to the next, and what is still free at the end goes back to
        the nearest tiers' leftovers. Candidates are evaluated lazily, nearest first, so a
        verdict costs a few evaluations rather than the whole grid.
        """
        chosen: list[Plan] = []
        spare: list[Plan] = []
        carry = 0
        for i, tier in enumerate(self._candidates(plan)):
            share = (_TIER_SHARES[i] if i < len(_TIER_SHARES) else limit) + carry
            clean: list[Plan] = []
            warned: list[Plan] = []
            for candidate in tier:
                if candidate in chosen or candidate in clean or candidate in warned:
                    continue
                status = self.status(candidate)
                if status == "ok":
                    clean.append(candidate)
                elif status == "warn":
                    warned.append(candidate)
                if len(clean) >= share:
                    break  # plans that pass cleanly come before those with a warning
            ranked = clean + warned
            chosen.extend(ranked[:share])
            spare.extend(ranked[share:])
            carry = max(0, share - len(ranked))
        chosen.extend(p for p in spare if p not in chosen)
        return chosen[:limit]


#: How many alternatives each tier (offload, mode, scheme, engine) offers before the next.
_TIER_SHARES = (2, 1, 1, 1)


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

    ``rank`` orders alternatives from other engines by cost (see ``Ranker``)."""
    matrix = matrix or default_matrix()
    evaluator = _Evaluator(to_facts(env, device), matrix, rank)
    return evaluator.verdict(matrix.check_plan(plan), alternatives=alternatives)


def grid_plans(matrix: Matrix, engines: Iterable[str] | None = None) -> list[Plan]:
    """Every engine x scheme x offload, in each engine's default mode."""
    plans: list[Plan] = []
    for engine in engines or matrix.engine_names:
        spec = matrix.engines.get(engine)
        if spec is None:
            continue
        for scheme in spec.schemes:
            for offload in OFFLOADS:
                plans.append(
                    Plan(engine=engine, scheme=scheme, mode=spec.default_mode, offload=offload)
                )
    return plans


def evaluate_grid(
    env: EnvLike,
    matrix: Matrix | None = None,
    *,
    engines: Iterable[str] | None = None,
    device: int = 0,
    alternatives: int = 0,
    rank: Ranker | None = None,
) -> list[Verdict]:
    """Verdicts for the whole grid on one environment."""
    matrix = matrix or default_matrix()
    evaluator = _Evaluator(to_facts(env, device), matrix, rank)
    return [evaluator.verdict(p, alternatives=alternatives) for p in grid_plans(matrix, engines)]
