"""The sdnq rules: an SD.Next user's plan gets a true verdict with its source.

Each test names the rule it exercises; sources are sdnq 0.2.8's code, diffusers 0.42.1's
quantizers/sdnq/, SD.Next's SDNQ docs, sdnq's issues and the GPU runs (H200).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from envs import (
    ARC_XPU,
    CPU_ONLY,
    GTX1080_WINDOWS,
    H100_LINUX,
    M2_MPS,
    RTX3090_LINUX,
    RTX4090_LINUX,
    RX6800_ZLUDA,
    RX7900_ROCM,
    with_,
)
from helpers import assert_blocked_by, assert_passes, check, holding

from quantdoctor import explain
from quantdoctor.rules.evaluate import evaluate
from quantdoctor.rules.matrix import load_matrix
from quantdoctor.rules.models import Environment, Plan

FLOATS = ("float8_e4m3fn", "float4_e2m1fn")


def test_every_scheme_passes_everywhere_sdnq_runs_with_every_offload() -> None:
    schemes = load_matrix(defaults=False).engines["sdnq"].schemes
    for scheme in schemes:
        for mode in ("pre", "post", "prequantized"):
            for offload in ("none", "model", "sequential", "group", "balanced"):
                assert_passes(check(H100_LINUX, "sdnq", scheme, mode=mode, offload=offload))
    for env in (RX7900_ROCM, ARC_XPU, M2_MPS, RX6800_ZLUDA, GTX1080_WINDOWS):
        assert_passes(check(env, "sdnq", "uint4", offload="balanced"))


def test_sdnq_not_installed_blocks() -> None:
    bare = with_(H100_LINUX, packages={"sdnq": None})
    assert_blocked_by(check(bare, "sdnq", "int8"), "sdnq.not-installed")
    texts = (
        "ModuleNotFoundError: No module named 'sdnq'",
        "ImportError: Loading or creating an SDNQ quantized model requires the sdnq library: "
        "`pip install 'sdnq>=0.2.2'`",
    )
    for text in texts:
        assert "sdnq.not-installed" in [m.rule for m in explain(text)]


def test_diffusers_warns_below_sdnq_0_2_2() -> None:
    old = with_(H100_LINUX, packages={"sdnq": "0.1.6"})
    verdict = check(old, "sdnq", "int8", mode="prequantized")
    assert verdict.status == "warn" and "sdnq.diffusers.sdnq-min" in holding(verdict)
    assert "sdnq.diffusers.sdnq-min" not in holding(check(H100_LINUX, "sdnq", "int8", mode="pre"))
    assert "sdnq.diffusers.sdnq-min" not in holding(check(old, "sdnq", "int8", mode="post"))


def test_diffusers_before_0_40_needs_sdnq_imported_first() -> None:
    old = with_(H100_LINUX, packages={"diffusers": "0.38.0"})
    verdict = check(old, "sdnq", "uint4", mode="prequantized", offload="sequential")
    assert verdict.status == "warn" and "sdnq.diffusers.before-0.40" in holding(verdict)
    assert "sdnq.diffusers.before-0.40" not in holding(
        check(H100_LINUX, "sdnq", "uint4", mode="pre")
    )
    # https://github.com/Disty0/sdnq/issues/11: diffusers' list without sdnq
    text = (
        "ValueError: Unknown quantization type, got sdnq - supported types are: "
        "['bitsandbytes_4bit', 'bitsandbytes_8bit', 'gguf', 'quanto', 'torchao', 'modelopt']"
    )
    assert "sdnq.not-registered" in [m.rule for m in explain(text)]  # its cause, first


def test_a_prequantized_text_encoder_warns_to_import_sdnq_first() -> None:
    verdict = check(H100_LINUX, "sdnq", "int8", mode="prequantized", component="text_encoder")
    assert verdict.status == "warn"
    assert "sdnq.text-encoder.import-first" in holding(verdict)
    transformer = check(H100_LINUX, "sdnq", "int8", mode="prequantized")
    assert "sdnq.text-encoder.import-first" not in holding(transformer)


def test_a_file_from_a_newer_sdnq_is_explained() -> None:
    assert "sdnq.prequantized.newer-file" in holding(
        check(H100_LINUX, "sdnq", "uint4", mode="prequantized")
    )
    matches = [m.rule for m in explain("KeyError: 'float5_e3m1fn'")]  # Disty0/sdnq#8
    assert "sdnq.prequantized.newer-file" in matches


def test_post_mode_names_sdnq_post_load_quant() -> None:
    assert "sdnq.mode.post" in holding(check(H100_LINUX, "sdnq", "int8", mode="post"))


def test_pre_mode_for_a_unet_runs_through_diffusers_despite_sd_next_docs() -> None:
    verdict = check(H100_LINUX, "sdnq", "int8", mode="pre", component="unet")
    assert_passes(verdict)
    assert "sdnq.component.unet.pre" in holding(verdict)
    assert "sdnq.component.unet.pre" not in holding(check(H100_LINUX, "sdnq", "int8", mode="pre"))


def test_sdnq_is_cross_platform() -> None:
    for env in (CPU_ONLY, M2_MPS, ARC_XPU, RX7900_ROCM):
        verdict = check(env, "sdnq", "int8")
        assert_passes(verdict)
        assert "sdnq.platform.any" in holding(verdict)


def test_without_triton_sdnq_warns_it_runs_eager() -> None:
    no_triton = with_(H100_LINUX, triton=None)
    verdict = check(no_triton, "sdnq", "int8")
    assert verdict.status == "warn" and "sdnq.triton.missing" in holding(verdict)
    broken = with_(H100_LINUX, triton={"version": "3.6.0", "works": False})
    assert "sdnq.triton.missing" in holding(check(broken, "sdnq", "int8"))
    assert "sdnq.triton.missing" not in holding(check(H100_LINUX, "sdnq", "int8"))
    assert "sdnq.triton.missing" not in holding(check(CPU_ONLY, "sdnq", "int8"))  # no triton
    text = "SDNQ: Torch Compile test failed! Falling back to PyTorch Eager mode. Error message: x"
    assert "sdnq.triton.missing" in [m.rule for m in explain(text)]


def test_openvino_matmul_on_the_cpu() -> None:
    verdict = check(CPU_ONLY, "sdnq", "int8")
    assert "sdnq.cpu.openvino" in holding(verdict)
    with_openvino = with_(CPU_ONLY, packages={"openvino": "2026.2.1"})
    assert "sdnq.cpu.openvino" not in holding(check(with_openvino, "sdnq", "int8"))
    text = (
        "SDNQ: OpenVINO MM kernels are not available! Falling back to PyTorch Eager kernels "
        "for CPU device. Error message: No module named 'openvino'"
    )
    assert "sdnq.cpu.openvino" in [m.rule for m in explain(text)]


def test_int8_matmul_is_listed_from_turing() -> None:
    pascal = check(GTX1080_WINDOWS, "sdnq", "int8")
    assert "sdnq.matmul.int8.pre-turing" in holding(pascal)
    assert_passes(pascal)  # weights still dequantize in torch
    assert "sdnq.matmul.int8.pre-turing" not in holding(check(H100_LINUX, "sdnq", "int8"))
    assert "sdnq.matmul.int8.pre-turing" not in holding(check(GTX1080_WINDOWS, "sdnq", *FLOATS[:1]))


@pytest.mark.parametrize("scheme", FLOATS)
def test_fp8_matmul_needs_ada_on_nvidia(scheme: str) -> None:
    assert "sdnq.matmul.fp8.nvidia" in holding(check(RTX3090_LINUX, "sdnq", scheme))
    assert "sdnq.matmul.fp8.nvidia" not in holding(check(RTX4090_LINUX, "sdnq", scheme))
    assert "sdnq.matmul.fp8.nvidia" not in holding(check(H100_LINUX, "sdnq", scheme))
    assert "sdnq.matmul.fp8.nvidia" not in holding(check(RTX3090_LINUX, "sdnq", "int8"))


def test_fp8_matmul_on_rocm_needs_rdna4_or_mi300() -> None:
    assert "sdnq.matmul.fp8.rocm" in holding(check(RX7900_ROCM, "sdnq", "float8_e4m3fn"))
    for gfx in ("gfx1201", "gfx942", "gfx950"):
        gpu = {**RX7900_ROCM["gpus"][0], "gfx": gfx}
        env = with_(RX7900_ROCM, gpus=[gpu])
        assert "sdnq.matmul.fp8.rocm" not in holding(check(env, "sdnq", "float8_e4m3fn"))


def test_fp8_matmul_is_cuda_and_rocm_only() -> None:
    for env in (ARC_XPU, RX6800_ZLUDA, CPU_ONLY, M2_MPS):
        assert "sdnq.matmul.fp8.other" in holding(check(env, "sdnq", "float8_e4m3fn"))
    assert "sdnq.matmul.fp8.other" not in holding(check(H100_LINUX, "sdnq", "float8_e4m3fn"))


def test_rdna2_and_older_compute_in_float16() -> None:
    rdna2 = with_(RX7900_ROCM, gpus=[{**RX7900_ROCM["gpus"][0], "gfx": "gfx1030"}])
    assert "sdnq.platform.rocm-rdna2" in holding(check(rdna2, "sdnq", "int8"))
    assert "sdnq.platform.rocm-rdna2" not in holding(check(RX7900_ROCM, "sdnq", "int8"))


def test_intel_alchemist_gets_no_triton_matmul() -> None:
    assert "sdnq.platform.intel-no-triton-mm" in holding(check(ARC_XPU, "sdnq", "int8"))
    battlemage = with_(ARC_XPU, gpus=[{**ARC_XPU["gpus"][0], "name": "Intel Arc B580"}])
    assert "sdnq.platform.intel-no-triton-mm" not in holding(check(battlemage, "sdnq", "int8"))


def test_zluda_runs_with_a_warning() -> None:
    verdict = check(RX6800_ZLUDA, "sdnq", "int8")
    assert verdict.status == "warn" and "sdnq.platform.zluda" in holding(verdict)


@pytest.mark.parametrize(
    ("offload", "rule"),
    [
        ("model", "sdnq.offload.model"),
        ("sequential", "sdnq.offload.sequential"),
        ("group", "sdnq.offload.group"),
        ("balanced", "sdnq.offload.balanced"),
    ],
)
def test_every_offload_of_the_h200_evidence_passes(offload: str, rule: str) -> None:
    for scheme, mode in (
        ("int8", "pre"),
        ("uint4", "pre"),
        ("float8_e4m3fn", "pre"),
        ("int8", "post"),
        ("uint4", "post"),
    ):
        verdict = check(H100_LINUX, "sdnq", scheme, mode=mode, offload=offload)
        assert_passes(verdict)
        assert rule in holding(verdict)


# ---- the H200 runs (benchmarks/results/sdnq-h200.md), re-judged with today's matrix ------

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def _records(name: str) -> list[dict[str, Any]]:
    lines = (RESULTS / name).read_text().splitlines()
    return [json.loads(line) for line in lines]


def _h200() -> Environment:
    return Environment.model_validate(
        json.loads((RESULTS / "ground_truth-env-h200.json").read_text())
    )


def test_the_sdnq_ground_truth_agrees_with_the_matrix_case_by_case() -> None:
    env = _h200()
    cases = [r for r in _records("ground_truth-sdnq-h200.jsonl") if r.get("kind") == "case"]
    assert len(cases) == 75
    assert {(r["scheme"], r["mode"]) for r in cases} == {
        (s, m)
        for s in ("int8", "int4", "uint4", "float8_e4m3fn", "float4_e2m1fn")
        for m in ("pre", "post", "prequantized")
    }
    assert {r["offload"] for r in cases} == {"none", "model", "sequential", "group", "balanced"}
    wrong = []
    for r in cases:
        plan = Plan(engine="sdnq", scheme=r["scheme"], mode=r["mode"], offload=r["offload"])
        if evaluate(plan, env).passes != bool(r["ok"]):
            wrong.append(f"{plan.label()}: ran={r['ok']} {r.get('error')}")
    assert not wrong, "\n".join(wrong)


def test_the_text_encoder_runs_agree_with_the_import_rule() -> None:
    """Every text-encoder plan ran; a saved one loaded only with sdnq imported first, which
    is what the warn rule says (its fix); the transformer loaded either way."""
    env = _h200()
    runs = [r for r in _records("sdnq-te-h200.jsonl") if r.get("kind") == "case"]
    assert len(runs) >= 20
    for r in runs:
        plan = Plan(
            engine="sdnq",
            scheme=r["scheme"],
            mode=r["mode"],
            offload=r["offload"],
            component=r["component"],
        )
        verdict = evaluate(plan, env)
        assert verdict.passes, plan.label()
        needs_import = r["component"] == "text_encoder" and r["mode"] == "prequantized"
        assert ("sdnq.text-encoder.import-first" in holding(verdict)) == needs_import
        if needs_import and r.get("how") == "plain":
            assert not r["ok"] and "Unknown quantization type, got sdnq" in r["warning"]
            matches = [m.rule for m in explain(f"{r['warning']}\n{r['error']}")]
            assert "sdnq.text-encoder.import-first" in matches
        else:
            assert r["ok"], (plan.label(), r.get("how"), r.get("error"))
