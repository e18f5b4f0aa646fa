"""The evaluator's core on plain data: no pydantic, so the command line stays fast.

``Facets`` is a plan as a named tuple (the attributes ``Plan`` has); ``CompiledRule`` is a
rule as the evaluator reads it (selector sets, a parsed condition, the texts). ``Core``
evaluates facets against one environment's facts, each rule's condition at most once
per environment, and returns verdicts as the JSON ``Verdict.model_dump(mode="json")``
gives. ``rules.evaluate`` wraps it in the pydantic models of the public API.
"""

from __future__ import annotations

from quantdoctor.errors import InvalidInputError
from quantdoctor.rules.conditions import Node, Tri, rule_condition
from quantdoctor.rules.facts import Facts
from quantdoctor.rules.template import fill
from quantdoctor.rules.vocab import COMPONENTS, DTYPES, MODES, OFFLOADS, suggest

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from typing import Any, NamedTuple

    from quantdoctor.rules.matrix import Matrix

else:  # collections.abc imports collections: ~3 ms of a command
    from _collections_abc import Callable

    from quantdoctor._namedtuple import NamedTuple

FACETS: tuple[str, ...] = ("engine", "scheme", "mode", "offload", "component", "dtype")
#: How a rule's message names a facet of the plan it judges: ``{plan.scheme}``.
_PLAN_FACTS = tuple(f"plan.{facet}" for facet in FACETS)


class Facets(NamedTuple):
    """A plan as plain data: the attributes of ``Plan``, all filled in."""

    engine: str
    scheme: str
    mode: str
    offload: str = "none"
    component: str = "transformer"
    dtype: str = "bfloat16"

    def label(self) -> str:
        return plan_label(self)

    def to_json(self) -> dict[str, str]:
        return dict(zip(FACETS, self, strict=True))


def plan_label(plan: Any) -> str:
    """A short one-line name: ``quanto qint8 mode=post offload=balanced``."""
    parts = [f"{plan.engine} {plan.scheme}", f"mode={plan.mode}", f"offload={plan.offload}"]
    if plan.component != "transformer":
        parts.append(f"component={plan.component}")
    if plan.dtype != "bfloat16":
        parts.append(f"dtype={plan.dtype}")
    return " ".join(parts)


def check_choice(field: str, value: str, valid: Sequence[str], *, said: str = "") -> str:
    """``value`` as the vocabulary spells it (an alias resolved), or ``InvalidInputError``
    (a ``ValueError``, which pydantic's validators take) naming ``said`` (how the caller
    spelt the field: ``--engine``) or ``field``."""
    if value not in valid:
        from quantdoctor.rules.aliases import resolve

        value = resolve(field, value, valid)
    if value not in valid:
        raise InvalidInputError(
            f"{said or field}: {value!r} is not valid; {suggest(value, tuple(valid))}"
        )
    return value


#: How ``Plan`` checks an engine's and a scheme's name (which exist is the matrix's
#: business): ``^[A-Za-z0-9][A-Za-z0-9_.\-]*$``, a letter or digit, then those and _ . -
_NAME_HEAD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_REST = _NAME_HEAD | set("_.-")


def check_name(field: str, value: str) -> str:
    name = value[:-1] if value.endswith("\n") else value  # as the pattern's $ reads it
    if not (name and name[0] in _NAME_HEAD and set(name) <= _NAME_REST):
        raise ValueError(
            f"{field}: {value!r} is not valid; a name of letters, digits, '_', '.' and '-'"
        )
    return value


