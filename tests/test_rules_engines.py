"""The rules that come from the engines' own docs, code and issues, and from measured runs.

One specification per rule (the seed document's statements are in test_seed_statements.py).
Each environment is written as a literal in envs.py and varied with ``with_``.
"""

from __future__ import annotations

import pytest
from envs import (
    ARC_XPU,
    CPU_ONLY,
    DIRECTML_WINDOWS,
    GTX1080_WINDOWS,
    H100_LINUX,
    M2_MPS,
    RTX2080_WINDOWS,
    RTX3090_LINUX,
    RTX4090_LINUX,
    RX6800_ZLUDA,
    RX7900_ROCM,
    with_,
)
from helpers import assert_blocked_by, assert_passes, check, holding

from quantdoctor import evaluate

# ---------------------------------------------------------------- installation


@pytest.mark.parametrize(
    ("engine", "scheme", "package", "rule"),
    [
        ("bitsandbytes", "nf4", "bitsandbytes", "bitsandbytes.not-installed"),
        ("quanto", "qint8", "optimum-quanto", "quanto.not-installed"),
        ("torchao", "int8wo", "torchao", "torchao.not-installed"),
        ("gguf", "Q8_0", "gguf", "gguf.not-installed"),
        ("nncf", "int8_sym", "nncf", "nncf.not-installed"),
    ],
)
def test_an_engine_that_is_known_absent_is_blocked_with_its_install_command(
    engine: str, scheme: str, package: str, rule: str
) -> None:
    verdict = check(with_(H100_LINUX, packages={package: None}), engine, scheme)
    assert_blocked_by(verdict, rule)
    finding = next(f for f in verdict.findings if f.rule == rule)
    assert finding.fix.startswith(f"pip install {package}")


def test_an_engine_whose_version_is_unknown_is_not_called_absent() -> None:
    env = with_(H100_LINUX)
    del env["packages"]["optimum-quanto"]
    verdict = check(env, "quanto", "qint8")
    assert "quanto.not-installed" not in holding(verdict)
    assert verdict.status != "blocked"


def test_a_machine_without_torch_blocks_every_engine() -> None:
    verdict = check(with_(H100_LINUX, torch=None), "torchao", "int8wo")
    assert_blocked_by(verdict, "torch.not-installed")
    assert "pytorch.org" in next(f.fix for f in verdict.findings if f.rule == "torch.not-installed")


# ---------------------------------------------------------------- modes


def test_quanto_pre_mode_needs_optimum_quanto_0_2_6() -> None:
    old = with_(H100_LINUX, packages={"optimum-quanto": "0.2.5"})
    assert_blocked_by(check(old, "quanto", "qint8", mode="pre"), "quanto.mode.pre.quanto-min")


def test_quanto_pre_mode_notes_the_diffusers_deprecation() -> None:
    verdict = check(H100_LINUX, "quanto", "qint8", mode="pre")
    assert "quanto.mode.pre.deprecated" in holding(verdict)
    old = with_(H100_LINUX, packages={"diffusers": "0.35.0"})
    assert "quanto.mode.pre.deprecated" not in holding(check(old, "quanto", "qint8", mode="pre"))


def test_quanto_prequantized_files_do_not_load_through_diffusers() -> None:
    verdict = check(H100_LINUX, "quanto", "qint8", mode="prequantized")
    assert verdict.status == "warn"
    assert "quanto.mode.prequantized" in holding(verdict)


def test_torchao_pre_mode_needs_torchao_0_15_with_current_diffusers() -> None:
    old = with_(H100_LINUX, packages={"torchao": "0.14.1"})
    assert_blocked_by(check(old, "torchao", "int8wo", mode="pre"), "torchao.mode.pre.torchao-min")
    older_diffusers = with_(old, packages={"diffusers": "0.35.0"})
    verdict = check(older_diffusers, "torchao", "int8wo", mode="pre")
    assert "torchao.mode.pre.torchao-min" not in holding(verdict)


def test_torchao_pre_mode_takes_config_objects_not_strings() -> None:
    verdict = check(H100_LINUX, "torchao", "int8wo", mode="pre")
    assert "torchao.mode.pre.config-objects" in holding(verdict)


