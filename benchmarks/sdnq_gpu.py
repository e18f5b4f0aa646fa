"""SDNQ on a CUDA GPU: costs beside bf16 and torchao in one run, and text-encoder ground truth.

costs   A Flux-like DiT built in code at Flux.1's width (3072, 24 heads of 128; 1 double and
        1 single block, ~0.5 B params), saved once, then loaded per case through
        diffusers' ``from_pretrained``: bf16; SDNQ int8, uint4, float8_e4m3fn with
        ``SDNQConfig(weights_dtype=W)`` and quantized matmul off (the default) and on
        (``use_quantized_matmul=True``); torchao int8wo (``TorchAoConfig``). 4096 image +
        512 text tokens, batch 1. Per case: weight memory resident on the GPU, peak memory
        of a forward above the resident weights, median forward time over ``TIMED`` runs
        after warm-up (sdnq's torch.compile and Triton kernels compile during warm-up), and
        the relative L2 error of the output against bf16's. One process: ratios are against
        bf16 of the same run.
te      A CLIP text encoder built in code (transformers), quantized with sdnq (pre: its
        ``from_pretrained(quantization_config=sdnq.SDNQConfig)``, post:
        ``quantdoctor.quantize``), saved and loaded back (prequantized) in a fresh process
        with and without ``import sdnq`` first, run with offload none / model / sequential
        (accelerate ``cpu_offload`` and ``cpu_offload_with_hook``). Also the Flux transformer
        saved by SDNQ loaded in a fresh process without ``import sdnq`` under sequential
        offload (https://github.com/Disty0/sdnq/issues/11).

usage: python benchmarks/sdnq_gpu.py costs|te [--out DIR]; writes sdnq-<cmd>.jsonl there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BIG = dict(
    patch_size=1,
    in_channels=64,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
N_IMG, N_TXT = 4096, 512
TIMED = 10
OUT = "/tmp/sdnq_out"
WORK = "/tmp/sdnq_work"


def emit(path: str, **rec: object) -> None:
    line = json.dumps(rec, default=str)
    with open(path, "a") as f:
        f.write(line + "\n")
    print(line[:300], flush=True)


def err_info(exc: BaseException) -> dict[str, object]:
    tb = traceback.extract_tb(exc.__traceback__)
    last = tb[-1] if tb else None
    return dict(
        error_type=type(exc).__name__,
        error=(str(exc).strip().splitlines() or [""])[0][:300],
        where=None
        if last is None
        else f"{last.filename.split('site-packages/')[-1]}:{last.lineno}",
    )


# ------------------------------------------------------------------------------ costs


def flux_inputs(torch, dev, cfg, n_img, n_txt):  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(0)
    side = int(n_img**0.5)
    img_ids = torch.zeros(side, side, 3)
    img_ids[..., 1] = torch.arange(side)[:, None]
    img_ids[..., 2] = torch.arange(side)[None, :]
    bf = torch.bfloat16
    return dict(
        hidden_states=torch.randn(1, n_img, cfg["in_channels"], generator=gen).to(dev, bf),
        encoder_hidden_states=torch.randn(1, n_txt, cfg["joint_attention_dim"], generator=gen).to(
            dev, bf
        ),
        pooled_projections=torch.randn(1, cfg["pooled_projection_dim"], generator=gen).to(dev, bf),
        timestep=torch.tensor([0.5]).to(dev, bf),
        img_ids=img_ids.reshape(-1, 3).to(dev),
        txt_ids=torch.zeros(n_txt, 3).to(dev),
        guidance=torch.tensor([3.5]).to(dev, bf),
    )


def costs(out: str) -> None:
    warnings.filterwarnings("ignore")
    import sdnq
    import torch
    from diffusers import FluxTransformer2DModel

    from quantdoctor.rules.models import Plan

    log = os.path.join(out, "sdnq-costs.jsonl")
    dev = torch.device("cuda")
    path = os.path.join(WORK, "flux_3072")
    torch.manual_seed(0)
    model = FluxTransformer2DModel(**BIG).to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(path)
    del model
    from sdnq.common import use_torch_compile
    from sdnq.kernel_wrappers import is_fp8_mm_supported, use_triton_mm

    emit(
        log,
        kind="setup",
        params=params,
        cfg=BIG,
        n_img=N_IMG,
        n_txt=N_TXT,
        gpu=torch.cuda.get_device_name(0),
        cc=".".join(map(str, torch.cuda.get_device_capability(0))),
        torch=torch.__version__,
        sdnq=sdnq.__version__,
        sdnq_torch_compile=use_torch_compile,
        sdnq_triton_mm=use_triton_mm,
        sdnq_fp8_mm=is_fp8_mm_supported,
    )
    inp = flux_inputs(torch, dev, BIG, N_IMG, N_TXT)
    # most wanted first: each case is written as it ends, so a time limit keeps the rest
    cases: list[tuple[str, str, bool]] = [
        ("bf16", "bf16", False),
        ("sdnq", "int8", False),
        ("sdnq", "uint4", False),
        ("torchao", "int8wo", False),
        ("sdnq", "float8_e4m3fn", False),
        ("sdnq", "int8", True),
        ("sdnq", "float8_e4m3fn", True),
        ("sdnq", "uint4", True),
    ]
    wanted = os.environ.get("SDNQ_COST_CASES")  # "bf16,sdnq:int8:1,...": a subset, in order
    if wanted:
        cases = []
        for item in wanted.split(","):
            engine, _, rest = item.partition(":")
            scheme, _, matmul = rest.partition(":")
            cases.append((engine, scheme or engine, matmul == "1"))
    ref = None
    for engine, scheme, matmul in cases:
        rec: dict[str, object] = dict(kind="cost", engine=engine, scheme=scheme, matmul=matmul)
        emit(log, **dict(rec, kind="cost_start"))
        try:
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated()
            t = time.perf_counter()
            if engine == "bf16":
                qc = None
            elif engine == "sdnq":
                qc = Plan(engine="sdnq", scheme=scheme, mode="pre").to_diffusers()
                qc.use_quantized_matmul = matmul
            else:
                qc = Plan(engine="torchao", scheme=scheme, mode="pre").to_diffusers()
            m = FluxTransformer2DModel.from_pretrained(
                path, torch_dtype=torch.bfloat16, quantization_config=qc, device_map="cuda"
            )
            torch.cuda.synchronize()
            rec["load_s"] = round(time.perf_counter() - t, 2)
            rec["resident_gb"] = (torch.cuda.memory_allocated() - base) / 2**30
            t = time.perf_counter()
            with torch.no_grad():
                for _ in range(int(os.environ.get("SDNQ_WARMUP", "3"))):
                    y = m(**inp, return_dict=False)[0]
                torch.cuda.synchronize()
            rec["warmup_s"] = round(time.perf_counter() - t, 2)
            torch.cuda.reset_peak_memory_stats()
            times = []
            with torch.no_grad():
                for _ in range(TIMED):
                    start, end = (
                        torch.cuda.Event(enable_timing=True),
                        torch.cuda.Event(enable_timing=True),
                    )
                    start.record()
                    y = m(**inp, return_dict=False)[0]
                    end.record()
                    torch.cuda.synchronize()
                    times.append(start.elapsed_time(end))
            rec["fwd_ms"] = statistics.median(times)
            rec["peak_gb"] = (torch.cuda.max_memory_allocated() - base) / 2**30
            y = y.float()
            if ref is None:
                ref = y
            rec["rel_err"] = float((y - ref).norm() / ref.norm())
            rec["layers"] = sum(1 for x in m.modules() if type(x).__name__ == "SDNQLinear")
            rec["ok"] = bool(torch.isfinite(y).all())
            del m, y
        except Exception as exc:
            rec.update(ok=False, **err_info(exc))
        emit(log, **rec)
    bf16 = None
    with open(log) as f:
        rows = [json.loads(line) for line in f]
    for r in rows:
        if r.get("engine") == "bf16" and r.get("ok"):
            bf16 = r
    if bf16:
        for r in rows:
            if r.get("kind") == "cost" and r.get("ok"):
                emit(
                    log,
                    kind="ratio",
                    engine=r["engine"],
                    scheme=r["scheme"],
                    matmul=r["matmul"],
                    speed_vs_bf16=bf16["fwd_ms"] / r["fwd_ms"],
                    weights_vs_bf16=r["resident_gb"] / bf16["resident_gb"],
                    peak_vs_bf16=r["peak_gb"] / bf16["peak_gb"],
                    rel_err=r["rel_err"],
                )


# ------------------------------------------------------------------------------ text encoder

LOAD = r"""
import json, os, sys, time, torch, warnings
warnings.filterwarnings("ignore")
path, how, offload, kind = sys.argv[1:5]
if how == "import":
    import sdnq
