"""Engines under balanced offload when the GPU budget really splits the model.

The 2026-11-25 H100 and 2026-11-29 H200 runs (docs/reference/evidence/) measured
balanced offload with a budget of 40% of the bf16 bytes, which holds a whole 4-bit
model: for bitsandbytes nf4/fp4 and SDNQ uint4 nothing was offloaded. This run gives
each scheme a budget of 40% of its *own* quantized bytes, so accelerate's device map
puts blocks on the CPU, then runs SD.Next's balanced mechanism
(``accelerate.dispatch_model(force_hooks=True)``) and one forward, for bf16 (the
control) and each engine's schemes, loaded quantized by diffusers with the config
``Plan.to_diffusers`` builds (mode pre) and quantized after a bf16 load by
``quantdoctor.quantize`` (mode post).

The model is the evidence's tiny Flux transformer (``benchmarks/_flux.py``), built in
code with random weights and written with diffusers' own ``save_pretrained``; nothing is
downloaded. Each case runs in its own process (a CUDA error can poison the context).

    python benchmarks/balanced_split.py --out DIR [--engine E ...]    (on a CUDA machine)

Writes ``DIR/<name>_balanced_split.jsonl`` per engine (``bnb`` for bitsandbytes; one
line per case, the control first) and prints a table. Exits 1 when the control (bf16)
fails to split or to run: the run then proves nothing.
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
#: engine -> (the results' file name, its (scheme, mode) cases)
ENGINES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "bitsandbytes": ("bnb", (
        ("nf4", "pre"), ("fp4", "pre"), ("int8", "pre"),
        ("nf4", "post"), ("fp4", "post"), ("int8", "post"),
    )),
    "sdnq": ("sdnq", (
        ("int8", "pre"), ("uint4", "pre"), ("float8_e4m3fn", "pre"),
        ("int8", "post"), ("uint4", "post"),
    )),
    "torchao": ("torchao", (
        ("int8wo", "pre"), ("float8wo", "pre"), ("int8wo", "post"), ("float8wo", "post"),
    )),
}  # fmt: skip
CONTROL = ("bf16", "bf16", "pre")
FRACTION = 0.4  # of the scheme's own bytes on the GPU


def build(model_dir: str) -> None:
    import torch
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    FluxTransformer2DModel(**FLUX).to(torch.bfloat16).save_pretrained(model_dir)


def _config(engine: str, scheme: str, mode: str) -> object:
    """The quantization config diffusers loads with (``None``: a plain bf16 load), as
    ``Plan.to_diffusers`` builds it (for bitsandbytes the ``BitsAndBytesConfig`` the first
    run built by hand: 8-bit, or 4-bit of the scheme's type computing in bfloat16)."""
    if engine == "bf16" or mode == "post":
        return None
    import quantdoctor

    return quantdoctor.Plan(engine=engine, scheme=scheme, mode="pre").to_diffusers()


def case(
    engine: str, scheme: str, mode: str, model_dir: str, offload_dir: str
) -> dict[str, object]:
    import accelerate
    import torch
    from diffusers import FluxTransformer2DModel

    dev = torch.device("cuda")
    rec: dict[str, object] = {
        "engine": engine, "scheme": scheme, "offload": "balanced (split)", "mode": mode,
    }  # fmt: skip
    stage = "config"
    try:
        config = _config(engine, scheme, mode)
        stage = "load"
        model = FluxTransformer2DModel.from_pretrained(
            model_dir, torch_dtype=torch.bfloat16, quantization_config=config
        )
        if mode == "post":
            import quantdoctor

            stage = "quantize"
            model = quantdoctor.quantize(model, {"engine": engine, "scheme": scheme})
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
        torch.save(out.float().cpu(), os.path.join(offload_dir, f"out_{engine}_{scheme}_{mode}.pt"))
    except Exception as err:  # the outcome is the measurement
        rec.update(ok=False, stage=stage, error=f"{type(err).__name__}: {str(err)[:400]}")
    return rec


def _run_case(engine: str, scheme: str, mode: str, work: str) -> dict[str, object]:
    """One case in a process of its own (a CUDA error can poison the context)."""
    done = subprocess.run(
        [sys.executable, __file__, "--case", f"{engine}:{scheme}:{mode}", "--work", work],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {
        "engine": engine, "scheme": scheme, "mode": mode, "ok": False, "stage": "process",
        "error": f"exit {done.returncode}: {done.stderr[-400:]}",
    }  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=".")
    p.add_argument("--work", default="/tmp/balanced_split")
    p.add_argument("--engine", action="append", choices=sorted(ENGINES), default=[])
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args()
    model_dir = os.path.join(args.work, "flux_tiny")
    if args.case:
        engine, scheme, mode = args.case.split(":")
        print(json.dumps(case(engine, scheme, mode, model_dir, args.work)), flush=True)
        return 0
    os.makedirs(args.work, exist_ok=True)
    build(model_dir)
    import importlib.metadata as md

    import torch

    head = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "t": time.time()}
    for name in ("diffusers", "accelerate", "transformers", "bitsandbytes", "sdnq", "torchao"):
        try:
            head[name] = md.version(name)
        except md.PackageNotFoundError:
            head[name] = None
    control = _run_case(*CONTROL, args.work)
    ref_path = os.path.join(args.work, "out_bf16_bf16_pre.pt")
    ref = torch.load(ref_path) if os.path.exists(ref_path) else None
    os.makedirs(args.out, exist_ok=True)
    print(json.dumps(head))
    print(f"{'engine':12} {'scheme':13} {'mode':5} {'ok':5} {'on cpu':>6} {'budget MB':>9}", end="")
    print("  error / rel L2")
    for engine in args.engine or list(ENGINES):
        name, cases = ENGINES[engine]
        rows = [dict(head, kind="versions"), control]
        for scheme, mode in cases:
            rec = _run_case(engine, scheme, mode, args.work)
            got = os.path.join(args.work, f"out_{engine}_{scheme}_{mode}.pt")
            if rec.get("ok") and ref is not None and os.path.exists(got):
                out = torch.load(got)
                rec["rel_l2_vs_bf16"] = float((out - ref).norm() / ref.norm())
            rows.append(rec)
        with open(os.path.join(args.out, f"{name}_balanced_split.jsonl"), "w") as f:
            for rec in rows:
                f.write(json.dumps(rec) + "\n")
        for rec in rows[1:]:
            tail = rec.get("error") or f"rel L2 {rec.get('rel_l2_vs_bf16', 0.0):.4f}"
            budget = rec.get("gpu_budget")
            mb = f"{budget / 2**20:.1f}" if isinstance(budget, int) else "?"
            cpu = rec.get("modules_on_cpu", "?")
            print(
                f"{rec['engine']:12} {rec['scheme']:13} {rec['mode']:5} {rec.get('ok')!s:5} "
                f"{cpu!s:>6} {mb:>9}  {tail}"
            )
    return 0 if control.get("ok") and control.get("modules_on_cpu") else 1


if __name__ == "__main__":
    sys.exit(main())