def test_gguf_k_quants_cannot_be_made_after_load() -> None:
    assert_blocked_by(check(CPU_ONLY, "gguf", "Q4_K", mode="post"), "gguf.mode.post.k-quants")


def test_gguf_q8_0_can_be_made_after_load_by_quantdoctor() -> None:
    verdict = check(CPU_ONLY, "gguf", "Q8_0", mode="post")
    assert_passes(verdict)
    assert "gguf.mode.post" in holding(verdict)


def test_nncf_cannot_quantize_while_loading() -> None:
    assert_blocked_by(check(H100_LINUX, "nncf", "int8_sym", mode="pre"), "nncf.mode.pre")


def test_nncf_compressed_checkpoints_have_no_loader() -> None:
    verdict = check(H100_LINUX, "nncf", "int8_sym", mode="prequantized")
    assert_blocked_by(verdict, "nncf.mode.prequantized")


# ---------------------------------------------------------------- bitsandbytes platforms


def test_bnb_0_46_has_only_partial_cpu_support() -> None:
    env = with_(CPU_ONLY, packages={"bitsandbytes": "0.46.1"})
    verdict = check(env, "bitsandbytes", "nf4")
    assert "bitsandbytes.platform.cpu-partial" in holding(verdict)
    assert "bitsandbytes.platform.cpu-partial" not in holding(check(CPU_ONLY, "bitsandbytes", "nf4"))


def test_bnb_0_49_rocm_is_a_preview() -> None:
    env = with_(RX7900_ROCM, packages={"bitsandbytes": "0.49.0"})
    verdict = check(env, "bitsandbytes", "nf4")
    assert verdict.status == "warn"
    assert "bitsandbytes.platform.rocm-preview" in holding(verdict)


def test_bnb_0_49_rocm_has_no_kernels_for_rdna2() -> None:
    env = with_(RX7900_ROCM, packages={"bitsandbytes": "0.49.0"})
    env["gpus"] = [{"vendor": "amd", "name": "AMD Radeon RX 6800", "gfx": "gfx1030"}]
    assert_blocked_by(check(env, "bitsandbytes", "nf4"), "bitsandbytes.platform.rocm-gfx")


def test_bnb_before_0_50_has_no_mps_backend() -> None:
    env = with_(M2_MPS, packages={"bitsandbytes": "0.49.0"})
    assert_blocked_by(check(env, "bitsandbytes", "nf4"), "bitsandbytes.platform.mps")
    assert "bitsandbytes.platform.mps" not in holding(check(M2_MPS, "bitsandbytes", "nf4"))


def test_bnb_has_no_directml_backend() -> None:
    verdict = check(DIRECTML_WINDOWS, "bitsandbytes", "nf4")
    assert_blocked_by(verdict, "bitsandbytes.platform.directml")
    # engines that dequantize in plain torch (SDNQ too: it runs on every backend)
    assert all(p.engine in ("gguf", "nncf", "quanto", "sdnq") for p in verdict.alternatives)


def test_bnb_is_blocked_under_zluda() -> None:
    assert_blocked_by(check(RX6800_ZLUDA, "bitsandbytes", "nf4"), "bitsandbytes.platform.zluda")


def test_bnb_4bit_needs_pascal_from_0_48() -> None:
    maxwell = with_(H100_LINUX)
    maxwell["gpus"] = [{"vendor": "nvidia", "name": "GeForce GTX 970", "cuda_cc": "5.2"}]
    assert_blocked_by(check(maxwell, "bitsandbytes", "nf4"), "bitsandbytes.cc.4bit-min")
    older = with_(maxwell, packages={"bitsandbytes": "0.47.0"})
    assert "bitsandbytes.cc.4bit-min" not in holding(check(older, "bitsandbytes", "nf4"))


