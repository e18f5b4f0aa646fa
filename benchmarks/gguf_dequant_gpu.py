"""GGUF dequantization on a CUDA GPU: quantdoctor's torch dequantizer against diffusers'
(``dequantize_gguf_tensor``, what diffusers' GGUF layers run without the ``kernels``
package) on the same bytes on the same GPU, and a forward of one GGUF linear layer of each
against a plain bf16 ``nn.Linear`` of the same shape. Values are checked against gguf-py's
numpy dequantizer bit for bit (quantdoctor) and for equality (diffusers, no goal).
gguf-py's numpy dequantization plus the upload of its values (the way without a GPU
dequantizer) is timed once per type, beside.

Timings are wall-clock with ``torch.cuda.synchronize()`` after each call, interleaved
rounds (``bench_engines.interleaved``), minimum and median.

usage: python benchmarks/gguf_dequant_gpu.py [--shape 3072x12288] [--rounds 20]
           [--types T,...] [--batch 64] [--out FILE.json] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from bench_engines import DIFFUSERS, NUMPY, OURS, _version, interleaved

TYPES = "F16,BF16,Q8_0,Q5_1,Q5_0,Q4_1,Q4_0,Q6_K,Q5_K,Q4_K,Q3_K,Q2_K,IQ4_NL,IQ4_XS"


def synced(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return out

    return run


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a.view(np.uint32), b.view(np.uint32)))


def main() -> int:
    import gguf

    from quantdoctor.engines.gguf_dequant import dequantize
    from quantdoctor.engines.gguf_loader import GGUFLinear
    from quantdoctor.engines.gguf_pack import quantize

    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--shape", default="3072x12288")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--types", default=TYPES)
    p.add_argument("--batch", type=int, default=64, help="rows of the forward's input")
    p.add_argument("--out", default="gguf-dequant-gpu.json")
    p.add_argument("--device", default="cuda", help="cpu: a quick check of this script")
    args = p.parse_args()
    rows, cols = (int(v) for v in args.shape.split("x"))
    dev = torch.device(args.device)
    try:
        from diffusers.quantizers.gguf.utils import (
            SUPPORTED_GGUF_QUANT_TYPES,
            GGUFParameter,
            dequantize_gguf_tensor,
        )
        from diffusers.quantizers.gguf.utils import GGUFLinear as DLinear
    except ImportError:
        SUPPORTED_GGUF_QUANT_TYPES = ()
    values = np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32)
    x = torch.randn(args.batch, cols, device=dev, dtype=torch.bfloat16)
    bias = torch.randn(rows, device=dev, dtype=torch.bfloat16)
    plain = torch.nn.Linear(cols, rows, device=dev, dtype=torch.bfloat16).eval()
    figures: dict[str, Any] = {}
    exact: dict[str, Any] = {}
    lines = []
    for qtype in args.types.split(","):
        kind = gguf.GGMLQuantizationType[qtype]
        blocks = np.ascontiguousarray(quantize(values, qtype)).view(np.uint8)
        start = time.perf_counter()
        ref = gguf.quants.dequantize(blocks, kind).reshape(rows, cols)
        up = torch.from_numpy(np.ascontiguousarray(ref)).to(dev)
        synced(lambda: None)()
        numpy_ms = (time.perf_counter() - start) * 1e3
        del up
        raw = torch.from_numpy(blocks.reshape(-1).copy()).to(dev)
        ours = dequantize(raw, qtype, (rows, cols))
        exact[qtype] = {"quantdoctor": same_bits(ours.cpu().numpy(), ref)}
        fns: dict[str, Callable[[], Any]] = {
            f"{OURS} {qtype}": synced(lambda r=raw, q=qtype: dequantize(r, q, (rows, cols))),
        }
        layer = GGUFLinear(
            raw.reshape(rows, -1), qtype, cols, rows, bias.clone(), torch.bfloat16
        ).eval()
        fwd: dict[str, Callable[[], Any]] = {
            f"forward: {OURS} {qtype}": synced(lambda m=layer: m(x)),
            f"forward: bf16 nn.Linear {qtype}": synced(lambda: plain(x)),
        }
        if kind in SUPPORTED_GGUF_QUANT_TYPES:
            param = GGUFParameter(raw.reshape(rows, -1).clone(), quant_type=kind)
            theirs = dequantize_gguf_tensor(param)
            exact[qtype]["diffusers"] = same_bits(theirs.float().cpu().numpy(), ref)
            fns[f"{DIFFUSERS} {qtype}"] = synced(lambda t=param: dequantize_gguf_tensor(t))
            dl = DLinear(cols, rows, True, torch.bfloat16, device=dev).eval()
            dl.weight = GGUFParameter(raw.reshape(rows, -1).clone(), quant_type=kind)
            dl.bias = torch.nn.Parameter(bias.clone(), requires_grad=False)
            fwd[f"forward: {DIFFUSERS} {qtype}"] = synced(lambda m=dl: m(x))
        with torch.no_grad():
            got = interleaved(fns, args.rounds) | interleaved(fwd, args.rounds)
        got[f"{NUMPY} + upload {qtype}"] = {"min_ms": round(numpy_ms, 2), "n": 1}
        figures |= got
        ours_ms = got[f"{OURS} {qtype}"]["min_ms"]
        their = got.get(f"{DIFFUSERS} {qtype}", {}).get("min_ms")
        f_ours = got[f"forward: {OURS} {qtype}"]["min_ms"]
        f_their = got.get(f"forward: {DIFFUSERS} {qtype}", {}).get("min_ms")
        f_plain = got[f"forward: bf16 nn.Linear {qtype}"]["min_ms"]
        lines.append(
            f"{qtype:7} {ours_ms:9.3f} {their if their else float('nan'):9.3f} "
            f"{(their / ours_ms) if their else float('nan'):8.2f}x {numpy_ms:9.1f} "
            f"{numpy_ms / ours_ms:8.0f}x | {f_ours:8.3f} "
            f"{f_their if f_their else float('nan'):8.3f} "
            f"{(f_their / f_ours) if f_their else float('nan'):7.2f}x {f_plain:7.3f} "
            f"{f_ours / f_plain:7.2f}x | {exact[qtype]}"
        )
        print(lines[-1], file=sys.stderr, flush=True)
        del raw, ours, layer, fns, fwd
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    head = (
        f"{'type':7} {'ours ms':>9} {'diff. ms':>9} {'diff/ours':>9} {'numpy+up':>9} "
        f"{'np/ours':>9} | {'fwd ours':>8} {'fwd diff':>8} {'diff/ours':>8} {'bf16':>7} "
        f"{'ours/bf16':>8} | bit-exact vs gguf-py"
    )
    where = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    note = (
        f"{where}; {rows} x {cols} values, float32 out; forward: "
        f"({args.batch}, {cols}) bf16 input, bf16 compute; minimum of {args.rounds} "
        f"interleaved synced calls; torch {torch.__version__}, gguf-py {_version('gguf')}, "
        f"diffusers {_version('diffusers')}"
    )
    text = "\n".join([note, head, *lines])
    print(text)
    Path(args.out).write_text(
        json.dumps({"note": note, "figures": figures, "exact": exact, "args": vars(args)}, indent=1)
        + "\n"
    )
    Path(args.out).with_suffix(".txt").write_text(text + "\n")
    return 0 if all(e["quantdoctor"] for e in exact.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
