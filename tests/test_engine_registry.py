"""The engines section is the registry, and the probe reads what the matrix names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import holding

from quantdoctor import IncompatiblePlanError, Plan, evaluate, load_matrix, preflight
from quantdoctor.doctor.probe import probe
from quantdoctor.errors import InvalidInputError
from quantdoctor.rules.named import named_packages, packages_in_text

XFORMERS = """\
rules:
  - id: studio.needs-xformers
    select: {engine: quanto}
    when: {fact: packages.xformers, absent: true}
    severity: block
    message: our pipeline needs xformers.
    fix: pip install xformers
    source: studio policy 3
"""


# ---------------------------------------------------------------- the probe's packages


def test_the_text_scan_names_every_package_the_parsed_matrix_names() -> None:
    assert set(load_matrix(defaults=False).packages()) <= set(named_packages())


def test_the_text_scan_reads_facts_engines_holds_for_and_verified_in_both_styles() -> None:
    text = """\
engines:
  foo: {package: Foo_Pkg, install: x, schemes: {}}
  bar:
    package: "bar-lib"
rules:
  - id: a.b
    holds_for:
      xformers: ">=0.1"
      "flash_attn": "<2"
    when: {fact: packages.sage-attention, absent: true}
  - id: a.c
    holds_for: {torch: ">=2", kernels: "<1"}
verified:
  nunchaku: {version: "1.0", how: x}
"""
    assert sorted(packages_in_text(text)) == sorted(
        ["foo-pkg", "bar-lib", "xformers", "flash-attn", "sage-attention", "kernels", "nunchaku"]
    )


def test_an_overlay_rule_on_any_package_is_known_absent_where_it_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overlay = tmp_path / "ours.yaml"
    overlay.write_text(XFORMERS, encoding="utf-8")
    monkeypatch.setenv("QUANTDOCTOR_MATRIX", str(overlay))
    site = tmp_path / "site"
    site.mkdir()
    env = probe(root=str(tmp_path), site_dirs=[str(site)], environ={"PATH": ""})
    assert env.packages["xformers"] is None  # known absent, not unknown
    verdict = evaluate(Plan(engine="quanto", scheme="qint8"), env, load_matrix())
    finding = next(f for f in verdict.findings if f.rule == "studio.needs-xformers")
    assert finding.state == "holds"


def test_preflight_probes_the_packages_of_the_matrix_it_is_given() -> None:
    matrix = load_matrix(extra=yaml.safe_load(XFORMERS), defaults=False)
    with pytest.raises(IncompatiblePlanError) as caught:
        preflight(Plan(engine="quanto", scheme="qint8"), matrix=matrix)
    assert "studio.needs-xformers" in holding(caught.value.verdict)


# ---------------------------------------------------------------- plans are values


def test_a_plan_is_built_without_a_matrix_and_checked_against_the_one_in_hand() -> None:
    plan = Plan(engine="quanto", scheme="nf4")  # no I/O: the vocabulary only
    assert plan.mode == ""
    with pytest.raises(InvalidInputError, match=r"'nf4' is not a quanto scheme.*bitsandbytes"):
        load_matrix(defaults=False).check_plan(plan)
    checked = load_matrix(defaults=False).check_plan(Plan(engine="gguf", scheme="Q8_0"))
    assert checked.mode == "prequantized"  # the engine's default_mode


def test_a_plan_refuses_what_is_not_in_the_vocabulary() -> None:
    with pytest.raises(ValueError, match=r"offload: 'balance' is not valid.*balanced"):
        Plan(engine="quanto", scheme="qint8", offload="balance")


# ---------------------------------------------------------------- detect asks the engines


def test_detect_reads_the_torchao_config_class_quantdoctors_int4dq_uses(tmp_path: Path) -> None:
    import json

    from quantdoctor.files.detect import checked, detect

    config = {
        "_class_name": "FluxTransformer2DModel",
        "quantization_config": {
            "quant_method": "torchao",
            "quant_type": {
                "default": {"_type": "Int8DynamicActivationIntxWeightConfig", "_data": {}}
            },
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    found = checked(detect(tmp_path))
    assert (found.engine, found.scheme) == ("torchao", "int4dq")
    assert found.plan == {
        "engine": "torchao",
        "scheme": "int4dq",
        "mode": "prequantized",
        "component": "transformer",
    }
