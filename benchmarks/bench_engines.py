"""Adapters against the engines called directly, and GGUF dequantization in torch against gguf-py.

1. For each engine, the same model (a stack of ``nn.Linear(W, W)``) is quantized through
   quantdoctor (``quantize(model, plan, env=...)``: evaluate + adapter) and by calling the
   engine the way its documentation does, alternately, ``--reps`` times each; the ratio
   of the medians is the adapter's overhead (goal: 1.00 within noise). The quantized
   models' forwards are timed too.
2. For each GGML type, one (rows x cols) tensor's blocks are dequantized by
   ``gguf.quants.dequantize`` (numpy, CPU) and by ``quantdoctor.engines.gguf_dequant``
   in torch on the CPU and, where there is one, on the GPU.

usage: python benchmarks/bench_engines.py [--out DIR] [--device cpu|cuda] [--reps N]
Writes engines-<device>.json and engines-<device>.md under --out.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

warnings.filterwarnings("ignore")


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


class Stack(torch.nn.Module):
    def __init__(self, width, depth):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(depth))

    def forward(self, x):
        for layer in self.layers:
            x = torch.nn.functional.gelu(layer(x))
        return x


# ---- the engines, called directly (each as its documentation shows) -------------------


def direct_bitsandbytes(scheme):
    def run(model, x):
        import bitsandbytes as bnb

        dev = next(model.parameters()).device
        for name, lin in [(n, m) for n, m in model.named_modules() if type(m) is torch.nn.Linear]:
            parent = model.get_submodule(name.rpartition(".")[0])
            if scheme == "int8":
                new = bnb.nn.Linear8bitLt(
                    lin.in_features,
                    lin.out_features,
                    bias=True,
                    has_fp16_weights=False,
                    threshold=6.0,
                    device="meta",
                )
                new.weight = bnb.nn.Int8Params(
                    lin.weight.data.cpu(), requires_grad=False, has_fp16_weights=False
                )
            else:
                new = bnb.nn.Linear4bit(
                    lin.in_features,
                    lin.out_features,
                    bias=True,
                    compute_dtype=torch.bfloat16,
                    compress_statistics=False,  # as the adapter (and diffusers' default) do
                    quant_type=scheme,
                    device="meta",
                )
                new.weight = bnb.nn.Params4bit(
                    lin.weight.data,
                    requires_grad=False,
                    compress_statistics=False,
                    quant_type=scheme,
                )
            new.bias = torch.nn.Parameter(lin.bias.data, requires_grad=False)
            setattr(parent, name.rpartition(".")[2], new.to(dev))
        return model

    return run


def direct_quanto(scheme):
    def run(model, x):
        import optimum.quanto as oq

        oq.quantize(model, weights=getattr(oq, scheme))
        oq.freeze(model)
        return model

    return run


def direct_torchao(scheme):
    def run(model, x):
        import torchao.quantization as tq

        config = {"int8wo": tq.Int8WeightOnlyConfig, "float8wo": tq.Float8WeightOnlyConfig}[
            scheme
        ]()
        tq.quantize_(model, config)
        return model

    return run


def direct_nncf(scheme):
    def run(model, x):
        import nncf

        return nncf.compress_weights(
            model, mode=getattr(nncf.CompressWeightsMode, scheme.upper()), dataset=nncf.Dataset([x])
        )

    return run


def direct_gguf(scheme):
    """gguf-py's quantizer per weight, blocks kept on the device: the work the adapter wraps."""

    def run(model, x):
        import gguf

        from quantdoctor.engines.gguf_loader import GGUFLinear

        kind = gguf.GGMLQuantizationType[scheme]
        for name, lin in [(n, m) for n, m in model.named_modules() if type(m) is torch.nn.Linear]:
            w = lin.weight.detach()
            blocks = gguf.quants.quantize(w.to("cpu", torch.float32).numpy(), kind)
            raw = torch.from_numpy(blocks.view(np.uint8).reshape(lin.out_features, -1)).to(w.device)
            parent = model.get_submodule(name.rpartition(".")[0])
            setattr(
                parent,
                name.rpartition(".")[2],
                GGUFLinear(
                    raw,
                    scheme,
                    lin.in_features,
                    lin.out_features,
                    lin.bias.detach(),
                    torch.bfloat16,
                ),
            )
        return model

    return run


CASES = [
    ("bitsandbytes", "nf4", direct_bitsandbytes("nf4")),
    ("bitsandbytes", "int8", direct_bitsandbytes("int8")),
    ("quanto", "qint8", direct_quanto("qint8")),
    ("torchao", "int8wo", direct_torchao("int8wo")),
    ("nncf", "int8_asym", direct_nncf("int8_asym")),
    ("gguf", "Q8_0", direct_gguf("Q8_0")),
]


