"""The stack moved: platform and engine drift, and saying when a version is beyond what was checked."""

from __future__ import annotations

from typing import Any

import pytest
from envs import CPU_ONLY, GTX1080_WINDOWS, H100_LINUX, RTX2080_WINDOWS, with_
from helpers import assert_blocked_by, assert_passes, check, holding

from quantdoctor import load_matrix
from quantdoctor.rules.verified import fact_of

#: Every distribution the matrix records a verified version for, by the rule it generates.
VERIFIED_RULES = {
    "torch": "verified.torch",
    "bitsandbytes": "verified.bitsandbytes",
    "optimum-quanto": "verified.optimum-quanto",
    "torchao": "verified.torchao",
    "gguf": "verified.gguf",
    "nncf": "verified.nncf",
    "sdnq": "verified.sdnq",
    "diffusers": "verified.diffusers",
    "accelerate": "verified.accelerate",
    "transformers": "verified.transformers",
    "triton": "verified.triton",
    "intel-extension-for-pytorch": "verified.intel-extension-for-pytorch",
}
ENGINE_OF = {"bitsandbytes": "bitsandbytes", "optimum-quanto": "quanto", "torchao": "torchao",
             "gguf": "gguf", "nncf": "nncf", "sdnq": "sdnq"}  # fmt: skip
SCHEME_OF = {"bitsandbytes": "nf4", "quanto": "qint8", "torchao": "int8wo", "gguf": "Q8_0",
             "nncf": "int8_asym", "sdnq": "int8"}  # fmt: skip


def _bumped(env: dict[str, Any], dist: str, version: str) -> dict[str, Any]:
    fact = fact_of(dist)
    if fact == "torch.version":
        return with_(env, torch={**env["torch"], "version": version})
    if fact == "triton.version":
        return with_(env, triton={"version": version, "works": True})
    return with_(env, packages={dist: version})


def test_the_verified_section_names_these_distributions() -> None:
    matrix = load_matrix(defaults=False)
    assert set(matrix.verified) >= set(VERIFIED_RULES)
    generated = {r.id for r in matrix.rules if r.id.startswith("verified.")}
    assert generated >= set(VERIFIED_RULES.values())


@pytest.mark.parametrize(("dist", "rule"), sorted(VERIFIED_RULES.items()))
def test_a_version_newer_than_verified_is_said_plainly(dist: str, rule: str) -> None:
    checked = load_matrix(defaults=False).verified[dist].version
    engine = ENGINE_OF.get(dist, "torchao")
    newer = _bumped(H100_LINUX, dist, "99.0.0")
    verdict = check(newer, engine, SCHEME_OF[engine])
    finding = next(f for f in verdict.findings if f.rule == rule)
    assert finding.state == "holds" and finding.severity == "info"
    assert "99.0.0" in finding.message and checked in finding.message
    assert "newer than any version quantdoctor has checked" in finding.message
    # the version that was checked, and older ones, get no such note
    same = _bumped(H100_LINUX, dist, checked)
    assert rule not in holding(check(same, engine, SCHEME_OF[engine]))


def test_an_engine_package_newer_than_verified_concerns_only_that_engine() -> None:
    env = with_(H100_LINUX, packages={"optimum-quanto": "0.3.0"})
    assert "verified.optimum-quanto" in holding(check(env, "quanto", "qint8"))
    assert "verified.optimum-quanto" not in {f.rule for f in check(env, "torchao", "int8wo").findings}


def test_an_unknown_version_leaves_the_verdict_decided() -> None:
    env = dict(H100_LINUX)
    env["packages"] = {k: v for k, v in H100_LINUX["packages"].items() if k != "accelerate"}
    verdict = check(env, "torchao", "int8wo")
    assert verdict.status in ("ok", "warn"), verdict.summary()


