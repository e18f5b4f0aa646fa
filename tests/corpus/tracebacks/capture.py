"""Re-create the real tracebacks in this folder by running each engine on this machine.

Usage: python tests/corpus/tracebacks/capture.py [NAME ...]

Each scenario is a short Python program run in its own process (``python -c``); its
stderr is saved verbatim as ``real-<name>.txt``, and ``real-<name>.cmd`` keeps the exact
program, so every file here says how it was produced. Scenarios that did not fail the
way they were meant to are reported and not saved.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

TINY_FLUX = """
import tempfile, torch
from diffusers import FluxTransformer2DModel
cfg = dict(patch_size=1, in_channels=32, out_channels=None, num_layers=1, num_single_layers=1,
           attention_head_dim=64, num_attention_heads=4, joint_attention_dim=256,
           pooled_projection_dim=128, guidance_embeds=False, axes_dims_rope=(16, 24, 24))
d = tempfile.mkdtemp()
FluxTransformer2DModel(**cfg).to(torch.bfloat16).save_pretrained(d)
"""

SCENARIOS: dict[str, str] = {
    "torchao-string-config": """
from diffusers import TorchAoConfig
TorchAoConfig("int8wo")
""",
    "torchao-int4-mslk": """
import torch
from torchao.quantization import Int4WeightOnlyConfig, quantize_
m = torch.nn.Sequential(torch.nn.Linear(256, 256)).to(torch.bfloat16)
quantize_(m, Int4WeightOnlyConfig())
""",
    "torchao-float8-dynamic-cpu": """
import torch
from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_
m = torch.nn.Sequential(torch.nn.Linear(256, 256)).to(torch.bfloat16)
quantize_(m, Float8DynamicActivationFloat8WeightConfig())
""",
    "nncf-no-dataset": """
import torch, nncf
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l = torch.nn.Linear(256, 256)
    def forward(self, x):
        return self.l(x)
nncf.compress_weights(M(), mode=nncf.CompressWeightsMode.INT8_ASYM)
""",
    "nncf-hookstorage-sequential": """
import torch, nncf
m = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.GELU(), torch.nn.Linear(256, 256))
x = torch.randn(4, 256)
nncf.compress_weights(m, mode=nncf.CompressWeightsMode.INT8_ASYM, dataset=nncf.Dataset([x]))
""",
    "nncf-torch-nf4": """
import torch, nncf
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l = torch.nn.Linear(256, 256)
    def forward(self, x):
        return self.l(x)
x = torch.randn(4, 256)
nncf.compress_weights(M(), mode=nncf.CompressWeightsMode.NF4, dataset=nncf.Dataset([x]))
""",
    "diffusers-bnb-no-gpu": TINY_FLUX
    + """
from diffusers import BitsAndBytesConfig
FluxTransformer2DModel.from_pretrained(d, quantization_config=BitsAndBytesConfig(load_in_4bit=True))
""",
    "diffusers-quanto-device-map": TINY_FLUX
    + """
from diffusers import QuantoConfig
FluxTransformer2DModel.from_pretrained(
    d, quantization_config=QuantoConfig(weights_dtype="int8"),
    device_map={"transformer_blocks": "cpu", "single_transformer_blocks": "disk", "": "cpu"},
)
""",
    "quanto-accelerate-cpu-offload": """
import torch
from accelerate import cpu_offload
from optimum.quanto import freeze, qint8, quantize
m = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 256))
quantize(m, weights=qint8)
freeze(m)
cpu_offload(m, execution_device=torch.device("cpu"))
m(torch.randn(2, 256))
""",
    "bnb-nf4-accelerate-cpu-offload": """
import torch, bitsandbytes as bnb
from accelerate import cpu_offload
m = torch.nn.Sequential(bnb.nn.Linear4bit(256, 256, quant_type="nf4", compute_dtype=torch.float32))
m = m.to("cpu")
cpu_offload(m, execution_device=torch.device("cpu"))
m(torch.randn(2, 256))
""",
    "gguf-kquant-quantize": """
import numpy as np
from gguf import GGMLQuantizationType, quants
quants.quantize(np.random.rand(256, 256).astype(np.float32), GGMLQuantizationType.Q4_K)
""",
}


def capture(name: str, program: str) -> bool:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=600, env=env
    )
    if proc.returncode == 0 or "Traceback" not in proc.stderr:
        print(f"{name}: did not fail as expected (rc={proc.returncode})", file=sys.stderr)
        print(proc.stderr[-2000:], file=sys.stderr)
        return False
    (HERE / f"real-{name}.txt").write_text(proc.stderr)
    (HERE / f"real-{name}.cmd").write_text(f"{Path(sys.executable).name} -c '{program.strip()}'\n")
    print(f"{name}: saved ({proc.stderr.strip().splitlines()[-1][:120]})")
    return True


def main(argv: list[str]) -> int:
    names = argv or list(SCENARIOS)
    ok = [capture(n, SCENARIOS[n]) for n in names]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
