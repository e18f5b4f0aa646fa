"""GGUF dequantization, GGUF loading and the engine adapters, each against outside baselines
measured in the same run, interleaved; exits 1 when a goal is missed.

1. GGUF dequantization on the CPU (issue #17), one (rows x cols) tensor per GGML type
   (default 3072 x 12288, a real layer), blocks from gguf-py's quantizer or, where it has
   none, ``quantdoctor.engines.gguf_pack``. Timed in turn, rotating, ``--rounds`` times:
   ``gguf.quants.dequantize`` (gguf-py's numpy, one thread: the baseline), quantdoctor's
   ``gguf_dequant.dequantize`` and diffusers' ``dequantize_gguf_tensor`` (the torch
   dequantizer diffusers' GGUF layers run), with torch's default threads. Twice: quiet,
   then with every other core held by a busy process (``--load``). Goals, per type and
   load: quantdoctor at least as fast as numpy (plain floats, one conversion pass either
   way: within 1.10x); quantdoctor's values equal numpy's bit for bit. ``--before FILE``
   adds a figure for another ``gguf_dequant.py`` (the previous one: ``git show
   REV:quantdoctor/engines/gguf_dequant.py > old.py``), with no goal.
2. Loading a GGUF file: ``load_gguf`` (blocks kept, dequantized per forward) against
   ``gguf.GGUFReader`` + numpy dequantization + ``load_state_dict``, and a forward of the
   loaded model against the same model with diffusers' ``GGUFLinear`` layers. Goals:
   quantdoctor no slower than either.
3. The adapters: ``quantize(model, plan)`` (evaluate + adapter) against each engine
   called the way its documentation shows, on fresh copies of one model (``--depth`` x
   ``Linear(--width)``, bf16). Goal: within 1.10x of the engine's own API.

Every goal is judged on the minimum (the machine is shared; the median is shown beside it).

The default run (all three) writes benchmarks/results/engines-cpu-dequant.json and .txt.

usage: python benchmarks/bench_engines.py [--out FILE] [--shape RxC] [--rounds N]
           [--types T,...] [--load quiet|busy|both] [--before FILE]
           [--no-dequant] [--no-gguf-load] [--no-adapters]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _bench as B  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

warnings.filterwarnings("ignore")

NUMPY, OURS, DIFFUSERS, BEFORE = "gguf-py numpy", "quantdoctor", "diffusers torch", "before"


def interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, caps: dict[str, int] | None = None
) -> dict[str, dict[str, Any]]:
    """Each function once per round, the starting one rotating; one untimed call of each
    first. ``caps`` limits the timed rounds of slow ones (by key prefix). Returns key ->
    {min_ms, median_ms, n}."""
    for fn in fns.values():
        fn()
    keys = list(fns)
    samples: dict[str, list[float]] = {k: [] for k in keys}
    limit = {
        k: min([rounds, *(n for p, n in (caps or {}).items() if k.startswith(p))]) for k in keys
    }
    for r in range(rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            if len(samples[key]) >= limit[key]:
                continue
            start = time.perf_counter()
            fns[key]()
            samples[key].append((time.perf_counter() - start) * 1e3)
    return {
        k: {
            "min_ms": round(min(v), 2),
            "median_ms": round(statistics.median(v), 2),
            "n": len(v),
        }
        for k, v in samples.items()
    }


@contextlib.contextmanager
def busy(on: bool) -> Iterator[int]:
    """Every core but one held by a process that spins (another user's work)."""
    n = max(1, (os.cpu_count() or 2) - 1) if on else 0
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]
    try:
        time.sleep(0.3 if procs else 0)
        yield n
    finally:
        for p in procs:
            p.kill()
            p.wait()


