"""Every statement of the seed document (reference/seed-quantization.md), as a specification.

Each test names the rule that encodes the statement. Where the statement has drifted, the
test shows both: the old rule on the old versions, the current truth on today's.
"""

from __future__ import annotations

from envs import (
    ARC_XPU,
    CPU_ONLY,
    DIRECTML_WINDOWS,
    GTX1080_WINDOWS,
    H100_LINUX,
    RTX2080_WINDOWS,
    RX6800_ZLUDA,
    RX7900_ROCM,
    with_,
)
from helpers import assert_blocked_by, assert_passes, check, holding

from quantdoctor.rules.matrix import load_matrix

# ---------------------------------------------------------------- the schemes


def test_storage_only_schemes_are_those_without_compute_kernels_anywhere() -> None:
    """seed: storage-optimization vs compute-optimization; gguf is purely storage."""
    for scheme in load_matrix(defaults=False).engines["gguf"].schemes:
        if scheme not in ("F32", "F16", "BF16"):
            assert "gguf.storage-only" in holding(check(H100_LINUX, "gguf", scheme)), scheme
    on_cuda = holding(check(H100_LINUX, "bitsandbytes", "nf4"))
    assert not any("storage" in rule for rule in on_cuda)


def test_quanto_offers_three_int_and_two_float_schemes() -> None:
    """seed: Optimium.Quanto 3 int-based and 2 float-based quantizations schemes."""
    schemes = load_matrix(defaults=False).engines["quanto"].schemes.values()
    assert sorted(s.family for s in schemes) == ["float", "float", "int", "int", "int"]


def test_torchao_offers_four_int_schemes_and_float_ones() -> None:
    """seed: TorchAO 4 int-based and 3 float-based schemes. The 4 int ones are here; torchao
    0.18 has two float8 configs left (fpx weight-only is gone), so the float count drifted."""
    schemes = load_matrix(defaults=False).engines["torchao"].schemes.values()
    assert sum(s.family == "int" for s in schemes) == 4
    assert sum(s.family == "float" for s in schemes) == 2


# ---------------------------------------------------------------- modes


def test_post_mode_is_available_for_every_engine_with_a_note_on_load_memory() -> None:
    """seed: post mode 'for all quantization types' (rule mode.post)."""
    for engine, scheme in [
        ("bitsandbytes", "nf4"),
        ("quanto", "qint8"),
        ("torchao", "int8wo"),
        ("nncf", "int8_sym"),
        ("gguf", "Q8_0"),
    ]:
        verdict = check(H100_LINUX, engine, scheme, mode="post")
        assert_passes(verdict)
        assert "mode.post" in holding(verdict)


def test_prequantized_mode_points_at_detect() -> None:
    """seed: pre-quantized models, type auto-determined (rule mode.prequantized)."""
    verdict = check(H100_LINUX, "gguf", "Q4_K")
    assert "mode.prequantized" in holding(verdict)


def test_bnb_pre_mode_works_on_a_gpu_with_current_diffusers() -> None:
    """seed: BnB allows quantization on-the-fly during load."""
    assert_passes(check(H100_LINUX, "bitsandbytes", "nf4", mode="pre"))


def test_bnb_pre_mode_is_blocked_with_diffusers_before_0_31() -> None:
    old = with_(H100_LINUX, packages={"diffusers": "0.30.3"})
    assert_blocked_by(
        check(old, "bitsandbytes", "nf4", mode="pre"), "bitsandbytes.mode.pre.diffusers-min"
    )


def test_quanto_pre_mode_was_unavailable_before_diffusers_0_33_and_works_now() -> None:
    """seed: 'BnB is the only ... on-the-fly': true for quanto before diffusers 0.33."""
    old = with_(H100_LINUX, packages={"diffusers": "0.32.2"})
    assert_blocked_by(check(old, "quanto", "qint8", mode="pre"), "quanto.mode.pre.diffusers-min")
    assert_passes(check(H100_LINUX, "quanto", "qint8", mode="pre"))