def check_in_matrix(matrix: Matrix, engine: str, scheme: str, mode: str) -> tuple[str, str, str]:
    """The plan's engine and scheme as the matrix spells them (``bnb`` is bitsandbytes) and
    its mode (the engine's default when ``mode`` is empty); else ``InvalidInputError``
    naming the facet."""
    spec = matrix.engine_data.get(engine)
    if spec is None or scheme not in spec["schemes"]:
        from quantdoctor.rules.aliases import resolve

        engine = resolve("engine", engine, matrix.engine_names)
        spec = matrix.engine_data.get(engine)
        if spec is not None:
            scheme = resolve("scheme", scheme, spec["schemes"], engine)
    if spec is None:
        raise InvalidInputError(
            f"engine: {engine!r} is not valid; {suggest(engine, matrix.engine_names)}"
        )
    if scheme not in spec["schemes"]:
        owner = [e for e in matrix.engine_names if scheme in matrix.scheme_names(e)]
        extra = f" ({scheme} is a {owner[0]} scheme)" if owner else ""
        raise InvalidInputError(
            f"scheme: {scheme!r} is not a {engine} scheme{extra}; "
            f"{suggest(scheme, tuple(spec['schemes']))}"
        )
    return engine, scheme, mode or str(spec.get("default_mode") or "post")


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


def make_facets(
    matrix: Matrix,
    engine: str,
    scheme: str,
    mode: str = "",
    offload: str = "none",
    component: str = "transformer",
    dtype: str = "bfloat16",
) -> Facets:
    """A plan checked as ``Plan(...)`` then ``Matrix.check_plan`` check it: ``ValueError``
    for a value outside the vocabulary, ``InvalidInputError`` for one the matrix lacks."""
    check_name("engine", engine)
    check_name("scheme", scheme)
    if mode:
        mode = check_choice("mode", mode, MODES)
    offload = check_choice("offload", offload, OFFLOADS)
    component = check_choice("component", component, COMPONENTS)
    dtype = check_choice("dtype", dtype, DTYPES)
    engine, scheme, mode = check_in_matrix(matrix, engine, scheme, mode)
    return Facets(engine, scheme, mode, offload, component, dtype)


def bytes_per_weight(
    bits: int, block: int, block_bytes: float | None, row_bytes: float, in_features: int
) -> float:
    """Exact bytes a weight takes, blocks and scales included (``SchemeSpec``'s fields)."""
    per = block_bytes / block if block_bytes else bits / 8
    return per + row_bytes / max(in_features, 1)


class SchemeView(NamedTuple):
    """The storage facts of a scheme, read from the matrix's plain data (no pydantic)."""

    bits: int
    block: int = 1
    block_bytes: float | None = None
    row_bytes: float = 0.0

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> SchemeView:
        return cls(
            bits=int(spec["bits"]),
            block=int(spec.get("block") or 1),
            block_bytes=spec.get("block_bytes"),
            row_bytes=float(spec.get("row_bytes") or 0.0),
        )

    def bytes_per_weight(self, in_features: int = 4096) -> float:
        return bytes_per_weight(
            self.bits, self.block, self.block_bytes, self.row_bytes, in_features
        )


#: (facet position, allowed values) for each facet a rule selects on
Selector = tuple[tuple[int, frozenset[str]], ...]


class CompiledRule(NamedTuple):
    """A rule as the evaluator reads it."""

    #: the rule's place in the matrix (what results are remembered under)
    number: int
    id: str
    severity: str
    message: str
    fix: str
    source: str
    #: (facet position, allowed values) for the facets the rule selects on
    select: Selector
    condition: Node
    #: explains error texts only: never applied to a plan
    signature_only: bool = False

    def selects(self, facets: Sequence[str]) -> bool:
        return all(facets[position] in allowed for position, allowed in self.select)


def compile_rule(
    index: int, rule: Mapping[str, Any], *, checked: bool = True, share: bool = True
) -> CompiledRule:
    """Compile one validated rule (plain data); raises ``ValueError`` on a bad condition
    (``checked=False``: on a malformed one only; see ``conditions.parse``). ``share``:
    reuse a condition already parsed from the same text (``_PARSED``), as a large
    overlay's rules repeat a few; the built-in matrix's are its own."""
    select = rule.get("select") or {}
    source = rule["source"]
    return CompiledRule(  # positionally, in the fields' order: a load makes one per rule
        index,
        rule["id"],
        rule["severity"],
        rule["message"],
        rule.get("fix") or "",
        source if isinstance(source, str) else "; ".join(source),
        tuple((i, frozenset(select[name])) for i, name in enumerate(FACETS) if select.get(name)),
        _condition(rule.get("when"), rule.get("holds_for") or {}, checked, share),
        bool(rule.get("signature_only")),
    )


