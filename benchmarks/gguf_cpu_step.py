"""How many values the CPU GGUF dequantizer should take per step, at each thread count.

``gguf_dequant.dequantize`` goes through a tensor on the CPU in steps, so that a step's
temporaries stay in cache. The step was chosen on one thread; with many threads each
thread's share of a step shrinks. This times ``dequantize`` of one real layer (default
3072 x 12288) per GGML type, to float32 and to bfloat16 (what a GGUF layer's forward
asks for), at fixed steps from 256Ki to 16Mi values and at the module's own rule
(``_step_values``), for torch thread counts from 1 to every core, interleaved, quiet.

Goal: at each thread count, type and dtype, the module's rule within 1.20x of the best
fixed step measured in the same run (the best of seven minima is flattered by noise: on
the 16-core host the rule and the fixed step it equals differed by up to 12%). Exits 1
when a goal is missed.

usage: python benchmarks/gguf_cpu_step.py [--out FILE] [--shape RxC] [--rounds N]
           [--types T,...] [--threads N,...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _bench as B  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_engines import interleaved  # noqa: E402

from quantdoctor.engines import gguf_dequant  # noqa: E402
from quantdoctor.engines.gguf_pack import quantize  # noqa: E402

STEPS = [1 << k for k in range(18, 25)]  # 256Ki .. 16Mi values
OWN = "rule"


def _label(values: int) -> str:
    return f"{values >> 20}Mi" if values >= 1 << 20 else f"{values >> 10}Ki"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--out", default=str(B.RESULTS / "gguf-cpu-step.json"))
    p.add_argument("--shape", default="3072x12288")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--types", default="Q8_0,Q4_K")
    cores = os.cpu_count() or 1
    p.add_argument("--threads", default=",".join(str(t) for t in sorted({1, min(4, cores), cores})))
    args = p.parse_args()
    rows, cols = (int(x) for x in args.shape.split("x"))
    started = B.machine()
    rule = gguf_dequant._step_values
    figures: dict[str, Any] = {}
    goals: list[B.Goal] = []
    table: list[str] = []
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    for qtype in args.types.split(","):
        raw = torch.from_numpy(np.ascontiguousarray(quantize(x, qtype)).view(np.uint8))
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            for dtype in (torch.float32, torch.bfloat16):
                name = f"{qtype} {str(dtype).split('.')[-1]} {threads}t"

                def run(
                    values: int | None, d: torch.dtype = dtype, r: Any = raw, q: str = qtype
                ) -> Any:
                    def call() -> Any:
                        gguf_dequant._step_values = rule if values is None else (lambda t: values)
                        try:
                            return gguf_dequant.dequantize(r, q, (rows, cols), d)
                        finally:
                            gguf_dequant._step_values = rule

                    return call

                fns = {f"{name} {_label(v)}": run(v) for v in STEPS}
                fns[f"{name} {OWN}"] = run(None)
                got = interleaved(fns, args.rounds)
                figures |= got
                best = min((k for k in got if not k.endswith(OWN)), key=lambda k: got[k]["min_ms"])
                goals.append(B.Goal(f"{name}: the rule near the best step", f"{name} {OWN}",
                                    "within", 1.20, best))  # fmt: skip
                cells = " ".join(f"{got[k]['min_ms']:7.1f}" for k in fns)
                table.append(f"{name:22} {cells}")
    torch.set_num_threads(cores)
    head = f"{'min ms':22} " + " ".join(f"{_label(v):>7}" for v in STEPS) + f" {OWN:>7}"
    verdicts = B.judge(goals, figures)
    return B.finish(
        Path(args.out),
        "CPU GGUF dequantization by step size and thread count",
        started,
        figures,
        verdicts,
        baseline=next(iter(figures)),
        notes=[head, *table, f"shape {rows}x{cols}; torch {torch.__version__}"],
        extra={"args": vars(args), "rule": {str(t): rule(t) for t in (1, 2, 4, 8, 16, cores)}},
    )


if __name__ == "__main__":
    raise SystemExit(main())