def time_fwd(model, x, dev, n=10):
    with torch.no_grad():
        model(x)
        sync(dev)
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            model(x)
            sync(dev)
            ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def bench_adapters(dev, reps, width, depth, env):
    """Per engine: ``quantize`` (evaluate + adapter), the adapter alone, and the engine
    called directly, in rotating order on fresh copies of one model."""
    import warnings as _warnings

    from quantdoctor import quantize
    from quantdoctor.engines import get_adapter
    from quantdoctor.rules.evaluate import evaluate
    from quantdoctor.rules.models import Plan

    torch.manual_seed(0)
    template = Stack(width, depth).to(dev, torch.bfloat16).eval()
    x = torch.randn(64, width, device=dev, dtype=torch.bfloat16)
    rows = []
    orders = [("quantize", "adapter", "direct"), ("adapter", "direct", "quantize"),
              ("direct", "quantize", "adapter")]  # fmt: skip
    for engine, scheme, direct in CASES:
        plan = Plan(engine=engine, scheme=scheme, mode="post")
        runs = {
            "quantize": lambda m, plan=plan: quantize(m, plan, env=env, example_input=x),
            "adapter": lambda m, plan=plan: get_adapter(plan.engine).apply(
                m, plan, example_input=x, progress=None
            ),
            "direct": lambda m, direct=direct: direct(m, x),
        }
        times = {k: [] for k in runs}
        out = {}
        try:
            for i in range(reps + 1):  # the first round warms imports and kernels, not counted
                for which in orders[i % 3]:
                    model = copy.deepcopy(template)
                    sync(dev)
                    t = time.perf_counter()
                    with _warnings.catch_warnings():
                        _warnings.simplefilter("ignore")
                        out[which] = runs[which](model)
                    sync(dev)
                    if i:
                        times[which].append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(200):
                evaluate(plan, env)
            evaluate_ms = (time.perf_counter() - t) / 200 * 1e3
            with torch.no_grad():
                same = torch.equal(out["adapter"](x), out["direct"](x)) and torch.equal(
                    out["quantize"](x), out["direct"](x)
                )
            f_ad, f_dir = time_fwd(out["quantize"], x, dev), time_fwd(out["direct"], x, dev)
            med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            row = dict(
                engine=engine,
                scheme=scheme,
                adapter_ms=med["quantize"],
                adapter_only_ms=med["adapter"],
                direct_ms=med["direct"],
                evaluate_ms=evaluate_ms,
                all_ms={k: [round(t * 1e3, 2) for t in v] for k, v in times.items()},
                same_output=same,
                fwd_adapter_ms=f_ad,
                fwd_direct_ms=f_dir,
            )
            row["overhead"] = med["quantize"] / med["direct"]
            row["adapter_overhead"] = med["adapter"] / med["direct"]
            row["fwd_ratio"] = f_ad / f_dir
        except Exception as exc:
            row = dict(
                engine=engine, scheme=scheme, error=f"{type(exc).__name__}: {str(exc)[:200]}"
            )
        print(json.dumps(row)[:300], flush=True)
        rows.append(row)
    return rows