#: Conditions parsed in this process, by their text: a large overlay repeats a few
#: conditions over many rules, and a parsed condition is an immutable value to share.
_PARSED: dict[str, Node] = {}


def _condition(when: Any, holds_for: Mapping[str, str], checked: bool, share: bool) -> Node:
    if not share:
        return rule_condition(when, holds_for, checked=checked)
    # the repr of plain data (dicts, lists, strings, numbers: validated JSON) is its text
    key = repr((when, holds_for, checked))
    node = _PARSED.get(key)
    if node is None:
        if len(_PARSED) >= 4096:
            _PARSED.clear()
        node = _PARSED[key] = rule_condition(when, holds_for, checked=checked)
    return node


# ----------------------------------------------------------------------------- evaluation

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
#: Findings are listed as a verdict reads: what blocks, what might, what warns, then notes.
_SEVERITY_ORDER = {"block": 0, "warn": 2, "info": 3}
#: The status each group of ``Core.active`` gives a plan it selects, in that order.
_GROUP_STATUS = ("blocked", "unknown", "warn")
#: Orders plans best first on these facts (the cost model, ``advise.recommend.rank_plans``).
#: It receives ``Facets`` (which have ``Plan``'s attributes) and returns them reordered.
Ranker = Callable[[list["Any"], Facts, "Any"], list["Any"]]
#: How many alternatives each tier (offload, mode, scheme, engine) offers before the next.
_TIER_SHARES = (2, 1, 1, 1)


def render(text: str, facts: Mapping[str, Any], plan: Mapping[str, str] | None = None) -> str:
    """A rule's message or fix with its ``{fact}`` names filled in (unknown ones in words);
    ``plan``'s ``plan.*`` facts are read before ``facts``."""
    if "{" not in text:
        return text

    def sub(key: str) -> str:
        if plan is not None and key in plan:
            return plan[key]
        unknown = "(unknown version)" if key.startswith("packages.") else "unknown"
        value = facts.get(key, _UNKNOWN_WORDS.get(key, unknown))
        return "none" if value is None else str(value)

    return fill(text, sub)