def _bounded_facts(node: Any) -> set[str]:
    """Facts compared with an upper version bound anywhere in a condition."""
    found: set[str] = set()
    if isinstance(node, dict):
        spec = node.get("version")
        if isinstance(spec, str) and ("<" in spec or "==" in spec or "~=" in spec):
            found.add(str(node["fact"]))
        for value in node.values():
            found |= _bounded_facts(value)
    elif isinstance(node, list):
        for value in node:
            found |= _bounded_facts(value)
    return found


def test_rules_with_an_upper_version_bound_are_covered_by_a_verified_version() -> None:
    """Past its bound a rule stops applying; the verified note must say nobody checked there."""
    matrix = load_matrix(defaults=False)
    watched = {fact_of(d) for d in matrix.verified}
    missing = {}
    for rule in matrix.rules:
        scope = [{"fact": fact_of(d), "version": v} for d, v in rule.holds_for.items()]
        for fact in _bounded_facts([rule.when, scope]):
            if (fact.startswith("packages.") or fact in ("torch.version", "triton.version")) and (
                fact not in watched
            ):
                missing[rule.id] = fact
    assert not missing, f"bounded on a version no verified entry watches: {missing}"


# ------------------------------------------------------------------ torch 2.15, CUDA 13


def test_torch_with_cuda_13_runs_nothing_on_pascal_whatever_the_engine() -> None:
    env = with_(GTX1080_WINDOWS, torch={"version": "2.15.0+cu132", "cuda": "13.2", "hip": None,
                                        "xpu": False})  # fmt: skip
    for engine, scheme in (("gguf", "Q8_0"), ("torchao", "int8wo"), ("quanto", "qint8")):
        assert_blocked_by(check(env, engine, scheme), "torch.cuda.arch-dropped")
    verdict = check(env, "gguf", "Q8_0")
    fix = next(f.fix for f in verdict.findings if f.rule == "torch.cuda.arch-dropped")
    assert "cu126" in fix and "torch<2.15" in fix


def test_torch_with_cuda_12_still_runs_on_pascal_and_cuda_13_on_turing() -> None:
    assert "torch.cuda.arch-dropped" not in holding(check(GTX1080_WINDOWS, "gguf", "Q8_0"))
    turing = with_(RTX2080_WINDOWS, torch={"version": "2.15.0+cu132", "cuda": "13.2", "hip": None,
                                           "xpu": False})  # fmt: skip
    assert "torch.cuda.arch-dropped" not in holding(check(turing, "gguf", "Q8_0"))


# ------------------------------------------------------------------------------ Triton


def test_triton_windows_3_7_pairs_with_torch_2_13_and_3_6_does_not() -> None:
    torch_213 = {"version": "2.13.0+cu130", "cuda": "13.0", "hip": None, "xpu": False}
    good = with_(RTX2080_WINDOWS, torch=torch_213, triton={"version": "3.7.1", "works": True})
    bad = with_(RTX2080_WINDOWS, torch=torch_213, triton={"version": "3.6.0", "works": True})
    assert "triton.windows.pairing" not in holding(check(good, "torchao", "int8wo"))
    verdict = check(bad, "torchao", "int8wo")
    assert "triton.windows.pairing" in holding(verdict)
    fix = next(f.fix for f in verdict.findings if f.rule == "triton.windows.pairing")
    assert "<3.7" not in fix and "3.7.x for torch 2.13" in fix


def test_triton_windows_3_7_is_too_new_for_torch_2_10() -> None:
    torch_210 = {"version": "2.10.0+cu128", "cuda": "12.8", "hip": None, "xpu": False}
    env = with_(RTX2080_WINDOWS, torch=torch_210, triton={"version": "3.7.0", "works": True})
    assert "triton.windows.pairing" in holding(check(env, "torchao", "int8wo"))


