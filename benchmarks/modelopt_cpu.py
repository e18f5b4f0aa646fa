"""What nvidia-modelopt does on this CPU machine, through diffusers and directly.

Writes benchmarks/results/modelopt-cpu.md: diffusers' NVIDIAModelOptConfig for each
quant_type, and each modelopt preset quantdoctor's adapter applies (weights only, then
``mtq.compress``) on a small MLP, with its relative output error and the stored weight dtype.

    python benchmarks/modelopt_cpu.py
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys
import traceback
import warnings
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "modelopt-cpu.md"


def main() -> int:
    warnings.filterwarnings("ignore")
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import modelopt.torch.quantization as mtq
    from diffusers import NVIDIAModelOptConfig

    from quantdoctor.engines.modelopt import weight_only

    versions = {d: md.version(d) for d in ("nvidia-modelopt", "diffusers", "torch", "transformers")}
    lines = [
        "# nvidia-modelopt on CPU",
        "",
        f"Machine: {platform.machine()} CPU, Python {platform.python_version()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "Made by benchmarks/modelopt_cpu.py.",
        "",
        "## diffusers' NVIDIAModelOptConfig(quant_type=...)",
        "",
        "| quant_type | result |",
        "|---|---|",
    ]
    for quant_type in ("FP8", "INT8", "INT4", "NF4", "NVFP4"):
        try:
            NVIDIAModelOptConfig(quant_type=quant_type)
            result = "ok"
        except Exception as exc:  # what diffusers raises is the finding
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
            result = f"FAIL `{type(exc).__name__}: {exc}` at {where}"
        lines.append(f"| {quant_type} | {result} |")
    lines += [
        "",
        "## modelopt presets, weights only, then mtq.compress (MLP 256-512-256, float32)",
        "",
        "| scheme | preset | rel. error | weight dtype after compress |",
        "|---|---|---|---|",
    ]
    presets = {
        "FP8": "FP8_DEFAULT_CFG",
        "INT8": "INT8_WEIGHT_ONLY_CFG",
        "INT4": "INT4_BLOCKWISE_WEIGHT_ONLY_CFG",
        "NVFP4": "NVFP4_DEFAULT_CFG",
    }
    for scheme, name in presets.items():
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 256)
        )
        x = torch.randn(16, 256, generator=torch.Generator().manual_seed(1))
        ref = model(x)
        try:
            mtq.quantize(model, weight_only(getattr(mtq, name)), None)
            mtq.compress(model)
            with torch.no_grad():
                err = float((model(x) - ref).norm() / ref.norm())
            lines.append(f"| {scheme} | {name} | {err:.4f} | {model[0].weight.dtype} |")
        except Exception as exc:
            lines.append(f"| {scheme} | {name} | FAIL `{type(exc).__name__}: {exc}` | |")
    nf4 = [n for n in dir(mtq) if n.endswith("_CFG") and "NF4" in n and "NVFP4" not in n]
    lines += ["", f"Presets whose name has NF4 (not NVFP4): {nf4 or 'none'}", ""]
    OUT.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