def bench_dequant(dev, rows_n, cols, reps):
    import gguf

    from quantdoctor.engines.gguf_dequant import TYPES, dequantize
    from quantdoctor.engines.gguf_pack import quantize as pack

    rng = np.random.default_rng(0)
    values = rng.standard_normal((rows_n, cols)).astype(np.float32)
    out = []
    for qtype in TYPES:  # every type quantdoctor dequantizes in torch
        blocks = pack(values, qtype)
        kind = gguf.GGMLQuantizationType[qtype]
        raw_np = np.ascontiguousarray(blocks).view(np.uint8).reshape(-1)

        def timed(fn, device):
            fn()
            ts = []
            for _ in range(reps):
                sync(device)
                t = time.perf_counter()
                fn()
                sync(device)
                ts.append(time.perf_counter() - t)
            return statistics.median(ts) * 1e3

        row = dict(qtype=qtype, values=rows_n * cols)
        # each lambda runs inside this iteration (timed calls it at once): B023 does not apply
        row["numpy_ms"] = timed(lambda: gguf.quants.dequantize(blocks, kind), torch.device("cpu"))  # noqa: B023
        cpu_raw = torch.from_numpy(raw_np.copy())
        row["torch_cpu_ms"] = timed(
            lambda: dequantize(cpu_raw, qtype, (rows_n, cols)),  # noqa: B023
            torch.device("cpu"),
        )
        ref = gguf.quants.dequantize(blocks, kind).reshape(rows_n, cols)
        row["cpu_exact"] = bool(
            np.array_equal(dequantize(cpu_raw, qtype, (rows_n, cols)).numpy(), ref)
        )
        if dev.type == "cuda":
            gpu_raw = cpu_raw.to(dev)
            row["torch_cuda_ms"] = timed(
                lambda: dequantize(gpu_raw, qtype, (rows_n, cols), torch.bfloat16),  # noqa: B023
                dev,
            )
            # what a numpy dequantizer costs a GPU layer: dequantize on the host, then upload
            row["numpy_upload_ms"] = timed(
                lambda: torch.from_numpy(gguf.quants.dequantize(blocks, kind)).to(  # noqa: B023
                    dev, torch.bfloat16
                ),
                dev,
            )
            got = dequantize(gpu_raw, qtype, (rows_n, cols)).cpu().numpy()
            row["cuda_exact"] = bool(np.array_equal(got, ref))
            row["cuda_max_abs_diff"] = float(np.abs(got - ref).max())
            row["speedup_cuda_vs_numpy_upload"] = row["numpy_upload_ms"] / row["torch_cuda_ms"]
        row["speedup_cpu_vs_numpy"] = row["numpy_ms"] / row["torch_cpu_ms"]
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def markdown(result):
    lines = [
        f"# Engine adapters and GGUF dequantization ({result['device_name']})",
        "",
        f"torch {result['torch']}; {result['reps']} alternating reps; model: {result['depth']} x "
        f"Linear({result['width']}, {result['width']}) in bf16 on {result['device']}.",
        "",
        "## quantize through quantdoctor vs the engine called directly",
        "",
        "| engine | scheme | quantize ms | adapter ms | direct ms | evaluate ms "
        "| quantize / direct | adapter / direct | forward ratio | same output |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["adapters"]:
        if "error" in r:
            lines.append(f"| {r['engine']} | {r['scheme']} | {r['error']} | | | | | | | |")
            continue
        nan = float("nan")
        lines.append(
            f"| {r['engine']} | {r['scheme']} | {r['adapter_ms']:.2f} | "
            f"{r.get('adapter_only_ms', nan):.2f} | {r['direct_ms']:.2f} | "
            f"{r.get('evaluate_ms', nan):.3f} | {r['overhead']:.3f} | "
            f"{r.get('adapter_overhead', nan):.3f} | {r['fwd_ratio']:.3f} | {r['same_output']} |"
        )
    lines += [
        "",
        "## GGUF dequantization of {} x {} values".format(*result["dequant_shape"]),
        "",
        "| type | gguf numpy ms | torch CPU ms | CPU speedup | torch CUDA ms | numpy + upload ms "
        "| CUDA speedup | exact (cpu/cuda) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["dequant"]:
        lines.append(
            f"| {r['qtype']} | {r['numpy_ms']:.1f} | {r['torch_cpu_ms']:.1f} | "
            f"{r['speedup_cpu_vs_numpy']:.2f} | {r.get('torch_cuda_ms', float('nan')):.3f} | "
            f"{r.get('numpy_upload_ms', float('nan')):.1f} | "
            f"{r.get('speedup_cuda_vs_numpy_upload', float('nan')):.1f} | "
            f"{r['cpu_exact']}/{r.get('cuda_exact', '-')} |"
        )
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--dequant-shape", default="1024x4096")
    p.add_argument("--tag", default="")
    p.add_argument("--no-dequant", action="store_true", help="time the adapters only")
    args = p.parse_args()
    dev = torch.device(args.device)
    import quantdoctor

    env = quantdoctor.probe()
    rows_n, cols = (int(v) for v in args.dequant_shape.split("x"))
    result = dict(
        device=str(dev),
        torch=torch.__version__,
        reps=args.reps,
        width=args.width,
        depth=args.depth,
        device_name=torch.cuda.get_device_name(0)
        if dev.type == "cuda"
        else platform.processor() or platform.machine(),
        threads=torch.get_num_threads(),
        dequant_shape=[rows_n, cols],
    )
    result["adapters"] = bench_adapters(dev, args.reps, args.width, args.depth, env)
    result["dequant"] = [] if args.no_dequant else bench_dequant(dev, rows_n, cols, args.reps)
    os.makedirs(args.out, exist_ok=True)
    name = f"engines-{dev.type}{args.tag}"
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    md = markdown(result)
    with open(os.path.join(args.out, name + ".md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