rec = dict(kind="case", how=how, offload=offload)
stage = "load"
try:
    if kind == "te":
        from transformers import CLIPTextModel
        model = CLIPTextModel.from_pretrained(path, torch_dtype=torch.bfloat16)
    else:
        from diffusers import FluxTransformer2DModel
        model = FluxTransformer2DModel.from_pretrained(path, torch_dtype=torch.bfloat16)
    rec["sdnq_layers"] = sum(1 for m in model.modules() if type(m).__name__ == "SDNQLinear")
    rec["sdnq_imported"] = "sdnq" in sys.modules
    stage = "setup"
    sys.path.insert(0, os.environ["SDNQ_GPU_ROOT"])
    from benchmarks.sdnq_gpu import offloaded
    module, keep = offloaded(model, offload, kind)
    stage = "forward"
    saved = torch.load(path + "/ref.pt")
    with torch.no_grad():
        if kind == "te":
            y = module(saved["ids"].cuda()).last_hidden_state.float()
        else:
            inp = {k: v.cuda() for k, v in saved["inp"].items()}
            y = module(**inp, return_dict=False)[0].float()
    ref = saved["ref"].float().to(y.device)
    rec["rel_err"] = float((y - ref).norm() / ref.norm())
    rec["ok"] = bool(torch.isfinite(y).all()) and rec["rel_err"] < 0.05 and rec["sdnq_layers"] > 0
    if not rec["ok"]:
        rec.update(stage="forward", error_type="WrongOutput",
                   error=f"rel_err {rec['rel_err']:.3f}, {rec['sdnq_layers']} SDNQ layers")
