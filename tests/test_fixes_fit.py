"""A fix must fit the machine it is shown on: its backend, OS and versions. These are the
verdicts a new user found wrong by quantdoctor's own reference, and the property that
catches the class: no fix names a CUDA-only package or index on a machine without CUDA."""

from __future__ import annotations

import re
from typing import Any

from helpers import assert_blocked_by, assert_passes, check, holding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantdoctor.rules.evaluate import evaluate_grid
from quantdoctor.testing import environments

#: What only a CUDA (NVIDIA) machine can install or use.
CUDA_ONLY = re.compile(
    r"download\.pytorch\.org/whl/cu\d|triton-windows|CUDA toolkit|DIFFUSERS_GGUF_CUDA_KERNELS"
)
#: Packages with CUDA and ROCm builds only.
CUDA_OR_ROCM = re.compile(r"\bmslk\b|fbgemm-gpu")


def fixes_on(env: Any) -> list[tuple[str, str]]:
    """The fixes shown as holding here (an unknown finding's fix is not shown as one)."""
    return [
        (f.rule, f.fix)
        for v in evaluate_grid(env)
        for f in v.findings
        if f.fix and f.state == "holds"
    ]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["rocm", "xpu", "mps", "cpu", "directml", "openvino"]).flatmap(
        lambda b: environments(backend=b)
    )
)
def test_no_fix_names_a_cuda_only_package_or_index_on_a_machine_without_cuda(env: Any) -> None:
    backend = env.backend if hasattr(env, "backend") else env["backend"]
    for rule, fix in fixes_on(env):
        assert not CUDA_ONLY.search(fix), (backend, rule, fix)
        if backend != "rocm":
            assert not CUDA_OR_ROCM.search(fix), (backend, rule, fix)


def cuda(cc: str, **packages: str) -> dict[str, Any]:
    return {
        "os": "linux",
        "backend": "cuda",
        "torch": {"version": "2.11.0", "cuda": "12.8"},
        "gpus": [{"vendor": "nvidia", "name": "a GPU", "cuda_cc": cc, "memory_gb": 12.0}],
        "packages": {"torchao": "0.18.0", "mslk": "1.0.0", "diffusers": "0.42.1", **packages},
    }


def test_torchao_int4wo_is_blocked_below_compute_capability_8() -> None:
    for cc in ("6.1", "7.5"):
        assert_blocked_by(check(cuda(cc), "torchao", "int4wo"), "torchao.int4wo.cc")
    assert_passes(check(cuda("8.6", accelerate="1.15.0"), "torchao", "int4wo"))


def test_bitsandbytes_0_50_is_blocked_with_torch_older_than_2_4() -> None:
    env = cuda("8.9", bitsandbytes="0.50.2")
    env["torch"] = {"version": "2.3.1", "cuda": "12.1"}
    assert_blocked_by(check(env, "bitsandbytes", "nf4"), "bitsandbytes.torch.requires")
    env["torch"] = {"version": "2.4.1", "cuda": "12.1"}
    assert "bitsandbytes.torch.requires" not in holding(check(env, "bitsandbytes", "nf4"))


def test_quanto_float8_is_blocked_on_mps() -> None:
    mac = {
        "os": "darwin",
        "backend": "mps",
        "torch": {"version": "2.9.0", "cuda": None, "hip": None, "xpu": False},
        "gpus": [{"vendor": "apple", "name": "Apple M3 Max", "memory_gb": 48.0}],
        "packages": {"optimum-quanto": "0.2.7", "diffusers": "0.42.1"},
    }
    for scheme in ("qfloat8_e4m3fn", "qfloat8_e5m2"):
        assert_blocked_by(check(mac, "quanto", scheme), "quanto.float8.mps")
    assert "quanto.float8.mps" not in holding(check(mac, "quanto", "qint8"))