class Core:
    """Evaluates plans against one environment's facts, remembering what it computed."""

    def __init__(self, facts: Facts, matrix: Matrix, rank: Ranker | None = None) -> None:
        self.facts = facts
        self.matrix = matrix
        self.rank = rank
        self._conditions: dict[int, tuple[Tri, tuple[str, ...]]] = {}
        self._status: dict[Facets, str] = {}
        self._speed: dict[tuple[str, str], int] | None = None
        self._active: tuple[tuple[CompiledRule, ...], ...] | None = None
        self._selectors: dict[str, tuple[tuple[Selector, ...], ...]] = {}
        self._group: dict[int, int] = {}
        self._live: dict[str, list[tuple[CompiledRule, bool]]] = {}
        #: A rule's message and fix filled in, where they name no ``{plan.*}`` fact
        #: (the same for every plan the rule selects).
        self._texts: dict[int, tuple[str, str] | None] = {}

    def _holds(self, rule: CompiledRule) -> tuple[Tri, tuple[str, ...]]:
        found = self._conditions.get(rule.number)
        if found is None:
            missing: set[str] = set()
            value = rule.condition.eval(self.facts, missing)
            found = (value, tuple(sorted(missing)))
            self._conditions[rule.number] = found
        return found

    def _live_rules(self, engine: str) -> list[tuple[CompiledRule, bool]]:
        """The rules of ``engine`` that can apply here and hold (True) or might (False),
        in the order a verdict lists their findings (``_live_order``, then matrix order):
        found once per engine (most conditions are false on any one machine); only a
        rule that could block makes a verdict unknown."""
        live = self._live.get(engine)
        if live is None:
            live = []
            for rule in self.matrix.compiled_for(engine):
                if rule.signature_only:
                    continue
                holds = self._holds(rule)[0]
                if holds is False or (holds is None and rule.severity != "block"):
                    continue
                live.append((rule, bool(holds)))
            live.sort(key=_live_order)  # stable: matrix order within each kind
            self._live[engine] = live
        return live

    def _applying(self, plan: Facets) -> Iterator[tuple[CompiledRule, bool]]:
        """The rules that select ``plan`` and hold (True) or might (False), in a verdict's
        order:
        each plan tests only the selectors of its engine's live rules, so a report's 350
        plans cost what its few live rules select."""
        for rule, holds in self._live_rules(plan.engine):
            if rule.selects(plan):
                yield rule, holds

    def active(self) -> tuple[tuple[CompiledRule, ...], ...]:
        """The rules that can make a verdict other than ok here, in matrix order, by what
        they make: a block that holds, a block that might, a warning that holds. Every
        other rule (false here, info, a warning that might) changes no status and lists
        in no ``decide``; a plan's verdict is the first of these groups with a rule that
        selects it. Equal groups on two machines give every plan the same ``decide``."""
        if self._active is None:
            self._active = self._groups(self.matrix.compiled)
            self._group = {r.number: g for g, rules in enumerate(self._active) for r in rules}
        return self._active

    def _groups(self, rules: Iterable[CompiledRule]) -> tuple[tuple[CompiledRule, ...], ...]:
        block: list[CompiledRule] = []
        might: list[CompiledRule] = []
        warn: list[CompiledRule] = []
        for rule in rules:
            if rule.signature_only or rule.severity == "info":
                continue
            holds = self._holds(rule)[0]
            if holds is False or (holds is None and rule.severity != "block"):
                continue
            (warn if rule.severity == "warn" else block if holds else might).append(rule)
        return (tuple(block), tuple(might), tuple(warn))

    def status(self, plan: Facets) -> str:
        found = self._status.get(plan)
        if found is None:
            # the groups of the rules that may select the plan's engine (only those
            # conditions are evaluated), each selector once: many rules share one (an
            # overlay's rules often select every plan)
            selectors = self._selectors.get(plan.engine)
            if selectors is None:
                groups = self._groups(self.matrix.compiled_for(plan.engine))
                selectors = tuple(tuple(dict.fromkeys(r.select for r in g)) for g in groups)
                self._selectors[plan.engine] = selectors
            found = "ok"
            for name, group in zip(_GROUP_STATUS, selectors, strict=True):
                if any(all(plan[i] in allowed for i, allowed in s) for s in group):
                    found = name
                    break
            self._status[plan] = found
        return found

    def decide(self, plan: Facets) -> tuple[str, list[str]]:
        """The status and the ids of the rules that apply but info, in a verdict's order
        (what ``matrix`` shows), without rendering any message."""
        self.active()
        group = self._group
        found = [
            (g, r.id) for r in self.matrix.selecting(plan) if (g := group.get(r.number)) is not None
        ]
        found.sort(key=_first)
        status = _GROUP_STATUS[found[0][0]] if found else "ok"
        self._status[plan] = status
        return status, [rule_id for _, rule_id in found]

    def decide_grid(
        self, plans: Sequence[Facets], index: Mapping[int, Sequence[int]]
    ) -> list[tuple[str, list[str]]]:
        """``decide`` of each plan, all at once: each rule of ``active`` adds its id to the
        plans it selects (``index``, ``grid_index``'s: rule number -> their positions), so
        a machine costs what its few active rules select, not every plan's rules."""
        status = ["ok"] * len(plans)
        ids: list[list[str]] = [[] for _ in plans]
        for name, group in zip(_GROUP_STATUS, self.active(), strict=True):
            for rule in group:
                for i in index.get(rule.number, ()):
                    if not ids[i]:
                        status[i] = name  # the first group that selects the plan
                    ids[i].append(rule.id)
        self._status.update(zip(plans, status, strict=True))
        return list(zip(status, ids, strict=True))

    def _texts_of(self, rule: CompiledRule) -> tuple[str, str] | None:
        """The rule's message and fix filled in, where they name no ``{plan.*}`` fact."""
        texts = self._texts
        number = rule.number
        if number not in texts:
            plain = "{plan." not in rule.message and "{plan." not in rule.fix
            texts[number] = (
                (render(rule.message, self.facts), render(rule.fix, self.facts)) if plain else None
            )
        return texts[number]

    def _finding(self, rule: CompiledRule, holds: bool, filled: tuple[str, str]) -> dict[str, Any]:
        return {
            "rule": rule.id,
            "severity": rule.severity,
            "message": filled[0],
            "fix": filled[1],
            "source": rule.source,
            "state": "holds" if holds else "unknown",
            "missing": list(self._holds(rule)[1]),
        }

    def _plan_texts(self, rule: CompiledRule, plan: Facets) -> tuple[str, str]:
        shown = dict(zip(_PLAN_FACTS, plan, strict=True))
        return render(rule.message, self.facts, shown), render(rule.fix, self.facts, shown)

    def findings(self, plan: Facets) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for rule, holds in self._applying(plan):
            filled = self._texts_of(rule) or self._plan_texts(rule, plan)
            out.append(self._finding(rule, holds, filled))
        return out

    def grid_findings(
        self, plans: Sequence[Facets], wrap: Callable[[dict[str, Any]], Any] | None = None
    ) -> list[list[Any]]:
        """Each plan's findings in a verdict's order (``verdict``'s, sorted), all at once.

        Each live rule finds the plans it selects through an index of the plans' facet
        values, so the grid costs what its findings are, not plans x rules. A finding
        is made once for the plans that agree in the facets its texts name (``{plan.*}``:
        often none): ``wrap`` (``None``: the dict itself) turns each finding made into
        what is returned, and those plans share it; read it, do not change it."""
        out: list[list[Any]] = [[] for _ in plans]
        by_engine = _by_engine(plans)
        for engine, positions in by_engine.items():
            chosen_by = _selection(plans, positions)
            for rule, holds in self._live_rules(engine):
                chosen = chosen_by(rule.select)
                # a finding is the same for plans equal in the facets its texts name
                texts = rule.message + rule.fix
                named = [i for i, name in enumerate(_PLAN_FACTS) if name in texts]
                made_for: dict[tuple[str, ...], Any] = {}
                for i in chosen:
                    key = tuple([plans[i][at] for at in named]) if named else ()
                    made = made_for.get(key)
                    if made is None:
                        filled = self._texts_of(rule) or self._plan_texts(rule, plans[i])
                        made = self._finding(rule, holds, filled)
                        made = made_for[key] = made if wrap is None else wrap(made)
                    out[i].append(made)
        return out

    def statuses(self, plans: Sequence[Facets]) -> list[str]:
        """``status`` of each plan, all at once, as ``grid_findings`` finds them: the first
        live rule (in a verdict's order) that selects a plan gives its status."""
        out: list[str | None] = [None] * len(plans)
        for engine, positions in _by_engine(plans).items():
            chosen_by = _selection(plans, positions)
            for rule, holds in self._live_rules(engine):
                status = _LIVE_STATUS[_live_order((rule, holds))]
                if status == "ok":
                    break  # info rules, last in that order, change no status
                for i in chosen_by(rule.select):
                    if out[i] is None:
                        out[i] = status
        found = ["ok" if s is None else s for s in out]
        self._status.update(zip(plans, found, strict=True))
        return found

    def verdict(self, plan: Facets, *, alternatives: int = 5) -> dict[str, Any]:
        """The verdict as ``Verdict.model_dump(mode="json")`` gives it."""
        findings = self.findings(plan)
        status = _status((f["severity"], f["state"] == "holds") for f in findings)
        self._status[plan] = status
        alts: list[Facets] = []
        if status not in ("ok", "warn") and alternatives:
            alts = self.alternatives(plan, alternatives)
        return {
            "status": status,
            "plan": plan.to_json(),
            "findings": findings,
            "alternatives": [a.to_json() for a in alts],
        }

    # ------------------------------------------------------------------ alternatives

    def _build(self, base: Facets, changes: Iterable[dict[str, str]]) -> Iterator[Facets]:
        for change in changes:
            candidate = base._replace(**change)
            if candidate.scheme in self.matrix.scheme_names(candidate.engine):
                yield candidate

    def _candidates(self, plan: Facets) -> Iterator[Iterator[Facets]]:
        """Tiers of candidate plans, nearest first; each tier is built lazily."""
        m = self.matrix
        asked = OFFLOAD_MEMORY_RANK[plan.offload]
        others = [o for o in OFFLOADS if o != plan.offload]
        offloads = sorted(others, key=lambda o: (abs(OFFLOAD_MEMORY_RANK[o] - asked), o != "none"))
        yield self._build(plan, ({"offload": o} for o in offloads))
        if plan.mode == "prequantized":
            # a file's engine and scheme are in its bytes: only how it loads can change
            yield self._build(
                plan,
                (
                    {"dtype": d, "offload": o}
                    for d in DTYPES
                    if d != plan.dtype
                    for o in (plan.offload, *offloads)
                ),
            )
            return
        # the same quantization, applied at another time (post instead of pre, say)
        yield self._build(
            plan,
            (
                {"mode": mode, "offload": o}
                for mode in m.modes(plan.engine)
                if mode != plan.mode
                for o in (plan.offload, *offloads)
            ),
        )
        bits = m.bits(plan.engine, plan.scheme)
        same_bits = [
            s
            for s in m.scheme_names(plan.engine)
            if m.bits(plan.engine, s) == bits and s != plan.scheme
        ]
        yield self._build(
            plan,
            ({"scheme": s, "offload": o} for o in (plan.offload, *offloads) for s in same_bits),
        )
        # Another engine: the nearest bits and offload first; among equals, the plan the
        # cost model (the ``rank`` given) ranks faster, then more accurate.
        order = m.engine_names
        engines = [e for e in order if e != plan.engine]
        modes = {e: plan.mode if plan.mode in m.modes(e) else m.default_mode(e) for e in engines}
        speed = self._speed_rank(
            list(
                self._build(
                    plan,
                    (
                        {"engine": e, "scheme": s, "mode": modes[e]}
                        for e in engines
                        for s in m.scheme_names(e)
                    ),
                )
            )
        )
        ranked: list[tuple[tuple[int, int, int, int], dict[str, str]]] = []
        for engine in engines:
            for s in m.scheme_names(engine):
                for o in (plan.offload, *offloads):
                    cost = (
                        abs(m.bits(engine, s) - bits),
                        abs(OFFLOAD_MEMORY_RANK[o] - asked),
                        speed.get((engine, s), len(speed)),
                        order.index(engine),
                    )
                    change = {"engine": engine, "scheme": s, "offload": o, "mode": modes[engine]}
                    ranked.append((cost, change))
        ranked.sort(key=lambda t: t[0])
        yield self._build(plan, (change for _, change in ranked))

    def _speed_rank(self, plans: list[Facets]) -> dict[tuple[str, str], int]:
        """Each (engine, scheme)'s place in the cost model's ranking on these facts."""
        if self.rank is None:
            return {}
        order = self.rank(plans, self.facts, self.matrix)
        return {(p.engine, p.scheme): i for i, p in enumerate(order)}

    def alternatives(self, plan: Facets, limit: int) -> list[Facets]:
        """The nearest passing plans, a few from each tier so the list stays varied.

        Each tier (offload, mode, scheme, engine) gets a share of ``limit``; a share a tier
        cannot fill passes to the next, and what is still free at the end goes back to
        the nearest tiers' leftovers. Candidates are evaluated lazily, nearest first, so a
        verdict costs a few evaluations rather than the whole grid.
        """
        chosen: list[Facets] = []
        spare: list[Facets] = []
        carry = 0
        for i, tier in enumerate(self._candidates(plan)):
            share = (_TIER_SHARES[i] if i < len(_TIER_SHARES) else limit) + carry
            clean: list[Facets] = []
            warned: list[Facets] = []
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