except Exception as exc:
    rec.update(ok=False, stage=stage, error_type=type(exc).__name__, error=str(exc)[:300])
print("RESULT " + json.dumps(rec))
"""


def offloaded(model, offload, kind):  # type: ignore[no-untyped-def]
    """``model`` under ``offload`` on cuda:0 (what runs, and what must stay alive)."""
    import accelerate

    if offload == "none":
        return model.to("cuda"), None
    if offload == "sequential":
        return accelerate.cpu_offload(model, execution_device="cuda"), None
    if offload == "model":
        model, hook = accelerate.cpu_offload_with_hook(model, execution_device="cuda")
        return model, hook
    raise ValueError(offload)


def te(out: str) -> None:
    warnings.filterwarnings("ignore")
    import sdnq
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from quantdoctor import quantize
    from quantdoctor.doctor.probe import probe
    from quantdoctor.rules.models import Plan

    log = os.path.join(out, "sdnq-te.jsonl")
    env = probe()
    emit(log, kind="env", env=env.to_json_dict())
    torch.manual_seed(0)
    config = CLIPTextConfig(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=4,
        num_attention_heads=12,
        vocab_size=49408,
        max_position_embeddings=77,
    )
    bf16_dir = os.path.join(WORK, "te_bf16")
    CLIPTextModel(config).to(torch.bfloat16).save_pretrained(bf16_dir)
    ids = torch.randint(0, 49408, (2, 77), generator=torch.Generator().manual_seed(0))
    ref_model = CLIPTextModel.from_pretrained(bf16_dir, torch_dtype=torch.bfloat16).cuda()
    with torch.no_grad():
        ref = ref_model(ids.cuda()).last_hidden_state.float()
    del ref_model
    loads: list[tuple[str, str, str, str, dict[str, str]]] = []  # run in parallel at the end
    for scheme in ("int8", "uint4", "float8_e4m3fn"):
        for mode in ("pre", "post"):
            rec: dict[str, object] = dict(
                kind="case", engine="sdnq", scheme=scheme, mode=mode, component="text_encoder"
            )
            try:
                if mode == "pre":
                    model = CLIPTextModel.from_pretrained(
                        bf16_dir,
                        torch_dtype=torch.bfloat16,
                        quantization_config=sdnq.SDNQConfig(weights_dtype=scheme),
                    ).cuda()
                else:
                    model = CLIPTextModel.from_pretrained(bf16_dir, torch_dtype=torch.bfloat16)
                    model = quantize(
                        model.cuda(),
                        Plan(engine="sdnq", scheme=scheme, component="text_encoder"),
                        env=env,
                    )
                with torch.no_grad():
                    y = model(ids.cuda()).last_hidden_state.float()
                rec["rel_err"] = float((y - ref).norm() / ref.norm())
                rec["ok"] = bool(torch.isfinite(y).all())
                if mode == "pre":
                    saved = os.path.join(WORK, f"te_sdnq_{scheme}")
                    model.save_pretrained(saved)
                    torch.save({"ids": ids, "ref": y.cpu()}, os.path.join(saved, "ref.pt"))
                del model
            except Exception as exc:
                rec.update(ok=False, **err_info(exc))
            for offload in ("none",):
                emit(log, **dict(rec, offload=offload))
            if mode != "pre" or scheme == "float8_e4m3fn":
                continue
            meta = dict(engine="sdnq", scheme=scheme, mode="prequantized", component="text_encoder")
            for how in ("plain", "import"):
                for offload in ("none", "model", "sequential"):
                    saved = os.path.join(WORK, f"te_sdnq_{scheme}")
                    loads.append((saved, how, offload, "te", meta))
    # the transformer of Disty0/sdnq#11: SDNQ folder, no import, sequential offload
    from diffusers import FluxTransformer2DModel

    from benchmarks.ground_truth import CFG, make_inputs

    torch.manual_seed(0)
    flux = FluxTransformer2DModel(**CFG).to(torch.bfloat16)
    flux_dir = os.path.join(WORK, "flux_small_bf16")
    flux.save_pretrained(flux_dir)
    inp = make_inputs(torch, torch.device("cpu"))
    for scheme in ("uint4",):
        qdir = os.path.join(WORK, f"flux_sdnq_{scheme}")
        q = FluxTransformer2DModel.from_pretrained(
            flux_dir,
            torch_dtype=torch.bfloat16,
            quantization_config=Plan(engine="sdnq", scheme=scheme, mode="pre").to_diffusers(),
        ).cuda()
        with torch.no_grad():
            y = q(**{k: v.cuda() for k, v in inp.items()}, return_dict=False)[0]
        q.save_pretrained(qdir)
        torch.save({"inp": inp, "ref": y.cpu()}, os.path.join(qdir, "ref.pt"))
        del q
        meta = dict(engine="sdnq", scheme=scheme, mode="prequantized", component="transformer")
        for how in ("plain", "import"):
            for offload in ("none", "sequential"):
                loads.append((qdir, how, offload, "flux", meta))
    from concurrent.futures import ThreadPoolExecutor

    def one(job: tuple[str, str, str, str, dict[str, str]]) -> None:
        path, how, offload, kind, meta = job
        emit(log, **meta, **prequantized(path, how, offload, kind))

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(one, loads))


def prequantized(path: str, how: str, offload: str, kind: str) -> dict[str, object]:
    env = dict(os.environ, SDNQ_GPU_ROOT=ROOT, PYTHONUNBUFFERED="1")
    try:
        run = subprocess.run(
            [sys.executable, "-c", LOAD, path, how, offload, kind],
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return dict(kind="case", how=how, offload=offload, ok=False, error_type="Timeout")
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        return dict(
            kind="case",
            how=how,
            offload=offload,
            ok=False,
            error_type="ChildDied",
            error=(run.stderr or "")[-300:],
        )
    rec: dict[str, object] = json.loads(lines[-1][len("RESULT ") :])
    unknown = [ln for ln in run.stderr.splitlines() if "Unknown quantization type" in ln]
    if unknown:
        rec["warning"] = unknown[0][:300]
    return rec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cmd", choices=["costs", "te"])
    p.add_argument("--out", default=os.environ.get("OUT") or OUT)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(WORK, exist_ok=True)
    {"costs": costs, "te": te}[args.cmd](args.out)


if __name__ == "__main__":
    main()
