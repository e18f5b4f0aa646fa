"""Properties of the rules core, over generated plans and environments."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from quantdoctor import Environment, Plan, evaluate
from quantdoctor.testing import environments, plans
from quantdoctor.testing.strategies import FORGETTABLE, forget

SOME = settings(max_examples=60, deadline=None)


def _full_and_partial() -> st.SearchStrategy[tuple[dict[str, Any], dict[str, Any]]]:
    """A fully known environment, and the same one with some facts made unknown."""
    full = environments(partial=False).map(lambda e: e.to_json_dict())
    forgotten = st.lists(st.sampled_from(FORGETTABLE), unique=True, min_size=1, max_size=8)
    return st.tuples(full, forgotten).map(lambda t: (t[0], forget(t[0], t[1])))


@SOME
@given(plans(), _full_and_partial())
def test_more_known_facts_never_unblock_a_plan(
    plan: Plan, envs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    full, partial = envs
    if evaluate(plan, partial, alternatives=0).status == "blocked":
        assert evaluate(plan, full, alternatives=0).status == "blocked"


@SOME
@given(plans(), _full_and_partial())
def test_more_known_facts_never_stop_a_plan_that_passes(
    plan: Plan, envs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    full, partial = envs
    if evaluate(plan, partial, alternatives=0).status in ("ok", "warn"):
        assert evaluate(plan, full, alternatives=0).status in ("ok", "warn")


@SOME
@given(plans(), environments(partial=False))
def test_a_fully_known_environment_never_gives_unknown(plan: Plan, env: Environment) -> None:
    # Whatever a rule reads is a fact the full environment has, so Kleene logic has no
    # unknown left to report.
    assert evaluate(plan, env, alternatives=0).status != "unknown"


@settings(max_examples=30, deadline=None)
@given(plans(), environments())
def test_every_alternative_of_a_verdict_itself_passes(plan: Plan, env: Environment) -> None:
    verdict = evaluate(plan, env, alternatives=3)
    if verdict.passes:
        assert verdict.alternatives == ()
    for alternative in verdict.alternatives:
        assert alternative != plan
        assert evaluate(alternative, env, alternatives=0).passes


@SOME
@given(plans(), environments())
def test_evaluating_an_environment_or_its_json_gives_the_same_verdict(
    plan: Plan, env: Environment
) -> None:
    as_json = json.loads(json.dumps(env.to_json_dict()))
    assert evaluate(plan, env, alternatives=0) == evaluate(plan, as_json, alternatives=0)


@SOME
@given(environments())
def test_an_environment_round_trips_through_json_keeping_unknown_apart_from_null(
    env: Environment,
) -> None:
    text = json.dumps(env.to_json_dict())
    again = Environment.model_validate_json(text)
    assert again == env
    assert again.to_json_dict() == env.to_json_dict()
    assert again.model_fields_set == env.model_fields_set


@SOME
@given(plans())
def test_a_plan_round_trips_through_json(plan: Plan) -> None:
    again = Plan.model_validate_json(plan.model_dump_json())
    assert again == plan and hash(again) == hash(plan)