def _status(found: Iterable[tuple[str, bool]]) -> str:
    """blocked / unknown / warn / ok from (severity, holds) pairs of applying rules."""
    unknown = warn = False
    for severity, holds in found:
        if not holds:
            unknown = True
        elif severity == "block":
            return "blocked"
        elif severity == "warn":
            warn = True
    if unknown:
        return "unknown"
    return "warn" if warn else "ok"


def status_of(findings: Sequence[Any]) -> str:
    """``_status`` of findings in a verdict's order, as records (``severity`` and ``state``
    attributes, as ``grid_findings`` gives them wrapped in ``FindingRecord``): the first
    decides (a block that holds, then one that might, then a warning)."""
    if not findings:
        return "ok"
    first = findings[0]
    return _LIVE_STATUS[_SEVERITY_ORDER[first.severity] if first.state == "holds" else 1]


def _first(pair: tuple[int, str]) -> int:
    return pair[0]


def _by_engine(plans: Sequence[Facets]) -> dict[str, list[int]]:
    """Engine -> the positions of its plans in ``plans``."""
    out: dict[str, list[int]] = {}
    for i, plan in enumerate(plans):
        out.setdefault(plan.engine, []).append(i)
    return out


def _selection(
    plans: Sequence[Facets], positions: list[int]
) -> Callable[[Selector], Iterable[int]]:
    """For the plans at ``positions`` (of one engine, which a rule's engine selector is
    already known to take: ``Matrix.compiled_for``), a function from a rule's selector
    to the positions of the plans it selects, through an index of their facet values
    (facet position -> value -> positions), made for the facets selected on."""
    index: dict[int, dict[str, list[int]]] = {}

    def chosen(select: Selector) -> Iterable[int]:
        found: set[int] | None = None
        for facet, allowed in select:
            if facet == 0:
                continue
            values = index.get(facet)
            if values is None:
                values = index[facet] = {}
                for i in positions:
                    values.setdefault(plans[i][facet], []).append(i)
            hit = {i for v, at in values.items() if v in allowed for i in at}
            found = hit if found is None else hit.intersection(found)
            if not found:
                return ()
        return positions if found is None else found

    return chosen


