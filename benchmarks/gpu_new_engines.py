"""The new engines on a CUDA GPU: what their gates and adapters do on a real device.

One run writes OUT/gpu-new-engines.md (OUT from argv[1], default benchmarks/results):
- nunchaku_lite: diffusers' own validate_environment on this GPU, for each precision;
- bfl fp8r / nvfp4, layerwise casting, modelopt FP8/INT8/INT4/NVFP4: quantdoctor.quantize on
  the GPU with a tiny MLP, relative error against bf16 and which path ran;
- diffusers' NVIDIAModelOptConfig with the installed nvidia-modelopt.

    python benchmarks/gpu_new_engines.py [OUT]
"""

from __future__ import annotations

import importlib.metadata as md
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _v(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "absent"


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"


def main(argv: list[str]) -> int:
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(ROOT))
    import torch

    out_dir = Path(argv[1]) if len(argv) > 1 else ROOT / "benchmarks" / "results"
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    cc = torch.cuda.get_device_capability() if cuda else None
    name = torch.cuda.get_device_name() if cuda else "CPU"
    lines = [
        "# New engines on a CUDA GPU",
        "",
        f"Device: {name} (compute capability {cc}); torch {torch.__version__}; "
        + ", ".join(f"{d} {_v(d)}" for d in ("diffusers", "nvidia-modelopt", "kernels", "accelerate")),
        "Made by benchmarks/gpu_new_engines.py.",
        "",
        "## nunchaku_lite: diffusers' NunchakuLiteQuantizer.validate_environment here",
        "",
        "| checkpoint | result |",
        "|---|---|",
    ]
    from diffusers import NunchakuLiteQuantizationConfig
    from diffusers.quantizers.nunchaku.nunchaku_quantizer import NunchakuLiteQuantizer

    sections = {
        "svdq_w4a4 int4": {"svdq_w4a4": {"precision": "int4", "group_size": 64, "rank": 32, "targets": ["a"]}},
        "svdq_w4a4 nvfp4": {"svdq_w4a4": {"precision": "nvfp4", "group_size": 16, "rank": 32, "targets": ["a"]}},
        "awq_w4a16 int4": {"awq_w4a16": {"precision": "int4", "group_size": 64, "targets": ["a"]}},
    }
    for label, kw in sections.items():
        try:
            NunchakuLiteQuantizer(NunchakuLiteQuantizationConfig(**kw)).validate_environment()
            result = "accepted"
        except Exception as exc:
            result = f"refused `{_err(exc)}`"
        lines.append(f"| {label} | {result} |")

    from quantdoctor import Environment, Plan, quantize
    from quantdoctor.doctor.probe import probe

    probed = probe()
    # packages carried as wheels sit on PYTHONPATH: read their versions from the metadata
    data = probed.model_dump(mode="json")
    for dist in ("diffusers", "accelerate", "nvidia-modelopt", "kernels", "safetensors"):
        data.setdefault("packages", {})[dist] = None if _v(dist) == "absent" else _v(dist)
    env = Environment.model_validate(data)
    lines += [
        "",
        f"quantdoctor's probe here: backend {env.backend}, "
        f"gpu {env.gpus[0].name if env.gpus else None} cc {env.gpus[0].cuda_cc if env.gpus else None}",
        "",
        "## quantdoctor.quantize on this device (MLP 1024-2048-1024, bf16 reference)",
        "",
        "| engine | scheme | status | rel. error | weight dtype | path |",
        "|---|---|---|---|---|---|",
    ]

    class MLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l0 = torch.nn.Linear(1024, 2048)
            self.l1 = torch.nn.Linear(2048, 1024)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.l1(torch.nn.functional.gelu(self.l0(x)))

    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("layerwise_casting", "float8_e4m3fn", {}),
        ("layerwise_casting", "float8_e5m2", {}),
        ("bfl", "fp8r", {"mode": "post"}),
        ("bfl", "nvfp4", {"mode": "post"}),
        ("modelopt", "INT8", {}),
        ("modelopt", "FP8", {}),
        ("modelopt", "INT4", {}),
        ("modelopt", "NVFP4", {}),
    ]
    for engine, scheme, facets in cases:
        torch.manual_seed(0)
        model = MLP().to(dev, torch.bfloat16).eval()
        x = torch.randn(64, 1024, device=dev, dtype=torch.bfloat16)
        with torch.no_grad():
            ref = model(x).float()
        try:
            plan = Plan(engine=engine, scheme=scheme, dtype="bfloat16", **facets)
            q = quantize(model, plan, env=env, example_input=x)
            with torch.no_grad():
                y = q(x).float()
            err = float((y - ref).norm() / ref.norm())
            layer = q.l0
            path = type(layer).__name__
            if engine == "bfl" and scheme == "fp8r" and cc is not None and cc >= (8, 9):
                path += " (torch._scaled_mm)"
            lines.append(
                f"| {engine} | {scheme} | ran | {err:.4f} | {layer.weight.dtype} | {path} |"
            )
        except Exception as exc:
            lines.append(f"| {engine} | {scheme} | FAIL | | | `{_err(exc)}` |")
            traceback.print_exc()

    lines += ["", "## diffusers' NVIDIAModelOptConfig here", ""]
    try:
        from diffusers import NVIDIAModelOptConfig

        NVIDIAModelOptConfig(quant_type="FP8")
        lines.append("NVIDIAModelOptConfig(quant_type='FP8'): ok")
    except Exception as exc:
        lines.append(f"NVIDIAModelOptConfig(quant_type='FP8'): `{_err(exc)}`")
    text = "\n".join(lines) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu-new-engines.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
