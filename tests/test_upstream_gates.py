"""diffusers' quantizer gates: each one a rule of the matrix predicts, and keeps predicting.

benchmarks/upstream_gates.py lists every check in diffusers' quantizers that can refuse a
plan and the rule that cites it; benchmarks/results/upstream_gates.json is its committed
output. A covered gate whose rule disappears, or stops citing it, fails here.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from envs import CPU_ONLY, H100_LINUX, M2_MPS, with_
from helpers import check, holding

from quantdoctor import load_matrix

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "upstream_gates.json"


def _committed() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RESULT.read_text(encoding="utf-8"))
    return data


def _script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "upstream_gates", ROOT / "benchmarks" / "upstream_gates.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["upstream_gates"] = module
    spec.loader.exec_module(module)
    return module


def test_every_covered_gate_keeps_a_rule_that_cites_it() -> None:
    rules = {r.id: r for r in load_matrix(defaults=False).rules}
    cites = _script().cites
    covered = [g for g in _committed()["gates"] if g["rules"]]
    assert covered
    for gate in covered:
        for rule_id in gate["rules"]:
            assert rule_id in rules, f"{gate['citation']}: rule {rule_id} is gone"
            assert cites(rules[rule_id], gate["citation"]), (
                f"{rule_id} no longer cites {gate['citation']}: cite it in the rule's source, "
                "or in a signature's source (an engine's `missing:` for <engine>.not-installed)"
            )


def test_every_plan_gate_of_the_committed_diffusers_has_a_rule() -> None:
    gates = _committed()["gates"]
    uncovered = [g["citation"] for g in gates if g["kind"] != "argument" and not g["rules"]]
    pending: set[str] = set()  # every backend's gates are covered
    assert not [c for c in uncovered if c.split("/quantizers/")[1].split("/")[0] not in pending]


def test_argument_checks_say_why_no_plan_reaches_them() -> None:
    for gate in _committed()["gates"]:
        assert (gate["kind"] == "argument") == bool(gate["why_not_a_plan_gate"]), gate["citation"]


def test_citations_follow_the_documented_format() -> None:
    script = _script()
    for gate in _committed()["gates"]:
        match = script.CITATION.fullmatch(gate["citation"])
        assert match and match["dist"] == "diffusers" and match["path"] == gate["file"]
        assert match["end"] is None
        assert int(match["line"]) == gate["line"]


@pytest.mark.skipif(
    importlib.util.find_spec("diffusers") is None, reason="diffusers is not installed"
)
def test_the_committed_list_is_what_the_installed_diffusers_has(tmp_path: Path) -> None:
    committed = _committed()
    if importlib.metadata.version("diffusers") != committed["diffusers"]:
        pytest.skip(f"gates were listed for diffusers {committed['diffusers']}")
    out = tmp_path / "gates.json"
    status = _script().main(["--out", str(out)])
    fresh = json.loads(out.read_text(encoding="utf-8"))
    key = ("citation", "kind", "function", "rules")
    assert [{k: g[k] for k in key} for g in fresh["gates"]] == [
        {k: g[k] for k in key} for g in committed["gates"]
    ]
    assert fresh["summary"] == committed["summary"]
    covered = sum(r["covered"] for r in fresh["summary"].values())
    assert status == (0 if covered == sum(r["total"] for r in fresh["summary"].values()) else 1)


OLD_ACCELERATE = with_(H100_LINUX, packages={"accelerate": "0.25.0"})
NO_ACCELERATE = with_(H100_LINUX, packages={"accelerate": None})

#: (rule, environment, plan): the rule holds for that plan there.
HOLDS = [
    ("bitsandbytes.diffusers.accelerate", OLD_ACCELERATE, ("bitsandbytes", "nf4", "pre")),
    ("bitsandbytes.diffusers.accelerate", NO_ACCELERATE, ("bitsandbytes", "int8", "prequantized")),
    (
        "bitsandbytes.diffusers.bnb-min",
        with_(H100_LINUX, packages={"bitsandbytes": "0.43.1"}),
        ("bitsandbytes", "nf4", "pre"),
    ),
    ("quanto.diffusers.accelerate", NO_ACCELERATE, ("quanto", "qint8", "pre")),
    (
        "torchao.prequantized.torch-min",
        with_(H100_LINUX, torch={"version": "2.4.1", "cuda": "12.4", "hip": None, "xpu": False}),
        ("torchao", "int8wo", "prequantized"),
    ),
    ("gguf.diffusers.accelerate", NO_ACCELERATE, ("gguf", "Q4_K", "prequantized")),
    (
        "gguf.diffusers.gguf-min",
        with_(H100_LINUX, packages={"gguf": "0.9.1"}),
        ("gguf", "Q4_K", "prequantized"),
    ),
    ("bitsandbytes.diffusers.no-gpu", CPU_ONLY, ("bitsandbytes", "int8", "pre")),
    ("bitsandbytes.diffusers.int8-mps", M2_MPS, ("bitsandbytes", "int8", "pre")),
]


@pytest.mark.parametrize(("rule", "env", "plan"), HOLDS, ids=[h[0] for h in HOLDS])
def test_a_diffusers_gate_rule_blocks_where_diffusers_refuses(
    rule: str, env: dict[str, Any], plan: tuple[str, str, str]
) -> None:
    engine, scheme, mode = plan
    verdict = check(env, engine, scheme, mode=mode)
    assert rule in holding(verdict) and verdict.status == "blocked", verdict.summary()


@pytest.mark.parametrize("rule", sorted({h[0] for h in HOLDS}))
def test_a_diffusers_gate_rule_is_silent_on_the_current_stack(rule: str) -> None:
    engine, scheme, mode = next(h[2] for h in HOLDS if h[0] == rule)
    assert rule not in holding(check(H100_LINUX, engine, scheme, mode=mode))


@pytest.mark.parametrize(
    ("rule", "engine", "scheme", "mode"),
    [
        ("bitsandbytes.diffusers.device-map", "bitsandbytes", "nf4", "pre"),
        ("torchao.diffusers.device-map", "torchao", "int8wo", "prequantized"),
    ],
)
def test_a_device_map_gate_is_named_for_balanced_offload_through_from_pretrained(
    rule: str, engine: str, scheme: str, mode: str
) -> None:
    assert rule in holding(check(H100_LINUX, engine, scheme, mode=mode, offload="balanced"))
    assert rule not in holding(check(H100_LINUX, engine, scheme, mode=mode, offload="model"))


def test_a_line_range_cites_every_gate_inside_it() -> None:
    script = _script()

    class Rule:
        sources = ["diffusers@0.42.1:src/diffusers/quantizers/sdnq/sdnq_quantizer.py:L30-L34"]
        signatures = ()

    path = "diffusers@0.42.1:src/diffusers/quantizers/sdnq/sdnq_quantizer.py"
    assert script.cites(Rule, f"{path}:L31")
    assert not script.cites(Rule, f"{path}:L37")
    assert not script.cites(
        Rule, "diffusers@0.42.0:src/diffusers/quantizers/sdnq/sdnq_quantizer.py:L31"
    )
