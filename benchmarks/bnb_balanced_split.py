"""bitsandbytes under balanced offload when the GPU budget really splits the model.

The 2026-11-25 H100 runs (docs/reference/evidence/gpu-diffusers-2026-11-25-h100.md)
measured balanced offload with a budget of 40% of the bf16 bytes, which holds a whole
4-bit model: for nf4 and fp4 nothing was offloaded. This run gives each scheme a budget
of 40% of its *own* quantized bytes, so accelerate's device map puts blocks on the CPU,
then runs SD.Next's balanced mechanism (``accelerate.dispatch_model(force_hooks=True)``)
and one forward, for bf16 (the control) and bitsandbytes nf4, fp4 and int8, each loaded
quantized by diffusers (``BitsAndBytesConfig``, mode pre) and quantized after a bf16 load
by ``quantdoctor.quantize`` (mode post).

The model is the evidence's tiny Flux transformer (``benchmarks/_flux.py``), built in
code with random weights and written with diffusers' own ``save_pretrained``; nothing is
downloaded. Each case runs in its own process (a CUDA error can poison the context).

    python benchmarks/bnb_balanced_split.py --out DIR      (on a CUDA machine)

Writes ``DIR/bnb_balanced_split.jsonl`` (one line per case) and prints a table.
Exits 1 when the control (bf16) fails to split or to run: the run then proves nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _flux import FLUX, inputs  # benchmarks/_flux.py: the evidence's model

NIMG, NTXT = 1024, 256
CASES = (("bf16", "pre"), ("nf4", "pre"), ("fp4", "pre"), ("int8", "pre"))
CASES += (("nf4", "post"), ("fp4", "post"), ("int8", "post"))
FRACTION = 0.4  # of the scheme's own bytes on the GPU


def build(model_dir: str) -> None:
    import torch
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    FluxTransformer2DModel(**FLUX).to(torch.bfloat16).save_pretrained(model_dir)


def case(scheme: str, mode: str, model_dir: str, offload_dir: str) -> dict[str, object]:
    import accelerate
    import torch
    from diffusers import BitsAndBytesConfig, FluxTransformer2DModel

    dev = torch.device("cuda")
    rec: dict[str, object] = {"scheme": scheme, "offload": "balanced (split)", "mode": mode}
    config = {
        "bf16": None,
        "nf4": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        ),
        "fp4": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.bfloat16
        ),
        "int8": BitsAndBytesConfig(load_in_8bit=True),
    }[scheme]
    if mode == "post":
        config = None
    stage = "load"
    try:
        model = FluxTransformer2DModel.from_pretrained(
            model_dir, torch_dtype=torch.bfloat16, quantization_config=config
        )
        if mode == "post":
            import quantdoctor

            stage = "quantize"
            model = quantdoctor.quantize(model, {"engine": "bitsandbytes", "scheme": scheme})
            model = model.to(dev)
        elif config is None:
            model = model.to(dev)
        size = model.get_memory_footprint()
        budget = int(FRACTION * size)
        rec.update(model_bytes=size, gpu_budget=budget)
        stage = "setup"
        no_split = list(getattr(model, "_no_split_modules", None) or [])
        dm = accelerate.infer_auto_device_map(
            model, max_memory={0: budget, "cpu": 100 * 2**30}, no_split_module_classes=no_split
        )
        rec["devices"] = sorted({str(v) for v in dm.values()})
        rec["modules_on_cpu"] = sum(1 for v in dm.values() if str(v) == "cpu")
        model = accelerate.dispatch_model(
            model, main_device=dev, device_map=dm, offload_dir=offload_dir, force_hooks=True
        )
        stage = "forward"
        with torch.no_grad():
            out = model(**inputs(torch, FLUX, NIMG, NTXT, dev), return_dict=False)[0]
        torch.cuda.synchronize()
        rec.update(ok=True, finite=bool(torch.isfinite(out.float()).all()))
        torch.save(out.float().cpu(), os.path.join(offload_dir, f"out_{scheme}_{mode}.pt"))
    except Exception as err:  # the outcome is the measurement
        rec.update(ok=False, stage=stage, error=f"{type(err).__name__}: {str(err)[:400]}")
    return rec


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=".")
    p.add_argument("--work", default="/tmp/bnb_split")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args()
    model_dir = os.path.join(args.work, "flux_tiny")
    if args.case:
        scheme, mode = args.case.split(":")
        print(json.dumps(case(scheme, mode, model_dir, args.work)), flush=True)
        return 0
    os.makedirs(args.work, exist_ok=True)
    build(model_dir)
    import torch

    head = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "t": time.time()}
    for name in ("diffusers", "accelerate", "bitsandbytes", "transformers"):
        head[name] = __import__(name).__version__
    rows = [dict(head, kind="versions")]
    for scheme, mode in CASES:
        done = subprocess.run(
            [sys.executable, __file__, "--case", f"{scheme}:{mode}", "--work", args.work],
            capture_output=True,
            text=True,
            timeout=300,
        )
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        rec = json.loads(lines[-1]) if lines else {
            "scheme": scheme, "mode": mode, "ok": False, "stage": "process",
            "error": f"exit {done.returncode}: {done.stderr[-400:]}",
        }  # fmt: skip
        rows.append(rec)
    ref_path = os.path.join(args.work, "out_bf16_pre.pt")
    for rec in rows[1:]:
        got = os.path.join(args.work, f"out_{rec['scheme']}_{rec['mode']}.pt")
        if rec.get("ok") and os.path.exists(ref_path) and os.path.exists(got):
            ref, out = torch.load(ref_path), torch.load(got)
            rec["rel_l2_vs_bf16"] = float((out - ref).norm() / ref.norm())
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bnb_balanced_split.jsonl"), "w") as f:
        for rec in rows:
            f.write(json.dumps(rec) + "\n")
    print(json.dumps(head))
    print(f"{'scheme':6} {'mode':5} {'ok':5} {'on cpu':>6} {'GPU budget MB':>13}  error / rel L2")
    for rec in rows[1:]:
        tail = rec.get("error") or f"rel L2 {rec.get('rel_l2_vs_bf16', float('nan')):.4f}"
        budget = rec.get("gpu_budget")
        mb = f"{budget / 2**20:.1f}" if isinstance(budget, int) else "?"
        cpu = rec.get("modules_on_cpu", "?")
        print(f"{rec['scheme']:6} {rec['mode']:5} {rec.get('ok')!s:5} {cpu!s:>6} {mb:>13}  {tail}")
    control = rows[1]
    return 0 if control.get("ok") and control.get("modules_on_cpu") else 1


if __name__ == "__main__":
    sys.exit(main())