def test_official_triton_3_3_dropped_turing() -> None:
    turing = with_(RTX2080_WINDOWS, os="linux", triton={"version": "3.3.1", "works": True})
    assert "triton.turing.dropped" in holding(check(turing, "torchao", "int8wo"))
    older = with_(turing, triton={"version": "3.2.0", "works": True})
    assert "triton.turing.dropped" not in holding(check(older, "torchao", "int8wo"))
    assert "triton.turing.dropped" not in holding(check(H100_LINUX, "torchao", "int8wo"))


# ----------------------------------------------------------------------------- torchao


def test_torchao_0_18_does_not_work_at_all_below_torch_2_11() -> None:
    env = with_(H100_LINUX, torch={"version": "2.10.0+cu128", "cuda": "12.8", "hip": None,
                                   "xpu": False})  # fmt: skip
    verdict = check(env, "torchao", "int8wo")
    assert_blocked_by(verdict, "torchao.torch.dropped")
    # the older "only its Python API works" note no longer speaks for 0.18
    assert "torchao.torch.kernels" not in holding(verdict)
    older = with_(env, packages={"torchao": "0.17.0"})
    assert "torchao.torch.dropped" not in holding(check(older, "torchao", "int8wo"))
    assert "torchao.torch.kernels" in holding(check(older, "torchao", "int8wo"))


def test_torchao_0_17_still_warns_only_below_torch_2_9() -> None:
    env = with_(H100_LINUX, torch={"version": "2.8.0+cu128", "cuda": "12.8", "hip": None,
                                   "xpu": False}, packages={"torchao": "0.17.0"})  # fmt: skip
    assert "torchao.torch.too-old" in holding(check(env, "torchao", "int8wo"))


def test_diffusers_torchao_loader_imports_relocated_dtypes() -> None:
    verdict = check(H100_LINUX, "torchao", "int8wo", mode="pre")
    assert "torchao.diffusers.dtypes-import" in holding(verdict)
    assert "torchao.diffusers.dtypes-import" not in holding(check(H100_LINUX, "torchao", "int8wo"))


def test_torchao_group_offload_with_streams_is_a_warning() -> None:
    verdict = check(H100_LINUX, "torchao", "int8wo", offload="group")
    assert "torchao.offload.group.stream" in holding(verdict)
    fix = next(f.fix for f in verdict.findings if f.rule == "torchao.offload.group.stream")
    assert "use_stream=False" in fix
    assert_passes(verdict)


# ---------------------------------------------------------------------- deprecations


def test_quanto_while_loading_is_a_warning_with_the_replacement() -> None:
    verdict = check(H100_LINUX, "quanto", "qint8", mode="pre")
    finding = next(f for f in verdict.findings if f.rule == "quanto.mode.pre.deprecated")
    assert finding.severity == "warn" and finding.state == "holds"
    assert "torchao" in finding.fix and "sdnq" in finding.fix
    assert verdict.status == "warn"


def test_cpu_machine_is_not_told_about_cuda_drift() -> None:
    for rule in ("torch.cuda.arch-dropped", "triton.turing.dropped"):
        assert rule not in holding(check(CPU_ONLY, "torchao", "int8wo"))


def test_the_report_says_a_newer_version_once_per_package() -> None:
    from quantdoctor.doctor.report import build_report
    from quantdoctor.rules.evaluate import evaluate_grid

    env = with_(H100_LINUX, packages={"optimum-quanto": "0.3.0", "diffusers": "0.43.0"})
    matrix = load_matrix(defaults=False)
    report = build_report(env, evaluate_grid(env, matrix), matrix)
    drift = [c for c in report["checks"] if c["check"].startswith("verified.")]
    assert [c["check"] for c in drift] == ["verified.diffusers", "verified.optimum-quanto"]
    assert all(c["mark"] == "warn" and c["fix"] for c in drift)
    assert "0.43.0" in drift[0]["text"] and "0.42.1" in drift[0]["text"]
    current = build_report(H100_LINUX, evaluate_grid(H100_LINUX, matrix), matrix)
    assert not [c for c in current["checks"] if c["check"].startswith("verified.")]
