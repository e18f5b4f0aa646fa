"""Half precision on the CPU: bfloat16 and float16 forwards against float32 (rule
``dtype.cpu.half``, which evidence/cpu-2026-11-25.md measured for bfloat16 only).

The model is that evidence's: a 4-layer MLP 256-512-512-512-256 with GELU, batch 64,
seed 0. The three dtypes run interleaved, one forward each per round, with torch's
default threads, after two warm-up forwards; each figure is the median over the rounds
(the minimum beside it). Writes ``benchmarks/results/cpu_half.json`` and prints a table.

Exits 1 when either half dtype is not at least 2x slower than float32: the rule's claim
("half-precision matmul ... ran 6x slower than float32") would then not hold here.

    python benchmarks/cpu_half.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

OUT = Path(__file__).resolve().parent / "results" / "cpu_half.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
GOAL = 2.0  # half at least this many times slower than float32


def model(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU()]
    layers += [nn.Linear(512, 512), nn.GELU(), nn.Linear(512, 256)]
    return nn.Sequential(*layers).to(dtype).eval()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=200)
    args = p.parse_args()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 256, generator=gen)
    cases = {name: (model(dt), x.to(dt)) for name, dt in DTYPES.items()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    with torch.no_grad():
        for m, inp in cases.values():
            m(inp)
            m(inp)
        for _ in range(args.rounds):
            for name, (m, inp) in cases.items():
                t = time.perf_counter()
                m(inp)
                times[name].append(time.perf_counter() - t)
    base = statistics.median(times["float32"])
    rows = {
        name: {
            "median_ms": statistics.median(ts) * 1e3,
            "min_ms": min(ts) * 1e3,
            "x_float32": statistics.median(ts) / base,
        }
        for name, ts in times.items()
    }
    print(f"{'dtype':9} {'median ms':>10} {'min ms':>8} {'x float32':>10}  goal")
    ok = True
    for name, r in rows.items():
        goal = ""
        if name != "float32":
            met = r["x_float32"] >= GOAL
            ok &= met
            goal = f"{'met' if met else 'MISS'}: >= {GOAL}x slower than float32"
        print(f"{name:9} {r['median_ms']:10.3f} {r['min_ms']:8.3f} {r['x_float32']:10.2f}  {goal}")
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load": list(os.getloadavg()),
        },
        "model": "MLP 256-512-512-512-256, GELU, batch 64 (evidence/cpu-2026-11-25.md's)",
        "rounds": args.rounds,
        "dtypes": rows,
        "goal": f"bfloat16 and float16 each >= {GOAL}x float32's median",
        "met": ok,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
