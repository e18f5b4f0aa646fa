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


# ---------------------------------------------------------------- a sixth engine


@pytest.fixture
def toyq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The throwaway engine's overlay as the user's QUANTDOCTOR_MATRIX; the default matrix
    is read again with it, and again without it afterwards."""
    from throwaway_engine import OVERLAY

    from quantdoctor.rules.evaluate import default_matrix

    overlay = tmp_path / "toyq.yaml"
    overlay.write_text(OVERLAY, encoding="utf-8")
    monkeypatch.setenv("QUANTDOCTOR_MATRIX", str(overlay))
    default_matrix.cache_clear()
    yield overlay
    monkeypatch.delenv("QUANTDOCTOR_MATRIX")
    default_matrix.cache_clear()


def _toy_site(root: Path, version: str | None) -> Path:
    site = root / "site"
    site.mkdir()
    if version is not None:
        info = site / f"toyq_lib-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Name: toyq-lib\nVersion: {version}\n", "utf-8")
    return site


def test_a_new_engine_is_evaluated_from_its_overlay_alone(toyq: Path) -> None:
    matrix = load_matrix()
    assert "toyq" in matrix.engine_names
    absent = {"torch": {"version": "2.11.0"}, "packages": {"toyq-lib": None}}
    verdict = evaluate(Plan(engine="toyq", scheme="t4"), absent, matrix)
    assert verdict.status == "blocked" and "toyq.not-installed" in holding(verdict)
    assert verdict.plan.mode == "post"
    old = {"torch": {"version": "2.11.0"}, "packages": {"toyq-lib": "1.5.0"}}
    verdict = evaluate(Plan(engine="toyq", scheme="t4", offload="sequential"), old, matrix)
    assert "toyq.offload.sequential" in holding(verdict)
    assert "toyq-lib 1.5.0 loses" in verdict.findings[0].message


def test_a_new_engine_is_probed_from_its_overlay_alone(toyq: Path, tmp_path: Path) -> None:
    site = _toy_site(tmp_path, "1.5.0")
    env = probe(root=str(tmp_path), site_dirs=[str(site)], environ={"PATH": ""})
    assert env.packages["toyq-lib"] == "1.5.0"


def test_a_new_engine_is_detected_by_its_module(toyq: Path, tmp_path: Path) -> None:
    import json
    import struct

    from quantdoctor.files.detect import checked, detect

    header = {
        "blocks.0.attn.to_q.weight": {"dtype": "I8", "shape": [8, 8], "data_offsets": [0, 64]},
        "blocks.0.attn.to_q.weight.toyq_scale": {
            "dtype": "BF16",
            "shape": [8],
            "data_offsets": [64, 80],
        },
    }
    raw = json.dumps(header).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(80))
    found = checked(detect(path))
    assert (found.engine, found.scheme) == ("toyq", "t4")
    assert found.plan is not None and found.plan["engine"] == "toyq"


def test_a_new_engine_is_rendered_by_the_cli(toyq: Path, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    env_file = tmp_path / "env.json"
    env_file.write_text(
        json.dumps({"os": "linux", "torch": {"version": "2.11.0"}, "packages": {"toyq-lib": None}})
    )
    tests = str(Path(__file__).parent)
    run_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.environ.get("PYTHONPATH", ""), tests]),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "quantdoctor", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=run_env,
        )

    report = cli("--env", str(env_file), "--json")
    engines = {e["engine"]: e for e in json.loads(report.stdout)["engines"]}
    assert engines["toyq"]["installed"] is False
    assert "pip install toyq-lib" in report.stdout
    check = cli("check", "--engine", "toyq", "--scheme", "t4", "--env", str(env_file))
    assert check.returncode == 1 and "toyq.not-installed" in check.stdout
    rules = cli("rules", "--engine", "toyq", "--json")
    assert {"toyq.not-installed", "toyq.offload.sequential"} <= {
        r["id"] for r in json.loads(rules.stdout)
    }


def test_a_new_engine_quantizes_through_its_own_adapter(toyq: Path) -> None:
    torch = pytest.importorskip("torch")
    from quantdoctor import quantize

    model = torch.nn.Sequential(torch.nn.Linear(16, 16))
    here = {"os": "linux", "torch": {"version": torch.__version__}, "packages": {"toyq-lib": "2.0"}}
    with pytest.warns(Warning):  # facts the env leaves unknown make the verdict unknown
        out = quantize(model, Plan(engine="toyq", scheme="t4"), env=here)
    levels = out[0].weight.detach() / (out[0].weight.abs().amax(dim=1, keepdim=True) / 7)
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    assert Plan(engine="toyq", scheme="t4").to_diffusers() == {
        "quant_method": "toyq",
        "scheme": "T4",
    }


# ---------------------------------------------------------------- one backends table


def test_rules_select_backends_by_their_row_in_the_one_table() -> None:
    from quantdoctor.rules.evaluate import to_facts
    from quantdoctor.rules.vocab import BACKEND_TABLE, BACKENDS

    assert BACKENDS == tuple(row[0] for row in BACKEND_TABLE)
    facts = to_facts({"backend": "rocm"})
    assert (facts["backend.vendor"], facts["backend.accelerator"], facts["backend.triton"]) == (
        "amd",
        True,
        "hip",
    )
    assert "backend.vendor" not in to_facts({})  # an unknown backend: unknown facts
    for row in BACKEND_TABLE:
        verdict = evaluate(Plan(engine="gguf", scheme="Q8_0", offload="model"), {"backend": row[0]})
        assert ("offload.needs-accelerator" in holding(verdict)) is (not row[2]), row[0]
