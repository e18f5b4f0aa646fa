"""Advice a user can follow: a pre-quantized file's alternatives keep its engine and
scheme (only how it loads changes), and quantize() offers only plans it applies itself."""

from __future__ import annotations

import pytest
from envs import CPU_ONLY, H100_LINUX, M2_MPS, RX7900_ROCM

from quantdoctor import Plan, evaluate
from quantdoctor.errors import IncompatiblePlanError


@pytest.mark.parametrize("env", [H100_LINUX, CPU_ONLY, RX7900_ROCM, M2_MPS])
@pytest.mark.parametrize(
    "plan",
    [
        Plan(engine="gguf", scheme="Q4_K", mode="prequantized", offload="sequential"),
        Plan(engine="gguf", scheme="Q8_0", mode="prequantized", offload="balanced"),
        Plan(engine="bitsandbytes", scheme="nf4", mode="prequantized", offload="sequential"),
        Plan(engine="quanto", scheme="qint8", mode="prequantized", offload="none"),
    ],
)
def test_a_prequantized_files_alternatives_keep_its_engine_and_scheme(
    env: dict[str, object], plan: Plan
) -> None:
    verdict = evaluate(plan, env)
    for alt in verdict.alternatives:
        assert (alt.engine, alt.scheme, alt.mode) == (plan.engine, plan.scheme, plan.mode)


def test_no_fix_of_a_prequantized_plan_says_to_quantize_it_after_load_as_if_it_could() -> None:
    for env in (H100_LINUX, CPU_ONLY, M2_MPS):
        for engine, scheme in (("quanto", "qint8"), ("nncf", "int8_sym"), ("bitsandbytes", "int8")):
            verdict = evaluate(Plan(engine=engine, scheme=scheme, mode="prequantized"), env)
            for f in verdict.findings:
                if "after load" in f.fix:
                    assert "unquantized model" in f.fix, (f.rule, f.fix)


def test_quantize_offers_only_plans_it_applies() -> None:
    torch = pytest.importorskip("torch")
    from quantdoctor import quantize

    module = torch.nn.Sequential(torch.nn.Linear(64, 64))
    with pytest.raises(IncompatiblePlanError) as err:
        quantize(module, Plan(engine="quanto", scheme="qint8", offload="model"), env=CPU_ONLY)
    alternatives = err.value.verdict.alternatives
    assert alternatives and all(a.mode == "post" for a in alternatives)