def test_torchao_pre_mode_needs_diffusers_0_32() -> None:
    """seed: TorchAO is available for quantization on-the-fly during model load."""
    assert_passes(check(H100_LINUX, "torchao", "int8wo", mode="pre"))
    old = with_(H100_LINUX, packages={"diffusers": "0.31.0"})
    assert_blocked_by(check(old, "torchao", "int8wo", mode="pre"), "torchao.mode.pre.diffusers-min")


def test_pre_mode_is_blocked_without_diffusers() -> None:
    bare = with_(H100_LINUX, packages={"diffusers": None})
    assert_blocked_by(check(bare, "torchao", "int8wo", mode="pre"), "mode.pre.needs-diffusers")


def test_gguf_is_prequantized_only_through_diffusers() -> None:
    """seed: GGUF with pre-quantized weights."""
    assert_blocked_by(check(H100_LINUX, "gguf", "Q4_K", mode="pre"), "gguf.mode.pre")


# ---------------------------------------------------------------- bitsandbytes


def test_bnb_before_0_46_only_supports_nvidia() -> None:
    """seed: default bitsandbytes package only supports nVidia GPUs."""
    old = with_(RX7900_ROCM, packages={"bitsandbytes": "0.45.5"})
    assert_blocked_by(check(old, "bitsandbytes", "nf4"), "bitsandbytes.platform.nvidia-only")
    old_cpu = with_(CPU_ONLY, packages={"bitsandbytes": "0.45.5"})
    assert_blocked_by(check(old_cpu, "bitsandbytes", "int8"), "bitsandbytes.platform.nvidia-only")


def test_bnb_0_50_runs_on_rocm_and_cpu() -> None:
    """The seed's 'only nVidia' has drifted: ROCm official in 0.50, CPU from 0.47."""
    assert_passes(check(RX7900_ROCM, "bitsandbytes", "nf4"))
    assert_passes(check(CPU_ONLY, "bitsandbytes", "nf4"))


def test_bnb_int8_warns_on_gpus_older_than_turing() -> None:
    """seed: some quantization types require newer GPU ... Turing or newer."""
    verdict = check(GTX1080_WINDOWS, "bitsandbytes", "int8", dtype="float16")
    assert verdict.status == "warn"
    assert "bitsandbytes.cc.int8-turing" in holding(verdict)
    assert "bitsandbytes.cc.int8-turing" not in holding(
        check(RTX2080_WINDOWS, "bitsandbytes", "int8", dtype="float16")
    )


def test_bnb_before_0_45_warned_about_triton_on_windows() -> None:
    """seed: bitsandbytes relies on triton ... not available on windows."""
    old = with_(RTX2080_WINDOWS, packages={"bitsandbytes": "0.44.1"})
    verdict = check(old, "bitsandbytes", "nf4", dtype="float16")
    assert "bitsandbytes.windows.triton" in holding(verdict)


def test_bnb_cuda_path_needs_no_triton_on_windows_today() -> None:
    verdict = check(RTX2080_WINDOWS, "bitsandbytes", "nf4", dtype="float16")
    assert "bitsandbytes.windows.triton" not in holding(verdict)
    assert "bitsandbytes.cuda.no-triton" in holding(verdict)
    assert_passes(verdict)


def test_bnb_rocm_links_to_the_rocm_install_and_needs_0_49() -> None:
    """seed: for AMD/ROCm: link to the ROCm install docs."""
    old = with_(RX7900_ROCM, packages={"bitsandbytes": "0.48.2"})
    assert_blocked_by(check(old, "bitsandbytes", "nf4"), "bitsandbytes.platform.rocm")


def test_bnb_intel_needs_0_48_and_torch_2_6() -> None:
    """seed: for Intel/IPEX: link to the multi-backend docs."""
    old = with_(ARC_XPU, packages={"bitsandbytes": "0.47.0"})
    assert_blocked_by(check(old, "bitsandbytes", "nf4"), "bitsandbytes.platform.xpu")
    assert_passes(check(ARC_XPU, "bitsandbytes", "nf4"))