def test_bnb_warns_when_torch_cuda_13_has_no_kernels_for_the_gpu() -> None:
    env = with_(GTX1080_WINDOWS, torch={"version": "2.11.0+cu130", "cuda": "13.0"})
    verdict = check(env, "bitsandbytes", "nf4", dtype="float16")
    assert "bitsandbytes.cuda.arch-dropped" in holding(verdict)
    assert "bitsandbytes.cuda.arch-dropped" not in holding(
        check(GTX1080_WINDOWS, "bitsandbytes", "nf4", dtype="float16")
    )


def test_diffusers_refuses_bnb_pre_mode_without_a_gpu() -> None:
    verdict = check(CPU_ONLY, "bitsandbytes", "nf4", mode="pre")
    assert_blocked_by(verdict, "bitsandbytes.diffusers.no-gpu")
    assert any(p.mode == "post" and p.engine == "bitsandbytes" for p in verdict.alternatives)


def test_bnb_post_mode_runs_on_cpu() -> None:
    assert_passes(check(CPU_ONLY, "bitsandbytes", "nf4", mode="post"))


def test_diffusers_8bit_bnb_quantizer_refuses_mps() -> None:
    verdict = check(M2_MPS, "bitsandbytes", "int8", mode="pre")
    assert_blocked_by(verdict, "bitsandbytes.diffusers.int8-mps")


# ---------------------------------------------------------------- bitsandbytes offload


def test_bnb_4bit_is_blocked_with_group_offload() -> None:
    assert_blocked_by(
        check(H100_LINUX, "bitsandbytes", "fp4", offload="group"), "bitsandbytes.offload.group"
    )


def test_bnb_int8_is_blocked_with_group_offload() -> None:
    assert_blocked_by(
        check(H100_LINUX, "bitsandbytes", "int8", offload="group"),
        "bitsandbytes.int8.offload.group",
    )


def test_bnb_int8_model_offload_saves_no_memory() -> None:
    verdict = check(H100_LINUX, "bitsandbytes", "int8", offload="model")
    assert verdict.status == "warn"
    assert "bitsandbytes.int8.offload.model" in holding(verdict)


# ---------------------------------------------------------------- quanto


def test_quanto_has_no_kernels_on_windows_cuda() -> None:
    verdict = check(RTX2080_WINDOWS, "quanto", "qint8", dtype="float16")
    assert "quanto.platform.generic-path" in holding(verdict)
    assert "quanto.platform.generic-path" not in holding(check(H100_LINUX, "quanto", "qint8"))


def test_quanto_qint4_jit_compiles_its_cuda_extension_on_ampere_linux() -> None:
    assert "quanto.jit.toolchain" in holding(check(RTX3090_LINUX, "quanto", "qint4"))
    assert "quanto.jit.toolchain" not in holding(check(CPU_ONLY, "quanto", "qint4"))


# ---------------------------------------------------------------- torchao


def test_torchao_kernels_do_not_match_an_older_torch() -> None:
    # torchao 0.17: only the compiled kernels need torch 2.11 (0.18 needs it for everything)
    env = with_(
        H100_LINUX, torch={"version": "2.10.0+cu128", "cuda": "12.8"}, packages={"torchao": "0.17.0"}
    )
    verdict = check(env, "torchao", "int8wo")
    assert verdict.status == "warn"
    assert "torchao.torch.kernels" in holding(verdict)
    assert "torchao.torch.kernels" not in holding(check(H100_LINUX, "torchao", "int8wo"))


def test_torchao_warns_when_torch_is_older_than_any_it_supports() -> None:
    env = with_(
        H100_LINUX, torch={"version": "2.7.0+cu126", "cuda": "12.6"}, packages={"torchao": "0.17.0"}
    )
    assert "torchao.torch.too-old" in holding(check(env, "torchao", "int8wo"))


def test_torchao_int4wo_needs_mslk() -> None:
    verdict = check(H100_LINUX, "torchao", "int4wo")
    assert_blocked_by(verdict, "torchao.int4wo.mslk")
    with_mslk = with_(H100_LINUX, packages={"mslk": "1.0.0"})
    assert_passes(check(with_mslk, "torchao", "int4wo"))


def test_torchao_int4wo_has_no_cpu_kernel() -> None:
    env = with_(CPU_ONLY, packages={"mslk": "1.0.0"})
    assert_blocked_by(check(env, "torchao", "int4wo"), "torchao.int4wo.cpu")