#: The status a verdict's first finding gives it, by ``_live_order``.
_LIVE_STATUS = ("blocked", "unknown", "warn", "ok")


def _live_order(live: tuple[CompiledRule, bool]) -> int:
    """Where a verdict lists the finding a live (rule, holds) makes: what blocks, what
    might, what warns, then notes."""
    return _SEVERITY_ORDER[live[0].severity] if live[1] else 1


def grid(
    matrix: Matrix, engines: Iterable[str] | None = None, modes: Iterable[str] | None = None
) -> list[Facets]:
    """Every engine x scheme x offload, in each engine's default mode; with ``modes``, in
    each of those modes that the engine has (an engine with none of them is left out)."""
    plans: list[Facets] = []
    wanted = tuple(modes) if modes is not None else None
    for engine in engines or matrix.engine_names:
        if engine not in matrix.engine_names:
            continue
        if wanted is None:
            chosen: tuple[str, ...] = (matrix.default_mode(engine),)
        else:
            chosen = tuple(m for m in matrix.modes(engine) if m in wanted)
        for mode in chosen:
            for scheme in matrix.scheme_names(engine):
                for offload in OFFLOADS:
                    plans.append(Facets(engine, scheme, mode, offload))
    return plans


def grid_index(matrix: Matrix, plans: Sequence[Facets]) -> dict[int, list[int]]:
    """Rule number -> the positions of the plans it selects (``Core.decide_grid``'s index;
    the same on every machine)."""
    index: dict[int, list[int]] = {}
    for i, plan in enumerate(plans):
        for rule in matrix.selecting(plan):
            index.setdefault(rule.number, []).append(i)
    return index
