"""The grid found column by column (``Core.grid_findings``, ``grid_records``,
``Core.statuses``) is each plan's own verdict (``Core.verdict``, ``Core.status``), over
generated environments and plan lists and an overlay whose rules name plan facts and
select on every facet."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from quantdoctor.rules.core import Core, Facets, grid
from quantdoctor.rules.evaluate import to_facts
from quantdoctor.rules.facts import facts_from_json
from quantdoctor.rules.matrix import Matrix, load_matrix
from quantdoctor.rules.records import FindingRecord, grid_records
from quantdoctor.rules.vocab import COMPONENTS, DTYPES, MODES, OFFLOADS
from quantdoctor.testing import environments

#: Rules that name plan facts in their texts (some only in the fix), select on mode,
#: component and dtype, hold, might, or warn: what the built-in matrix has few of.
_OVERLAY: dict[str, Any] = {
    "rules": [
        {"id": "g.named", "when": {"fact": "gpu.count", "ge": 0}, "severity": "warn",
         "message": "{plan.offload} and {plan.dtype} on {backend}", "source": "s"},
        {"id": "g.fix-only", "select": {"engine": ["gguf", "sdnq"], "mode": ["prequantized"]},
         "when": {"fact": "packages.torch", "version": ">=1"}, "severity": "block",
         "message": "m", "fix": "not {plan.scheme} with {plan.component}", "source": "s"},
        {"id": "g.might", "when": {"fact": "packages.not-probed", "version": ">=1"},
         "select": {"component": ["vae", "text_encoder"], "dtype": ["float16"]},
         "severity": "block", "message": "{plan.engine} {plan.mode}", "source": "s"},
        {"id": "g.none", "when": {"fact": "gpu.count", "lt": 0},
         "select": {"offload": ["model"]}, "severity": "block", "message": "m", "source": "s"},
        {"id": "g.info", "select": {"dtype": ["bfloat16", "float32"]}, "severity": "info",
         "message": "{plan.unknown} {plan.scheme}", "source": "s"},
    ]
}  # fmt: skip


def _matrix(overlay: bool) -> Matrix:
    return load_matrix(extra=_OVERLAY, defaults=False) if overlay else load_matrix(defaults=False)


MATRICES = {False: _matrix(False), True: _matrix(True)}


def _one_by_one(core: Core, plan: Facets) -> dict[str, Any]:
    return core.verdict(plan, alternatives=0)


@st.composite
def _plans(draw: st.DrawFn, matrix: Matrix) -> list[Facets]:
    """Plans of any facets (repeats allowed), in any order."""
    out = []
    for _ in range(draw(st.integers(0, 40))):
        engine = draw(st.sampled_from(matrix.engine_names))
        out.append(
            Facets(
                engine,
                draw(st.sampled_from(sorted(matrix.scheme_names(engine)))),
                draw(st.sampled_from(MODES)),
                draw(st.sampled_from(OFFLOADS)),
                draw(st.sampled_from(COMPONENTS)),
                draw(st.sampled_from(DTYPES)),
            )
        )
    return out


@settings(max_examples=40, deadline=None)
@given(environments(), st.booleans())
def test_the_grid_records_are_each_plans_verdict(env: Any, overlay: bool) -> None:
    matrix = MATRICES[overlay]
    facts = facts_from_json(env.to_json_dict())
    records = grid_records(facts, matrix)
    core = Core(dict(facts), matrix)
    plans = grid(matrix)
    assert [r.plan for r in records] == plans
    for record, plan in zip(records, plans, strict=True):
        want = _one_by_one(core, plan)
        assert record.data == want
        assert record.status == want["status"]
        assert [f.to_json() for f in record.findings] == want["findings"]


@settings(max_examples=40, deadline=None)
@given(st.data(), environments(), st.booleans())
def test_grid_findings_of_any_plans_are_each_plans_findings(
    data: st.DataObject, env: Any, overlay: bool
) -> None:
    matrix = MATRICES[overlay]
    plans = data.draw(_plans(matrix))
    facts = to_facts(env)
    core = Core(facts, matrix)
    found = core.grid_findings(plans)
    fresh = Core(facts, matrix)
    assert found == [_one_by_one(fresh, p)["findings"] for p in plans]
    # statuses found all at once are each plan's own status
    assert Core(facts, matrix).statuses(plans) == [Core(facts, matrix).status(p) for p in plans]
    # wrapped: one object per distinct finding, shared by the plans it is the same for
    wrapped = Core(facts, matrix).grid_findings(plans, FindingRecord)
    assert [[f.to_json() for f in fs] for fs in wrapped] == found


def test_a_finding_is_shared_only_by_plans_its_texts_read_the_same() -> None:
    from envs import CPU_ONLY

    matrix = MATRICES[True]
    records = grid_records(facts_from_json(CPU_ONLY), matrix)
    named = {}
    for r in records:
        for f in r.findings:
            if f.rule == "g.named":
                named.setdefault(id(f), set()).add((r.plan.offload, r.plan.dtype))
                assert f.message.startswith(f"{r.plan.offload} and {r.plan.dtype} on ")
    # one object per engine and offload (every grid plan is bfloat16), shared by the
    # engine's plans at that offload
    assert len(named) == len(matrix.engine_names) * len(OFFLOADS)
    assert all(len(pairs) == 1 for pairs in named.values())


def test_each_engines_rules_are_those_that_may_select_it() -> None:
    # a matrix built by hand may select an engine it does not have
    ghost = {"id": "g.ghost", "select": {"engine": ["ghost"]}, "severity": "block",
             "message": "m", "source": "s"}  # fmt: skip
    base = MATRICES[False]
    by_hand = Matrix(base.engine_data, [*base.rule_data, ghost])
    assert [c.id for c in by_hand.compiled_for("ghost")][-1] == "g.ghost"
    for matrix in (*MATRICES.values(), by_hand, Matrix({}, [ghost])):
        for engine in (*matrix.engine_names, "no-such-engine", "ghost"):
            want = [
                c
                for c in matrix.compiled
                if not c.select or c.select[0][0] != 0 or engine in c.select[0][1]
            ]
            assert matrix.compiled_for(engine) == want, engine