def test_torchao_float8dq_needs_fp8_tensor_cores() -> None:
    assert_blocked_by(check(RTX3090_LINUX, "torchao", "float8dq"), "torchao.float8dq.hardware")
    assert_blocked_by(check(CPU_ONLY, "torchao", "float8dq"), "torchao.float8dq.hardware")
    assert "torchao.float8dq.hardware" not in holding(check(RTX4090_LINUX, "torchao", "float8dq"))


def test_torchao_float8wo_is_storage_only_before_ada() -> None:
    verdict = check(RTX3090_LINUX, "torchao", "float8wo")
    assert "torchao.float8wo.storage" in holding(verdict)
    assert_passes(verdict)


def test_torchao_int8dq_is_slow_without_compile_on_cuda() -> None:
    verdict = check(H100_LINUX, "torchao", "int8dq")
    assert verdict.status == "warn"
    assert "torchao.int8dq.slow" in holding(verdict)


def test_torchao_group_offload_needs_diffusers_0_38() -> None:
    old = with_(H100_LINUX, packages={"diffusers": "0.36.0"})
    verdict = check(old, "torchao", "int8wo", offload="group")
    assert_blocked_by(verdict, "torchao.offload.group.diffusers-min")
    assert_passes(check(H100_LINUX, "torchao", "int8wo", offload="group"))


def test_torchao_sequential_offload_needs_accelerate_1_3() -> None:
    old = with_(H100_LINUX, packages={"accelerate": "1.2.1"})
    verdict = check(old, "torchao", "int8wo", offload="sequential")
    assert_blocked_by(verdict, "torchao.offload.sequential.accelerate-min")


def test_torchao_has_no_directml_backend() -> None:
    verdict = check(DIRECTML_WINDOWS, "torchao", "int8wo")
    assert_blocked_by(verdict, "torchao.platform.directml")


def test_torchao_builds_no_cuda_extensions_on_windows() -> None:
    assert "torchao.windows.python-only" in holding(check(RTX2080_WINDOWS, "torchao", "int8wo"))


# ---------------------------------------------------------------- gguf


def test_gguf_loading_needs_diffusers_0_32() -> None:
    old = with_(H100_LINUX, packages={"diffusers": "0.31.0"})
    assert_blocked_by(check(old, "gguf", "Q8_0"), "gguf.diffusers-min")


def test_gguf_i_quants_need_diffusers_0_36() -> None:
    old = with_(H100_LINUX, packages={"diffusers": "0.35.2"})
    assert_blocked_by(check(old, "gguf", "IQ4_XS"), "gguf.diffusers.iq-types")
    assert "gguf.diffusers.iq-types" not in holding(check(H100_LINUX, "gguf", "IQ4_XS"))


def test_gguf_is_blocked_with_balanced_offload() -> None:
    verdict = check(H100_LINUX, "gguf", "Q4_K", offload="balanced")
    assert_blocked_by(verdict, "gguf.offload.balanced")
    assert verdict.alternatives[0].offload in ("model", "group")


def test_gguf_warns_on_macos_with_torch_2_6() -> None:
    env = with_(M2_MPS, torch={"version": "2.6.0", "cuda": None})
    assert "gguf.macos.torch-2.6" in holding(check(env, "gguf", "Q8_0"))


# ---------------------------------------------------------------- nncf


def test_nncf_torch_backend_has_no_nf4() -> None:
    assert_blocked_by(check(CPU_ONLY, "nncf", "nf4"), "nncf.torch.modes")


def test_nncf_needs_an_example_input_for_tracing() -> None:
    assert "nncf.torch.tracing" in holding(check(CPU_ONLY, "nncf", "int8_asym"))


def test_nncf_int4_falls_back_on_narrow_layers() -> None:
    assert "nncf.int4.group-size" in holding(check(CPU_ONLY, "nncf", "int4_sym"))


def test_nncf_is_blocked_with_sequential_offload() -> None:
    verdict = check(H100_LINUX, "nncf", "int8_asym", offload="sequential")
    assert_blocked_by(verdict, "nncf.offload.sequential")


