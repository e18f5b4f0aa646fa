"""Rules of the engines diffusers 0.42.1 ships besides the first five: nunchaku_lite,
modelopt, bfl, auto_round, and layerwise_casting (FP8 storage), each on the machines
their gates talk about."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from envs import (
    CPU_ONLY,
    DIRECTML_WINDOWS,
    GTX1080_WINDOWS,
    H100_LINUX,
    M2_MPS,
    RTX2080_WINDOWS,
    RTX3090_LINUX,
    RTX4090_LINUX,
    with_,
)
from helpers import check, holding

NEW = {
    "kernels": "0.17.2",
    "nvidia-modelopt": "0.47.0",
    "auto-round": "0.16.1",
    "nunchaku": None,
    "flashinfer-python": None,
    "gptqmodel": None,
}


def _machine(env: dict[str, Any], **packages: str | None) -> dict[str, Any]:
    return with_(env, packages={**NEW, **{k.replace("_", "-"): v for k, v in packages.items()}})


RTX5090_LINUX: dict[str, Any] = {
    **copy.deepcopy(RTX4090_LINUX),
    "gpus": [
        {
            "vendor": "nvidia",
            "name": "NVIDIA GeForce RTX 5090",
            "cuda_cc": "12.0",
            "memory_gb": 32.0,
        }
    ],
}
H100 = _machine(H100_LINUX)
RTX5090 = _machine(RTX5090_LINUX)
RTX4090 = _machine(RTX4090_LINUX)
RTX3090 = _machine(RTX3090_LINUX)
RTX2080 = _machine(RTX2080_WINDOWS)
GTX1080 = _machine(GTX1080_WINDOWS)
CPU = _machine(CPU_ONLY)
MPS = _machine(M2_MPS)

INT4 = ("nunchaku_lite", "svdq_w4a4_int4")
FP4 = ("nunchaku_lite", "svdq_w4a4_nvfp4")
AWQ = ("nunchaku_lite", "awq_w4a16_int4")

#: (rule, environment, engine, scheme, facets, holds there)
CASES: list[tuple[str, dict[str, Any], str, str, dict[str, str], bool]] = [
    ("nunchaku_lite.cuda-only", CPU, *INT4, {}, True),
    ("nunchaku_lite.cuda-only", RTX4090, *INT4, {}, False),
    ("nunchaku_lite.hopper", H100, *INT4, {}, True),
    ("nunchaku_lite.hopper", RTX4090, *INT4, {}, False),
    ("nunchaku_lite.hopper", RTX5090, *FP4, {}, False),
    ("nunchaku_lite.nvfp4.blackwell", RTX4090, *FP4, {}, True),
    ("nunchaku_lite.nvfp4.blackwell", RTX5090, *FP4, {}, False),
    ("nunchaku_lite.int4.turing", GTX1080, *INT4, {}, True),
    ("nunchaku_lite.int4.turing", GTX1080, *AWQ, {}, True),
    ("nunchaku_lite.int4.turing", RTX2080, *INT4, {}, False),
    ("nunchaku_lite.int4.blackwell", RTX5090, *INT4, {}, True),
    ("nunchaku_lite.int4.blackwell", RTX4090, *INT4, {}, False),
    ("nunchaku_lite.remote-kernels", RTX4090, *INT4, {}, True),
    ("nunchaku_lite.checkpoint.config", RTX4090, *AWQ, {}, True),
    ("nunchaku_lite.pypi-nunchaku", _machine(RTX4090_LINUX, nunchaku="0.16.1"), *INT4, {}, True),
    (
        "nunchaku_lite.pypi-nunchaku",
        _machine(RTX4090_LINUX, nunchaku="1.1.0+torch2.9"),
        *INT4,
        {},
        False,
    ),
    ("nunchaku_lite.pypi-nunchaku", RTX4090, *INT4, {}, False),
    (
        "modelopt.torch-min",
        with_(H100, torch={"version": "2.7.1", "cuda": "12.8", "hip": None, "xpu": False}),
        "modelopt",
        "FP8",
        {},
        True,
    ),
    ("modelopt.torch-min", H100, "modelopt", "FP8", {}, False),
    ("modelopt.diffusers.config", H100, "modelopt", "FP8", {"mode": "pre"}, True),
    ("modelopt.diffusers.config", H100, "modelopt", "FP8", {"mode": "post"}, False),
    (
        "modelopt.diffusers.prequantized-offload",
        H100,
        "modelopt",
        "FP8",
        {"mode": "prequantized", "offload": "balanced"},
        True,
    ),
    ("modelopt.nvfp4.blackwell", RTX4090, "modelopt", "NVFP4", {}, True),
    ("modelopt.nvfp4.blackwell", RTX5090, "modelopt", "NVFP4", {}, False),
    ("modelopt.nf4.post", H100, "modelopt", "NF4", {"mode": "post"}, True),
    ("modelopt.compress.cpu", CPU, "modelopt", "INT8", {}, True),
    ("modelopt.compress.cpu", H100, "modelopt", "INT8", {}, False),
    ("bfl.diffusers-min", _machine(H100_LINUX, diffusers="0.40.0"), "bfl", "fp8r", {}, True),
    ("bfl.diffusers-min", _machine(H100_LINUX, diffusers="0.41.0"), "bfl", "fp8r", {}, True),
    ("bfl.diffusers-min", _machine(H100_LINUX, diffusers="0.42.0"), "bfl", "fp8r", {}, False),
    ("bfl.diffusers-min", H100, "bfl", "fp8r", {}, False),
    ("bfl.diffusers.accelerate", _machine(H100_LINUX, accelerate=None), "bfl", "nvfp4", {}, True),
    ("bfl.fp8r.dequantized", RTX3090, "bfl", "fp8r", {}, True),
    ("bfl.fp8r.dequantized", RTX4090, "bfl", "fp8r", {}, False),
    ("bfl.nvfp4.dequantized", RTX5090, "bfl", "nvfp4", {}, True),
    (
        "bfl.nvfp4.dequantized",
        _machine(RTX5090_LINUX, flashinfer_python="0.5.3"),
        "bfl",
        "nvfp4",
        {},
        False,
    ),
    ("bfl.checkpoint.layout", H100, "bfl", "fp8r", {}, True),
    ("auto_round.mode.pre", H100, "auto_round", "W4A16", {"mode": "pre"}, True),
    ("auto_round.mode.pre", H100, "auto_round", "W4A16", {}, False),
    (
        "auto_round.version-min",
        _machine(H100_LINUX, auto_round="0.12.0"),
        "auto_round",
        "W4A16",
        {},
        True,
    ),
    ("auto_round.version-min", H100, "auto_round", "W4A16", {}, False),
    ("auto_round.backend.cuda", CPU, "auto_round", "W4A16", {}, True),
    ("auto_round.backend.gptqmodel", H100, "auto_round", "W4A16", {}, True),
    (
        "auto_round.backend.gptqmodel",
        _machine(H100_LINUX, gptqmodel="5.8.0"),
        "auto_round",
        "W4A16",
        {},
        False,
    ),
    (
        "layerwise_casting.diffusers-min",
        _machine(H100_LINUX, diffusers="0.32.2"),
        "layerwise_casting",
        "float8_e4m3fn",
        {},
        True,
    ),
    ("layerwise_casting.diffusers-min", H100, "layerwise_casting", "float8_e4m3fn", {}, False),
    ("layerwise_casting.mps", MPS, "layerwise_casting", "float8_e4m3fn", {}, True),
    ("layerwise_casting.mps", CPU, "layerwise_casting", "float8_e5m2", {}, False),
    ("layerwise_casting.directml", _machine(DIRECTML_WINDOWS), "layerwise_casting", "float8_e4m3fn", {}, True),
    ("layerwise_casting.directml", CPU, "layerwise_casting", "float8_e4m3fn", {}, False),
    ("bfl.platform.float8", MPS, "bfl", "fp8r", {}, True),
    ("bfl.platform.float8", _machine(DIRECTML_WINDOWS), "bfl", "nvfp4", {}, True),
    ("bfl.platform.float8", CPU, "bfl", "nvfp4", {}, False),
    ("layerwise_casting.skip-patterns", CPU, "layerwise_casting", "float8_e4m3fn", {}, True),
    ("layerwise_casting.storage-only", RTX4090, "layerwise_casting", "float8_e5m2", {}, True),
]


@pytest.mark.parametrize(
    ("rule", "env", "engine", "scheme", "facets", "holds"),
    CASES,
    ids=[f"{c[0]}-{'holds' if c[5] else 'not'}-{i}" for i, c in enumerate(CASES)],
)
def test_each_new_engine_rule_holds_exactly_where_its_gate_refuses(
    rule: str,
    env: dict[str, Any],
    engine: str,
    scheme: str,
    facets: dict[str, str],
    holds: bool,
) -> None:
    verdict = check(env, engine, scheme, **facets)
    assert (rule in holding(verdict)) is holds, verdict.summary()


@pytest.mark.parametrize(
    ("env", "engine", "scheme", "facets", "status"),
    [
        (H100, *INT4, {}, "blocked"),
        (RTX4090, *INT4, {}, "warn"),
        (RTX5090, *FP4, {}, "warn"),
        (CPU, *INT4, {}, "blocked"),
        (H100, "modelopt", "FP8", {"mode": "pre"}, "blocked"),
        (CPU, "modelopt", "INT4", {}, "ok"),
        (CPU, "bfl", "fp8r", {}, "ok"),
        (H100, "auto_round", "W4A16", {}, "ok"),
        (MPS, "layerwise_casting", "float8_e4m3fn", {}, "blocked"),
        (RTX4090, "layerwise_casting", "float8_e4m3fn", {"offload": "model"}, "ok"),
    ],
)
def test_a_new_engine_plan_gets_the_verdict_its_gates_give(
    env: dict[str, Any], engine: str, scheme: str, facets: dict[str, str], status: str
) -> None:
    assert check(env, engine, scheme, **facets).status == status


def test_a_missing_new_engine_is_named_with_its_install_command() -> None:
    verdict = check(_machine(RTX4090_LINUX, kernels=None), *INT4)
    assert verdict.status == "blocked" and "nunchaku_lite.not-installed" in holding(verdict)
    finding = next(f for f in verdict.findings if f.rule == "nunchaku_lite.not-installed")
    assert "pip install kernels" in finding.fix


@pytest.mark.parametrize(
    ("rule", "package", "engine", "scheme"),
    [
        ("nunchaku_lite.not-installed", "kernels", *INT4),
        ("modelopt.not-installed", "nvidia-modelopt", "modelopt", "INT8"),
        ("auto_round.not-installed", "auto-round", "auto_round", "W4A16"),
        ("bfl.not-installed", "diffusers", "bfl", "fp8r"),
        ("layerwise_casting.not-installed", "diffusers", "layerwise_casting", "float8_e4m3fn"),
    ],
)
def test_each_new_engine_is_blocked_without_its_package(
    rule: str, package: str, engine: str, scheme: str
) -> None:
    verdict = check(with_(RTX4090, packages={package: None}), engine, scheme)
    assert verdict.status == "blocked" and rule in holding(verdict)


@pytest.mark.parametrize(
    ("rule", "package", "engine", "scheme"),
    [
        ("verified.nvidia-modelopt", "nvidia-modelopt", "modelopt", "INT8"),
        ("verified.kernels", "kernels", *INT4),
        ("verified.auto-round", "auto-round", "auto_round", "W4A16"),
    ],
)
def test_a_new_engine_package_newer_than_verified_is_said(
    rule: str, package: str, engine: str, scheme: str
) -> None:
    newer = with_(RTX4090, packages={package: "99.0.0"})
    assert rule in holding(check(newer, engine, scheme))
    assert rule not in holding(check(RTX4090, engine, scheme))


@pytest.mark.parametrize(
    ("qc", "engine", "scheme"),
    [
        (
            {"quant_method": "nunchaku_lite", "svdq_w4a4": {"precision": "nvfp4", "group_size": 16,
             "rank": 32, "targets": ["a"]}},
            "nunchaku_lite",
            "svdq_w4a4_nvfp4",
        ),
        (
            {"quant_method": "nunchaku_lite", "awq_w4a16": {"precision": "int4", "group_size": 64,
             "targets": ["a"]}},
            "nunchaku_lite",
            "awq_w4a16_int4",
        ),
        ({"quant_method": "auto-round", "bits": 4, "group_size": 128}, "auto_round", "W4A16"),
        ({"quant_method": "modelopt", "quant_type": "FP8_INT8"}, "modelopt", "FP8"),
    ],
)
def test_detect_reads_a_new_engine_from_its_saved_quantization_config(
    tmp_path: Any, qc: dict[str, Any], engine: str, scheme: str
) -> None:
    import json
    import struct

    from quantdoctor.files.detect import detect

    header = json.dumps({"a.weight": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 32]}})
    raw = header.encode() + b" " * (-len(header) % 8)
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(
        struct.pack("<Q", len(raw)) + raw + bytes(32)
    )
    config = {"_class_name": "FluxTransformer2DModel", "quantization_config": qc}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    found = detect(tmp_path)
    assert (found.engine, found.scheme) == (engine, scheme)