def test_bnb_nf4_is_blocked_with_sequential_offload() -> None:
    """seed: BitsAndBytes nf4 quantization is not compatible with sequential offload."""
    verdict = check(H100_LINUX, "bitsandbytes", "nf4", offload="sequential")
    assert_blocked_by(verdict, "bitsandbytes.offload.sequential")


def test_bnb_int8_works_with_sequential_offload() -> None:
    assert_passes(check(H100_LINUX, "bitsandbytes", "int8", offload="sequential"))


def test_bnb_works_with_balanced_offload() -> None:
    """seed: BnB ... allows for usage of balanced offload."""
    verdict = check(H100_LINUX, "bitsandbytes", "nf4", offload="balanced")
    assert_passes(verdict)
    assert "bitsandbytes.offload.balanced" in holding(verdict)


def test_bnb_4bit_balanced_offload_warns_that_a_block_on_the_cpu_fails() -> None:
    """benchmarks/results/bnb_balanced_split.md: with blocks on the CPU nf4 and fp4 failed
    at the forward, and int8 quantized after load; int8 loaded quantized ran."""
    for scheme in ("nf4", "fp4"):
        verdict = check(H100_LINUX, "bitsandbytes", scheme, offload="balanced")
        assert verdict.status == "warn"
        assert "bitsandbytes.4bit.offload.balanced-split" in holding(verdict)
    for mode in ("pre", "post"):
        int8 = check(H100_LINUX, "bitsandbytes", "int8", offload="balanced", mode=mode)
        assert "bitsandbytes.4bit.offload.balanced-split" not in holding(int8)
        # quantized after load, int8 failed with blocks on the CPU; loaded quantized it ran
        split = "bitsandbytes.int8.post.offload.balanced-split" in holding(int8)
        assert split == (mode == "post")
    none = check(H100_LINUX, "bitsandbytes", "nf4", offload="none")
    assert "bitsandbytes.4bit.offload.balanced-split" not in holding(none)


def test_bnb_balanced_is_not_the_only_engine_with_balanced_offload() -> None:
    """seed: 'BnB is the only ... balanced offload' has drifted: torchao works too."""
    assert_passes(check(H100_LINUX, "torchao", "int8wo", offload="balanced"))


def test_bnb_is_not_the_only_engine_with_balanced_offload_and_on_the_fly_quantization() -> None:
    """seed: 'BnB is the only quantization method that allows for usage of balanced offload
    as well as quantization on-the-fly during load' has drifted: today bitsandbytes, torchao
    and SDNQ do both (measured on an H200), as do the engines added since; quanto, gguf and
    nncf do not."""
    matrix = load_matrix(defaults=False)
    both = {
        engine
        for engine, spec in matrix.engines.items()
        if any(
            check(H100_LINUX, engine, scheme, mode="pre", offload="balanced").passes
            for scheme in spec.schemes
        )
    }
    assert both >= {"bitsandbytes", "torchao", "sdnq"}
    assert not both & {"quanto", "gguf", "nncf"}
    verdict = check(H100_LINUX, "sdnq", "int8", mode="pre", offload="balanced")
    assert "sdnq.balanced-and-on-the-fly" in holding(verdict)


# ---------------------------------------------------------------- quanto


def test_quanto_requires_torch_2_4_up_to_0_2_6() -> None:
    """seed: requires torch==2.4.0 (really >= 2.4 for 0.2.3-0.2.6)."""
    old = with_(
        H100_LINUX,
        torch={"version": "2.3.1", "cuda": "12.1", "hip": None, "xpu": False},
        packages={"optimum-quanto": "0.2.4"},
    )
    assert_blocked_by(check(old, "quanto", "qint8"), "quanto.torch.requires-2.4")


def test_quanto_0_2_7_requires_torch_2_6() -> None:
    env = with_(
        H100_LINUX, torch={"version": "2.5.1", "cuda": "12.4", "hip": None, "xpu": False}
    )
    assert_blocked_by(check(env, "quanto", "qint8"), "quanto.torch.requires-2.6")