def test_nncf_balanced_offload_works_while_modules_fit() -> None:
    verdict = check(H100_LINUX, "nncf", "int8_asym", offload="balanced")
    assert_passes(verdict)
    assert "nncf.offload.balanced" in holding(verdict)


# ---------------------------------------------------------------- platforms, dtype, triton


def test_a_triton_that_cannot_compile_a_kernel_warns() -> None:
    env = with_(H100_LINUX, triton={"version": "3.6.0", "works": False})
    assert "triton.broken" in holding(check(env, "torchao", "int8wo"))


def test_directml_is_end_of_life() -> None:
    assert "platform.directml.eol" in holding(check(DIRECTML_WINDOWS, "gguf", "Q8_0"))


def test_ipex_is_end_of_life() -> None:
    env = with_(ARC_XPU, packages={"intel-extension-for-pytorch": "2.8.10"})
    assert "platform.ipex.eol" in holding(check(env, "gguf", "Q8_0"))
    assert "platform.ipex.eol" not in holding(check(ARC_XPU, "gguf", "Q8_0"))


def test_bfloat16_is_slow_before_ampere() -> None:
    verdict = check(RTX2080_WINDOWS, "gguf", "Q8_0")
    assert "dtype.bf16.pre-ampere" in holding(verdict)
    assert "dtype.bf16.pre-ampere" not in holding(
        check(RTX2080_WINDOWS, "gguf", "Q8_0", dtype="float16")
    )


def test_half_precision_is_slow_on_cpu() -> None:
    assert "dtype.cpu.half" in holding(check(CPU_ONLY, "torchao", "int8wo"))
    assert "dtype.cpu.half" not in holding(check(CPU_ONLY, "torchao", "int8wo", dtype="float32"))


# ---------------------------------------------------------------- unknown facts


def test_a_rule_on_an_unknown_fact_makes_the_verdict_unknown_not_ok() -> None:
    env = {"os": "linux", "backend": "cuda", "torch": {"version": "2.11.0"}, "packages": {}}
    verdict = evaluate(_plan("bitsandbytes", "nf4"), env)
    assert verdict.status == "unknown"
    unknown = [f for f in verdict.findings if f.state == "unknown"]
    assert any("packages.bitsandbytes" in f.missing for f in unknown)


def _plan(engine: str, scheme: str) -> object:
    from quantdoctor import Plan

    return Plan(engine=engine, scheme=scheme)


def test_diffusers_refuses_prequantized_bnb_files_without_a_gpu() -> None:
    verdict = check(CPU_ONLY, "bitsandbytes", "nf4", mode="prequantized")
    assert_blocked_by(verdict, "bitsandbytes.diffusers.no-gpu")


@pytest.mark.parametrize("offload", ["model", "sequential"])
def test_cpu_offload_is_blocked_on_a_machine_without_a_gpu(offload: str) -> None:
    verdict = check(CPU_ONLY, "torchao", "int8wo", offload=offload)
    assert_blocked_by(verdict, "offload.needs-accelerator")
    assert verdict.alternatives[0].offload == "none"


def test_group_offload_on_a_machine_without_a_gpu_runs_but_saves_nothing() -> None:
    verdict = check(CPU_ONLY, "torchao", "int8wo", offload="group")
    assert verdict.status == "warn"
    assert "offload.nothing-to-offload" in holding(verdict)


def test_alternatives_from_another_engine_are_ranked_by_the_cost_model() -> None:
    """Among 8-bit plans with balanced offload, SDNQ float8_e4m3fn (0.91x bf16 on an H200,
    benchmarks/results/sdnq-h200.md) comes before torchao int8wo (0.62x on an H100) and
    bitsandbytes int8 (0.32x): the measured speeds of costs.yaml rank them."""
    verdict = check(H100_LINUX, "quanto", "qint8", offload="balanced")
    other = [p for p in verdict.alternatives if p.engine != "quanto"]
    assert other and (other[0].engine, other[0].scheme) == ("sdnq", "float8_e4m3fn")
