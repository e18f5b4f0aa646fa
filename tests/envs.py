"""Environments written as literals: the machines the specifications talk about."""

from __future__ import annotations

import copy
from typing import Any

CURRENT_PACKAGES: dict[str, str | None] = {
    "bitsandbytes": "0.50.2",
    "optimum-quanto": "0.2.7",
    "torchao": "0.18.0",
    "gguf": "0.19.0",
    "nncf": "3.4.0",
    "sdnq": "0.2.8",
    "diffusers": "0.42.1",
    "accelerate": "1.15.0",
    "transformers": "5.24.0",
    "mslk": None,
    "fbgemm-gpu-genai": None,
    "intel-extension-for-pytorch": None,
    "torch-directml": None,
    "openvino": None,
    "kernels": None,
    "nvidia-modelopt": None,
    "auto-round": None,
    "nunchaku": None,
    "flashinfer-python": None,
    "gptqmodel": None,
}

H100_LINUX: dict[str, Any] = {
    "os": "linux",
    "wsl": False,
    "arch": "x86_64",
    "python": "3.12.3",
    "backend": "cuda",
    "torch": {"version": "2.11.0+cu130", "cuda": "13.0", "hip": None, "xpu": False},
    "gpus": [
        {
            "vendor": "nvidia",
            "name": "NVIDIA H100 80GB HBM3",
            "cuda_cc": "9.0",
            "gfx": None,
            "memory_gb": 79.6,
        }
    ],
    "triton": {"version": "3.6.0", "works": True},
    "packages": dict(CURRENT_PACKAGES),
}

RTX4090_LINUX: dict[str, Any] = {
    **copy.deepcopy(H100_LINUX),
    "gpus": [
        {
            "vendor": "nvidia",
            "name": "NVIDIA GeForce RTX 4090",
            "cuda_cc": "8.9",
            "gfx": None,
            "memory_gb": 24.0,
        }
    ],
}

RTX3090_LINUX: dict[str, Any] = {
    **copy.deepcopy(H100_LINUX),
    "gpus": [
        {
            "vendor": "nvidia",
            "name": "NVIDIA GeForce RTX 3090",
            "cuda_cc": "8.6",
            "gfx": None,
            "memory_gb": 24.0,
        }
    ],
}

GTX1080_WINDOWS: dict[str, Any] = {
    "os": "windows",
    "wsl": False,
    "arch": "AMD64",
    "python": "3.11.9",
    "backend": "cuda",
    "torch": {"version": "2.6.0+cu126", "cuda": "12.6", "hip": None, "xpu": False},
    "gpus": [
        {"vendor": "nvidia", "name": "NVIDIA GeForce GTX 1080", "cuda_cc": "6.1", "memory_gb": 8.0}
    ],
    "triton": None,
    "packages": dict(CURRENT_PACKAGES),
}

RTX2080_WINDOWS: dict[str, Any] = {
    **copy.deepcopy(GTX1080_WINDOWS),
    "gpus": [
        {"vendor": "nvidia", "name": "NVIDIA GeForce RTX 2080", "cuda_cc": "7.5", "memory_gb": 8.0}
    ],
}

CPU_ONLY: dict[str, Any] = {
    "os": "linux",
    "wsl": False,
    "arch": "x86_64",
    "python": "3.11.7",
    "backend": "cpu",
    "torch": {"version": "2.13.0+cpu", "cuda": None, "hip": None, "xpu": False},
    "gpus": [],
    "triton": None,
    "packages": dict(CURRENT_PACKAGES),
}

RX7900_ROCM: dict[str, Any] = {
    "os": "linux",
    "wsl": False,
    "arch": "x86_64",
    "python": "3.12.3",
    "backend": "rocm",
    "torch": {"version": "2.13.0+rocm7.2", "cuda": None, "hip": "7.2", "xpu": False},
    "gpus": [
        {"vendor": "amd", "name": "AMD Radeon RX 7900 XTX", "gfx": "gfx1100", "memory_gb": 24.0}
    ],
    "triton": {"version": "3.7.0", "works": True},
    "packages": dict(CURRENT_PACKAGES),
}

RX6800_ZLUDA: dict[str, Any] = {
    "os": "windows",
    "wsl": False,
    "arch": "AMD64",
    "python": "3.11.9",
    "backend": "zluda",
    "torch": {"version": "2.7.1+cu118", "cuda": "11.8", "hip": None, "xpu": False},
    "gpus": [{"vendor": "amd", "name": "AMD Radeon RX 6800", "gfx": "gfx1030", "memory_gb": 16.0}],
    "triton": None,
    "packages": dict(CURRENT_PACKAGES),
}

ARC_XPU: dict[str, Any] = {
    "os": "linux",
    "wsl": False,
    "arch": "x86_64",
    "python": "3.12.3",
    "backend": "xpu",
    "torch": {"version": "2.13.0+xpu", "cuda": None, "hip": None, "xpu": True},
    "gpus": [{"vendor": "intel", "name": "Intel Arc A770", "memory_gb": 16.0}],
    "triton": {"version": "3.7.0", "works": True},
    "packages": dict(CURRENT_PACKAGES),
}

M2_MPS: dict[str, Any] = {
    "os": "darwin",
    "wsl": False,
    "arch": "arm64",
    "python": "3.12.3",
    "backend": "mps",
    "torch": {"version": "2.13.0", "cuda": None, "hip": None, "xpu": False},
    "gpus": [{"vendor": "apple", "name": "Apple M2 Max", "memory_gb": 32.0}],
    "triton": None,
    "packages": dict(CURRENT_PACKAGES),
}

DIRECTML_WINDOWS: dict[str, Any] = {
    "os": "windows",
    "wsl": False,
    "arch": "AMD64",
    "python": "3.10.11",
    "backend": "directml",
    "torch": {"version": "2.4.1", "cuda": None, "hip": None, "xpu": False},
    "gpus": [{"vendor": "amd", "name": "AMD Radeon RX 580", "memory_gb": 8.0}],
    "triton": None,
    "packages": {**CURRENT_PACKAGES, "torch-directml": "0.2.4.dev240913"},
}


def with_(env: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``env`` with top-level keys replaced; ``packages`` entries are merged."""
    out = copy.deepcopy(env)
    packages = changes.pop("packages", None)
    out.update(changes)
    if packages is not None:
        out["packages"] = {**out.get("packages", {}), **packages}
    return out