def test_quanto_is_blocked_with_balanced_offload() -> None:
    """seed: Quanto qint quantization is not compatible with balanced offload."""
    verdict = check(H100_LINUX, "quanto", "qint8", offload="balanced")
    assert_blocked_by(verdict, "quanto.offload.balanced")
    assert any(p.offload == "model" for p in verdict.alternatives)


def test_quanto_is_blocked_with_sequential_offload() -> None:
    """seed: Quanto qint quantization is not compatible with sequential offload."""
    assert_blocked_by(
        check(H100_LINUX, "quanto", "qint4", offload="sequential"), "quanto.offload.sequential"
    )


def test_quanto_is_blocked_with_group_offload() -> None:
    """seed: 'cannot be used with broad offloading methods' (group: evidence)."""
    assert_blocked_by(check(H100_LINUX, "quanto", "qint8", offload="group"), "quanto.offload.group")


def test_quanto_works_with_model_offload() -> None:
    verdict = check(H100_LINUX, "quanto", "qint8", offload="model")
    assert_passes(verdict)
    assert "quanto.offload.model" in holding(verdict)


def test_quanto_is_blocked_on_ipex_built_on_torch_2_3() -> None:
    """seed: not supported on Intel Arc/IPEX since IPEX is still based on Torch 2.3."""
    ipex = with_(
        ARC_XPU,
        torch={"version": "2.3.1", "cuda": None, "hip": None, "xpu": True},
        packages={"intel-extension-for-pytorch": "2.3.110", "optimum-quanto": "0.2.4"},
    )
    verdict = check(ipex, "quanto", "qint8")
    assert_blocked_by(verdict, "quanto.platform.ipex")


def test_quanto_on_native_torch_xpu_is_not_blocked_today() -> None:
    assert_passes(check(ARC_XPU, "quanto", "qint8"))


def test_quanto_is_blocked_on_zluda_with_torch_older_than_2_4() -> None:
    """seed: not supported with Zluda since Zluda does not support torch 2.4."""
    old = with_(
        RX6800_ZLUDA,
        torch={"version": "2.3.1+cu118", "cuda": "11.8", "hip": None, "xpu": False},
        packages={"optimum-quanto": "0.2.4"},
    )
    assert_blocked_by(check(old, "quanto", "qint8", dtype="float16"), "quanto.platform.zluda")
    assert_passes(check(RX6800_ZLUDA, "quanto", "qint8", dtype="float16"))


# ---------------------------------------------------------------- torchao


def test_torchao_before_0_8_requires_torch_2_5() -> None:
    """seed: TorchAO requires torch==2.5.0."""
    old = with_(H100_LINUX, packages={"torchao": "0.7.0"})
    assert_blocked_by(check(old, "torchao", "int8wo"), "torchao.torch.requires-2.5")


def test_torchao_0_18_works_with_torch_2_11() -> None:
    verdict = check(H100_LINUX, "torchao", "int8wo")
    assert verdict.status == "ok", verdict.summary()
    assert "torchao.torch.requires-2.5" not in holding(verdict)


# ---------------------------------------------------------------- gguf


def test_gguf_is_storage_only_and_warns() -> None:
    """seed: GGUF is storage-only ... usage of GGUF is not recommended."""
    verdict = check(H100_LINUX, "gguf", "Q4_K")
    assert verdict.status == "warn"
    assert "gguf.storage-only" in holding(verdict)


def test_gguf_is_not_platform_dependent() -> None:
    """seed: gguf ... is not platform or GPU dependent."""
    for env in (CPU_ONLY, DIRECTML_WINDOWS, RX6800_ZLUDA, ARC_XPU, RX7900_ROCM):
        verdict = check(env, "gguf", "Q8_0", dtype="float16")
        assert_passes(verdict)
        assert "gguf.platform.any" in holding(verdict)


def test_gguf_has_optional_cuda_kernels_in_diffusers_0_35() -> None:
    """seed: gguf does not provide native GPU kernels (drifted: optional kernels, 0.35+)."""
    assert "gguf.kernels.cuda" in holding(check(H100_LINUX, "gguf", "Q4_K"))
    old = with_(H100_LINUX, packages={"diffusers": "0.34.0"})
    assert "gguf.kernels.cuda" not in holding(check(old, "gguf", "Q4_K"))


