"""Facts a partial environment implies: a GPU's compute capability from its name, the
backend a lone GPU vendor's card runs on when torch's build is not given, and no Triton
on macOS.

An inferred fact is a fact the user did not state, so each one is returned with the
sentence the report shows ("assumed: ..."), and nothing is inferred over a stated value
(``null`` included: known absent stays absent).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

#: NVIDIA product names -> compute capability, from NVIDIA's table of CUDA GPUs
#: (https://developer.nvidia.com/cuda-gpus) and the CUDA C Programming Guide's
#: "Compute Capabilities" appendix. The first pattern that matches wins, so the more
#: specific names come first. Names are matched case-insensitively inside the full
#: product name ("NVIDIA GeForce RTX 3060 Laptop GPU").
NVIDIA_CC: tuple[tuple[str, str], ...] = (
    (r"\bRTX PRO \d+ Blackwell|\bRTX 50\d0\b", "12.0"),
    (r"\bGB?200\b|\bB100\b", "10.0"),
    (r"\bGH200\b|\bH100\b|\bH200\b|\bH800\b|\bH20\b", "9.0"),
    (r"\bRTX 40\d0\b|\bRTX \d000 Ada\b|\bL40S?\b|\bL4\b|\bL20\b", "8.9"),
    (r"\bRTX 30\d0\b|\bRTX A\d000\b|\bA40\b|\bA10G?\b|\bA16\b|\bA2\b", "8.6"),
    (r"\bA100\b|\bA800\b|\bA30\b", "8.0"),
    (r"\bRTX 20\d0\b|\bGTX 16\d0\b|\bTITAN RTX\b|\bQuadro RTX \d000\b|\bT4\b", "7.5"),
    (r"\bV100\b|\bTITAN V\b", "7.0"),
    (r"\bGTX 10\d0\b|\bP40\b|\bP4\b|\bTITAN Xp\b|\bQuadro P\d+\b", "6.1"),
    (r"\bP100\b", "6.0"),
    (r"\bGTX 9\d0\b|\bGTX TITAN X\b|\bM40\b|\bM60\b", "5.2"),
)

#: The backend a GPU vendor's cards run on when torch's build is unknown (one vendor
#: only, on an OS where that is the build PyTorch ships for it).
VENDOR_BACKEND: Mapping[tuple[str, str | None], str] = {
    ("nvidia", "linux"): "cuda",
    ("nvidia", "windows"): "cuda",
    ("nvidia", None): "cuda",
    ("amd", "linux"): "rocm",
    ("apple", "darwin"): "mps",
}


def cc_from_name(name: str) -> str | None:
    """The compute capability NVIDIA lists for the product ``name``, or ``None``."""
    import re  # a GPU without its compute capability only

    for pattern, cc in NVIDIA_CC:
        if re.search(pattern, name, re.IGNORECASE):
            return cc
    return None


def infer(env: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``env`` with the facts it implies filled in, and ``{fact: why}`` for each one."""
    out = dict(env)
    assumed: dict[str, str] = {}
    gpus = env.get("gpus")
    if isinstance(gpus, list) and gpus:
        filled = []
        for i, gpu in enumerate(gpus):
            gpu = dict(gpu)
            name = gpu.get("name") or ""
            if gpu.get("vendor") == "nvidia" and "cuda_cc" not in gpu and name:
                cc = cc_from_name(name)
                if cc:
                    gpu["cuda_cc"] = cc
                    assumed[f"gpus[{i}].cuda_cc"] = f"{cc}, NVIDIA's figure for the {name}"
            filled.append(gpu)
        out["gpus"] = filled
        vendors = {g.get("vendor") for g in gpus}
        if "backend" not in env and "torch" not in env and len(vendors) == 1:
            backend = VENDOR_BACKEND.get((next(iter(vendors)) or "", env.get("os")))
            if backend:
                out["backend"] = backend
                assumed["backend"] = (
                    f'{backend}, as the GPU\'s vendor implies (add "backend" if torch '
                    "is another build)"
                )
    if env.get("os") == "darwin" and "triton" not in env:
        # Triton publishes no macOS build (pypi.org/project/triton: Linux wheels only)
        out["triton"] = None
        assumed["triton"] = "none: Triton has no macOS build"
    return out, assumed