def load_module(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("_before_gguf_dequant", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- 1. dequantization


def dequant_cases(shape: tuple[int, int], types: list[str]) -> list[dict[str, Any]]:
    """Per type: the blocks (numpy), the same bytes as a torch tensor, diffusers' parameter."""
    from quantdoctor.engines.gguf_pack import quantize

    values = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    cases = []
    for qtype in types:
        blocks = np.ascontiguousarray(quantize(values, qtype)).view(np.uint8)
        raw = torch.from_numpy(blocks.reshape(-1).copy())
        cases.append({"qtype": qtype, "blocks": blocks, "raw": raw})
    return cases


def diffusers_dequantizer(blocks: np.ndarray, qtype: str) -> Callable[[], Any] | None:
    try:
        import gguf
        from diffusers.quantizers.gguf.utils import (
            SUPPORTED_GGUF_QUANT_TYPES,
            GGUFParameter,
            dequantize_gguf_tensor,
        )
    except ImportError:
        return None
    kind = gguf.GGMLQuantizationType[qtype]
    if kind not in SUPPORTED_GGUF_QUANT_TYPES:
        return None
    param = GGUFParameter(torch.from_numpy(blocks.copy()), quant_type=kind)
    return lambda: dequantize_gguf_tensor(param)


def bench_dequant(
    args: argparse.Namespace, figures: dict[str, Any], goals: list[B.Goal], notes: list[str]
) -> bool:
    import gguf

    from quantdoctor._ggml import BY_NAME
    from quantdoctor.engines.gguf_dequant import dequantize

    shape = tuple(int(v) for v in args.shape.split("x"))
    assert len(shape) == 2
    before = load_module(args.before) if args.before else None
    if before is not None:
        notes.append(f"before: {args.before}")
    loads = {"quiet": [False], "busy": [True], "both": [False, True]}[args.load]
    exact = True
    cases = dequant_cases(shape, args.types.split(","))  # type: ignore[arg-type]
    for case in cases:
        qtype, blocks, raw = case["qtype"], case["blocks"], case["raw"]
        kind = gguf.GGMLQuantizationType[qtype]
        plain = BY_NAME[qtype].plain_float
        ref = gguf.quants.dequantize(blocks, kind).reshape(shape)
        same = np.array_equal(dequantize(raw, qtype, shape).numpy(), ref)
        exact &= same
        if not same:
            notes.append(f"NOT EXACT: quantdoctor's {qtype} values differ from gguf-py's")
        fns: dict[str, Callable[[], Any]] = {
            NUMPY: lambda b=blocks, k=kind: gguf.quants.dequantize(b, k),
            OURS: lambda r=raw, q=qtype: dequantize(r, q, shape),
        }
        theirs = diffusers_dequantizer(blocks, qtype)
        if theirs is not None:
            fns[DIFFUSERS] = theirs
        if before is not None and qtype in args.before_types.split(","):
            fns[BEFORE] = lambda r=raw, q=qtype: before.dequantize(r, q, shape)
        for loaded in loads:
            tag = "busy" if loaded else "quiet"
            with busy(loaded):  # the outside torch dequantizers are slow under load: 3 rounds
                got = interleaved(fns, args.rounds, {DIFFUSERS: 3, BEFORE: 3})
            for who, fig in got.items():
                figures[f"{tag}: {who} {qtype}"] = fig
            # plain floats: one conversion pass either way (equal work): within 1.10x
            limit, goal = (1.10, "within 1.10x of") if plain else (1.0, "at least as fast as")
            goals.append(
                B.Goal(f"{qtype} {tag}: quantdoctor {goal} numpy",
                       f"{tag}: {OURS} {qtype}", "within", limit, f"{tag}: {NUMPY} {qtype}")
            )  # fmt: skip
            line = "  ".join(f"{k} {v['min_ms']:.0f}" for k, v in got.items())
            print(f"{qtype} {tag}: {line} ms (min)", file=sys.stderr, flush=True)
    labels = ["busy" if b else "quiet" for b in loads]
    notes[:0] = summary(figures, [c["qtype"] for c in cases], labels)
    notes.append(
        f"dequantization: {shape[0]} x {shape[1]} values, float32 out, torch "
        f"{torch.__version__} with its default {torch.get_num_threads()} threads, gguf-py "
        f"{_version('gguf')}, diffusers {_version('diffusers')}; 'busy': every other core "
        "held by a spinning process; values equal to gguf-py's bit for bit: "
        + ("every type" if exact else "NO (see above)")
    )
    return exact


def summary(figures: dict[str, Any], types: list[str], loads: list[str]) -> list[str]:
    """Per type and load: each dequantizer's minimum, and numpy's minimum over it (above 1:
    faster than gguf-py's numpy)."""
    who = [w for w in (NUMPY, OURS, DIFFUSERS, BEFORE) if any(w in k for k in figures)]
    head = f"{'type':7} {'load':5} " + " ".join(f"{w + ' ms':>18}" for w in who)
    head += "  " + " ".join(f"{'numpy/' + w.split()[0]:>18}" for w in who[1:])
    lines = ["", "CPU dequantization: minimum ms, and numpy's minimum / each one's", head]
    for load in loads:
        for qtype in types:
            ms = {w: figures.get(f"{load}: {w} {qtype}", {}).get("min_ms") for w in who}
            base = ms[NUMPY]
            cells = " ".join(f"{v:18.1f}" if v else f"{'-':>18}" for v in ms.values())
            ratios = " ".join(
                f"{base / v:17.2f}x" if v and base else f"{'-':>18}"
                for w, v in ms.items()
                if w != NUMPY
            )
            lines.append(f"{qtype:7} {load:5} {cells}  {ratios}")
    return [*lines, ""]


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "absent"


# -------------------------------------------------------------------- 2. GGUF files


class Stack(torch.nn.Module):
    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.nn.functional.gelu(layer(x))
        return x


def reader_load(path: str, module: torch.nn.Module) -> torch.nn.Module:
    """gguf-py's own way: GGUFReader, numpy dequantization, load_state_dict."""
    import gguf

    state = {}
    for t in gguf.GGUFReader(path).tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        state[t.name] = torch.from_numpy(np.ascontiguousarray(values)).reshape(
            tuple(int(d) for d in reversed(t.shape.tolist()))
        )
    module.load_state_dict(state)
    return module


def diffusers_layers(path: str, module: torch.nn.Module) -> torch.nn.Module:
    """The file's blocks in diffusers' GGUFLinear layers (what from_single_file builds)."""
    import gguf
    from diffusers.quantizers.gguf.utils import GGUFLinear, GGUFParameter

    for t in gguf.GGUFReader(path).tensors:
        owner, _, leaf = t.name.rpartition(".")
        lin = module.get_submodule(owner)
        if leaf == "weight" and t.tensor_type not in (0, 1):
            new = GGUFLinear(lin.in_features, lin.out_features, True, torch.bfloat16)
            new.weight = GGUFParameter(torch.from_numpy(np.array(t.data)), quant_type=t.tensor_type)
            new.bias = lin.bias
            parent, _, name = owner.rpartition(".")
            setattr(module.get_submodule(parent), name, new)
        elif leaf == "bias":
            with torch.no_grad():
                lin.bias.copy_(torch.from_numpy(np.array(t.data)))
    return module


def bench_gguf_load(
    args: argparse.Namespace, figures: dict[str, Any], goals: list[B.Goal], work: Path
) -> None:
    from quantdoctor.engines import load_gguf, save_gguf

    torch.manual_seed(0)
    src = Stack(args.width, args.depth).eval()
    path = str(work / "stack-Q8_0.gguf")
    save_gguf(src, path, "Q8_0")
    fresh = Stack(args.width, args.depth).eval()
    x = torch.randn(64, args.width, dtype=torch.bfloat16)
    got = interleaved(
        {
            "load: quantdoctor load_gguf": lambda: load_gguf(
                path, copy.deepcopy(fresh), check=False
            ),
            "load: gguf-py GGUFReader + numpy + load_state_dict": lambda: reader_load(
                path, copy.deepcopy(fresh)
            ),
        },
        args.rounds,
    )
    ours = load_gguf(path, copy.deepcopy(fresh), check=False)
    theirs = diffusers_layers(path, copy.deepcopy(fresh).to(torch.bfloat16))

    def forward(model: torch.nn.Module) -> Callable[[], Any]:
        def run() -> Any:
            with torch.no_grad():
                return model(x)

        return run

    runs = {
        "forward: quantdoctor GGUFLinear": forward(ours),
        "forward: diffusers GGUFLinear": forward(theirs),
    }
    if args.before:  # the same layers, dequantizing with the other gguf_dequant.py
        before = load_module(args.before)
        old = copy.deepcopy(ours)
        for layer in old.modules():
            if hasattr(layer, "dequantized_weight"):
                layer.dequantized_weight = lambda m=layer: before.dequantize(
                    m.qweight, m.qtype, (m.out_features, m.in_features), m.compute_dtype
                )
        runs["forward: before GGUFLinear"] = forward(old)
    got |= interleaved(runs, args.rounds)
    figures.update(got)
    goals += [
        B.Goal(
            "load_gguf no slower than GGUFReader + numpy dequantization",
            "load: quantdoctor load_gguf",
            "within",
            1.0,
            "load: gguf-py GGUFReader + numpy + load_state_dict",
        ),
        B.Goal(
            "a GGUF forward no slower than diffusers' GGUF layers",
            "forward: quantdoctor GGUFLinear",
            "within",
            1.0,
            "forward: diffusers GGUFLinear",
        ),
    ]


# ------------------------------------------------------------------- 3. the adapters


def direct_bitsandbytes(scheme: str) -> Callable[[torch.nn.Module, Any], torch.nn.Module]:
    def run(model: torch.nn.Module, x: Any) -> torch.nn.Module:
        import bitsandbytes as bnb

        dev = next(model.parameters()).device
        for name, lin in [(n, m) for n, m in model.named_modules() if type(m) is torch.nn.Linear]:
            parent = model.get_submodule(name.rpartition(".")[0])
            if scheme == "int8":
                new = bnb.nn.Linear8bitLt(
                    lin.in_features, lin.out_features, bias=True, has_fp16_weights=False,
                    threshold=6.0, device="meta",
                )  # fmt: skip
                new.weight = bnb.nn.Int8Params(
                    lin.weight.data.cpu(), requires_grad=False, has_fp16_weights=False
                )
            else:
                new = bnb.nn.Linear4bit(
                    lin.in_features, lin.out_features, bias=True, compute_dtype=torch.bfloat16,
                    compress_statistics=False, quant_type=scheme, device="meta",
                )  # fmt: skip
                new.weight = bnb.nn.Params4bit(
                    lin.weight.data, requires_grad=False, compress_statistics=False,
                    quant_type=scheme,
                )  # fmt: skip
            new.bias = torch.nn.Parameter(lin.bias.data, requires_grad=False)
            setattr(parent, name.rpartition(".")[2], new.to(dev))  # quantized on the move
        return model

    return run


def direct_quanto(scheme: str) -> Callable[[torch.nn.Module, Any], torch.nn.Module]:
    def run(model: torch.nn.Module, x: Any) -> torch.nn.Module:
        import optimum.quanto as oq

        oq.quantize(model, weights=getattr(oq, scheme))
        oq.freeze(model)
        return model

    return run


def direct_torchao(scheme: str) -> Callable[[torch.nn.Module, Any], torch.nn.Module]:
    def run(model: torch.nn.Module, x: Any) -> torch.nn.Module:
        import torchao.quantization as tq

        configs = {"int8wo": tq.Int8WeightOnlyConfig, "float8wo": tq.Float8WeightOnlyConfig}
        tq.quantize_(model, configs[scheme]())
        return model

    return run


def direct_nncf(scheme: str) -> Callable[[torch.nn.Module, Any], torch.nn.Module]:
    def run(model: torch.nn.Module, x: Any) -> torch.nn.Module:
        import nncf

        mode = getattr(nncf.CompressWeightsMode, scheme.upper())
        return nncf.compress_weights(model, mode=mode, dataset=nncf.Dataset([x]))

    return run


def direct_gguf(scheme: str) -> Callable[[torch.nn.Module, Any], torch.nn.Module]:
    """gguf-py's quantizer per weight, the blocks in diffusers' GGUF layers."""

    def run(model: torch.nn.Module, x: Any) -> torch.nn.Module:
        import gguf
        from diffusers.quantizers.gguf.utils import GGUFLinear, GGUFParameter

        kind = gguf.GGMLQuantizationType[scheme]
        for name, lin in [(n, m) for n, m in model.named_modules() if type(m) is torch.nn.Linear]:
            w = lin.weight.detach()
            blocks = torch.from_numpy(
                gguf.quants.quantize(w.to("cpu", torch.float32).numpy(), kind)
            )
            new = GGUFLinear(lin.in_features, lin.out_features, True, torch.bfloat16)
            new.weight = GGUFParameter(blocks.to(w.device), quant_type=kind)
            new.bias = lin.bias
            setattr(model.get_submodule(name.rpartition(".")[0]), name.rpartition(".")[2], new)
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


def bench_adapters(
    args: argparse.Namespace, figures: dict[str, Any], goals: list[B.Goal], notes: list[str]
) -> None:
    import quantdoctor
    from quantdoctor import quantize
    from quantdoctor.rules.models import Plan

    env = quantdoctor.probe()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    template = Stack(args.width, args.depth).to(dev, torch.bfloat16).eval()
    x = torch.randn(64, args.width, device=dev, dtype=torch.bfloat16)

    def synced(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            out = fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return out

        return run

    for engine, scheme, direct in CASES:
        plan = Plan(engine=engine, scheme=scheme, mode="post")
        ours, theirs = f"adapter: quantize {engine} {scheme}", f"direct: {engine} {scheme}"
        try:
            got = interleaved(
                {
                    ours: synced(
                        lambda p=plan: quantize(
                            copy.deepcopy(template), p, env=env, example_input=x
                        )
                    ),
                    theirs: synced(lambda d=direct: d(copy.deepcopy(template), x)),
                },
                args.rounds,
            )
        except Exception as exc:  # an engine that cannot run here is reported, not skipped
            figures[ours] = B.unavailable(f"{type(exc).__name__}: {str(exc)[:160]}")
            got = {}
        figures.update(got)
        name = f"quantize {engine} {scheme} within 1.10x of the engine's own API"
        goals.append(B.Goal(name, ours, "within", 1.10, theirs))
    notes.append(
        f"adapters: {args.depth} x Linear({args.width}, {args.width}) in bf16 on {dev}, "
        "deep-copied for every call (the copy is in both figures)"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", default=str(B.RESULTS / "engines-cpu-dequant.json"),
                   help="the JSON file (a folder: engines-<device><tag>.json in it)")  # fmt: skip
    p.add_argument("--tag", default="", help="with --out FOLDER: a suffix of the file name")
    p.add_argument("--device", default="cpu", help="where the adapters run (cpu, cuda)")
    p.add_argument("--shape", default="3072x12288")
    p.add_argument("--rounds", "--reps", dest="rounds", type=int, default=5)
    p.add_argument(
        "--types",
        default="F16,BF16,Q8_0,Q5_1,Q5_0,Q4_1,Q4_0,Q6_K,Q5_K,Q4_K,Q3_K,Q2_K,IQ4_NL,IQ4_XS",
    )
    p.add_argument("--load", choices=["quiet", "busy", "both"], default="both")
    p.add_argument("--before", help="another gguf_dequant.py to time beside (no goal)")
    p.add_argument("--before-types", default="Q8_0,Q4_0,Q6_K,Q5_K,Q4_K")
    p.add_argument("--no-adapters", action="store_true", help="leave out the adapters")
    p.add_argument("--no-gguf-load", action="store_true", help="leave out loading a file")
    p.add_argument("--no-dequant", action="store_true", help="leave out dequantization")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--depth", type=int, default=4)
    args = p.parse_args()
    if args.before:  # read from a workspace folder: not relative to the current one
        args.before = os.path.abspath(args.before)
    if os.path.isdir(args.out):
        args.out = os.path.join(
            args.out, f"engines-{torch.device(args.device).type}{args.tag}.json"
        )
    started = B.machine()
    figures: dict[str, Any] = {}
    goals: list[B.Goal] = []
    notes: list[str] = []
    exact = True
    if not args.no_dequant:
        exact = bench_dequant(args, figures, goals, notes)
    if not args.no_gguf_load:
        with B.workspace("bench-engines-") as work:
            bench_gguf_load(args, figures, goals, work)
    if not args.no_adapters:
        bench_adapters(args, figures, goals, notes)
    verdicts = B.judge(goals, figures)
    baseline = next(iter(figures))
    code = B.finish(
        Path(args.out),
        "GGUF dequantization and engines against outside baselines of the same run",
        started,
        figures,
        verdicts,
        baseline=baseline,
        notes=notes,
        extra={"args": vars(args), "exact": exact},
    )
    return code if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