def test_gguf_model_offload_was_blocked_before_diffusers_gguf_support() -> None:
    """seed: gguf is not compatible with model offloading."""
    old = with_(H100_LINUX, packages={"diffusers": "0.31.0"})
    assert_blocked_by(check(old, "gguf", "Q8_0", offload="model"), "gguf.offload.model.old-diffusers")


def test_gguf_works_with_model_offload_today() -> None:
    """The seed's model-offload claim does not hold with diffusers 0.42 (evidence)."""
    verdict = check(H100_LINUX, "gguf", "Q8_0", offload="model")
    assert_passes(verdict)
    assert "gguf.offload.model" in holding(verdict)


def test_gguf_is_blocked_with_sequential_offload() -> None:
    assert_blocked_by(
        check(H100_LINUX, "gguf", "Q4_K", offload="sequential"), "gguf.offload.sequential"
    )


def test_gguf_cannot_load_an_all_in_one_checkpoint() -> None:
    """seed: you cannot load all-in-one single-file GGUF model."""
    assert_blocked_by(
        check(H100_LINUX, "gguf", "Q8_0", component="all_in_one"), "gguf.component.all-in-one"
    )


def test_gguf_transformer_and_unet_components_load() -> None:
    """seed: only supported component in gguf binary format is UNET/Transformer."""
    assert_passes(check(H100_LINUX, "gguf", "Q8_0", component="unet"))
    assert_blocked_by(check(H100_LINUX, "gguf", "Q8_0", component="vae"), "gguf.component.vae")


def test_gguf_text_encoders_load_but_save_no_memory_in_diffusers() -> None:
    verdict = check(H100_LINUX, "gguf", "Q8_0", component="text_encoder")
    assert verdict.status == "warn"
    assert "gguf.component.text-encoder" in holding(verdict)


# ---------------------------------------------------------------- nncf


def test_nncf_works_on_any_platform() -> None:
    """seed: Advantage of NNCF is that it does work on any platform."""
    for env in (CPU_ONLY, DIRECTML_WINDOWS, RX6800_ZLUDA, ARC_XPU, RX7900_ROCM, H100_LINUX):
        verdict = check(env, "nncf", "int8_sym", dtype="float16")
        assert_passes(verdict)
        assert "nncf.platform.any" in holding(verdict)


def test_nncf_is_storage_only_outside_openvino() -> None:
    """seed: compute-optimization available only on OpenVINO platform."""
    assert "nncf.storage-only" in holding(check(H100_LINUX, "nncf", "int8_sym"))
    openvino = with_(CPU_ONLY, backend="openvino", packages={"openvino": "2026.2.1"})
    assert "nncf.storage-only" not in holding(check(openvino, "nncf", "int8_sym"))


# ---------------------------------------------------------------- triton, Windows


def test_missing_triton_only_breaks_torch_compile() -> None:
    """seed: Many quantization schemes rely on Triton (drifted: only torch.compile needs it)."""
    # torchao 0.18 needs torch >= 2.11 (torchao.torch.dropped); triton is what is missing here
    torch_211 = {"version": "2.11.0+cu126", "cuda": "12.6", "hip": None, "xpu": False}
    verdict = check(with_(RTX2080_WINDOWS, torch=torch_211), "torchao", "int8wo", dtype="float16")
    assert "triton.missing" in holding(verdict)
    assert_passes(verdict)


def test_seed_triton_windows_3_1_does_not_pair_with_torch_2_6() -> None:
    """seed: install-triton.ps1 installs triton-windows 3.1.0."""
    env = with_(RTX2080_WINDOWS, triton={"version": "3.1.0", "works": True})
    assert "triton.windows.pairing" in holding(check(env, "torchao", "int8wo", dtype="float16"))


def test_windows_users_are_pointed_at_wsl2() -> None:
    """seed: If you're on Windows with a compatible GPU, you may try WSL2."""
    assert "os.windows.wsl" in holding(check(RTX2080_WINDOWS, "quanto", "qint8", dtype="float16"))