def test_the_mslk_fix_is_only_for_cuda_and_xpu_is_told_its_int4_format() -> None:
    env = cuda("9.0")
    del env["packages"]["mslk"]
    env["packages"]["mslk"] = None
    assert_blocked_by(check(env, "torchao", "int4wo"), "torchao.int4wo.mslk")
    xpu = {
        **env,
        "backend": "xpu",
        "torch": {"version": "2.11.0", "cuda": None, "hip": None, "xpu": True},
        "gpus": [{"vendor": "intel", "name": "Intel Arc B580", "memory_gb": 12.0}],
    }
    verdict = check(xpu, "torchao", "int4wo")
    assert "torchao.int4wo.mslk" not in holding(verdict)
    assert "torchao.int4wo.xpu-packing" in holding(verdict)
    assert any("plain_int32" in f.fix for f in verdict.findings)


def test_rocm_is_told_its_own_mslk_and_triton_fixes() -> None:
    rocm = {
        "os": "linux",
        "backend": "rocm",
        "torch": {"version": "2.11.0", "cuda": None, "hip": "7.1", "xpu": False},
        "gpus": [{"vendor": "amd", "name": "AMD Instinct MI300X", "gfx": "gfx942"}],
        "triton": None,
        "packages": {"torchao": "0.18.0", "mslk": None, "diffusers": "0.42.1"},
    }
    verdict = check(rocm, "torchao", "int4wo")
    assert_blocked_by(verdict, "torchao.int4wo.mslk-rocm")
    assert "triton.missing.rocm-xpu" in holding(verdict)
    assert "triton.missing" not in holding(verdict)
    assert all("whl/cu" not in f.fix for f in verdict.findings)


def test_an_offload_fix_names_the_apps_own_switch() -> None:
    from quantdoctor.doctor.report import app_from_path, fix_for_app

    fix = "use model offload (enable_model_cpu_offload)"
    assert app_from_path("/home/me/automatic/venv/bin/python") == "sdnext"
    assert app_from_path(r"C:\ComfyUI_windows_portable\python_embeded\python.exe") == "comfyui"
    assert app_from_path("/usr/bin/python3") is None
    assert "Model offload mode: model" in fix_for_app(fix, "sdnext")
    assert "--lowvram" in fix_for_app(fix, "comfyui")
    both = fix_for_app("use balanced offload", None)
    assert 'device_map="balanced"' in both and "Model offload mode: balanced" in both
    assert fix_for_app("pip install -U bitsandbytes", "sdnext") == "pip install -U bitsandbytes"
    # diffusers' method is not said twice
    assert fix_for_app(fix, None).count("enable_model_cpu_offload") == 1


def test_a_fix_does_not_send_the_user_to_what_another_rule_blocks() -> None:
    from envs import GTX1080_WINDOWS, H100_LINUX, with_

    # triton missing on Windows with torch 2.13: the series paired with 2.13 is 3.7.x,
    # which triton.windows.pairing accepts (it flags triton < 3.7 with torch >= 2.13)
    windows = with_(GTX1080_WINDOWS, torch={"version": "2.13.0+cu130", "cuda": "13.0"}, triton=None)
    [fix] = [f.fix for f in check(windows, "torchao", "int8wo").findings if f.rule == "triton.missing"]
    assert "3.7.x for torch 2.13" in fix and "<3.7" not in fix
    paired = with_(windows, triton={"version": "3.7.0", "works": None})
    assert "triton.windows.pairing" not in holding(check(paired, "torchao", "int8wo"))
    # modelopt NF4: after load there is no preset, and while loading diffusers 0.42.1
    # cannot build the config with nvidia-modelopt 0.47: the fix offers INT4, not NF4 pre
    h100 = with_(H100_LINUX, packages={**H100_LINUX["packages"], "nvidia-modelopt": "0.47.0"})
    post = check(h100, "modelopt", "NF4", mode="post")
    pre = check(h100, "modelopt", "NF4", mode="pre")
    assert_blocked_by(post, "modelopt.nf4.post")
    assert_blocked_by(pre, "modelopt.diffusers.config")
    [fix] = [f.fix for f in post.findings if f.rule == "modelopt.nf4.post"]
    assert fix.startswith("use INT4 after load") and "or NF4 in mode pre" not in fix
    assert_passes(check(h100, "modelopt", "INT4", mode="post"))
