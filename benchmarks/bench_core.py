"""The rules core against its budgets, beside ``import torch`` measured in the same run.

    python benchmarks/bench_core.py [--repeat N] [--out benchmarks/results/core.json]

Whole processes are timed from spawn to exit (median of N, after one warm-up); in-process
figures use ``time.perf_counter``. The baseline ``python -c pass`` is measured too, so the
interpreter's own start can be told apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from envs import H100_LINUX as ENV  # noqa: E402  (the suite's literal H100 machine)

# Children run as after a normal install: with bytecode written and reused, even where the
# shell sets PYTHONDONTWRITEBYTECODE (pip compiles installed packages; torch has its .pyc).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def time_process(cmd: list[str], repeat: int) -> dict[str, Any]:
    subprocess.run(cmd, capture_output=True, check=False, env=CHILD_ENV)  # warm caches
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False, env=CHILD_ENV)
        samples.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(samples), "all_ms": [round(s, 1) for s in samples]}


def in_process(repeat: int) -> dict[str, Any]:
    from quantdoctor import Plan, evaluate
    from quantdoctor.rules.evaluate import default_matrix, evaluate_grid, grid_plans

    matrix = default_matrix()
    plan = Plan(engine="quanto", scheme="qint8", offload="balanced")
    evaluate(plan, ENV, matrix)
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        evaluate(plan, ENV, matrix, alternatives=0)
    one = (time.perf_counter() - start) * 1e3 / n
    start = time.perf_counter()
    for _ in range(n):
        evaluate(plan, ENV, matrix)
    with_alts = (time.perf_counter() - start) * 1e3 / n
    grids = []
    for _ in range(repeat):
        start = time.perf_counter()
        evaluate_grid(ENV, matrix)
        grids.append((time.perf_counter() - start) * 1e3)
    return {
        "evaluate_one_ms": one,
        "evaluate_one_with_alternatives_ms": with_alts,
        "grid_ms": statistics.median(grids),
        "grid_plans": len(grid_plans(matrix)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "core.json"))
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        env_path = Path(tmp) / "env.json"
        env_path.write_text(json.dumps(ENV), encoding="utf-8")
        procs = {
            "python -c pass": [py, "-c", "pass"],
            "import torch": [py, "-c", "import torch"],
            "import quantdoctor": [py, "-c", "import quantdoctor"],
            "quantdoctor check --env F": [
                py, "-m", "quantdoctor", "check", "--engine", "quanto", "--scheme", "qint8",
                "--offload", "balanced", "--env", str(env_path), "--json",
            ],
            "quantdoctor matrix --env F": [
                py, "-m", "quantdoctor", "matrix", "--env", str(env_path), "--json",
            ],
        }  # fmt: skip
        results = {name: time_process(cmd, args.repeat) for name, cmd in procs.items()}
    torch_ms = results["import torch"]["median_ms"]
    start_ms = results["python -c pass"]["median_ms"]
    inproc = in_process(args.repeat)
    budgets = {
        "import quantdoctor": ("< 60 ms over interpreter start", 60.0),
        "quantdoctor check --env F": ("whole process", None),
        "quantdoctor matrix --env F": ("whole process", None),
    }
    print(f"{'measurement':32} {'median ms':>10} {'x faster than import torch':>28}  budget")
    for name, r in results.items():
        ratio = torch_ms / r["median_ms"] if r["median_ms"] else float("nan")
        note = budgets.get(name, ("", None))[0]
        print(f"{name:32} {r['median_ms']:10.1f} {ratio:28.1f}  {note}")
    import_cost = results["import quantdoctor"]["median_ms"] - start_ms
    print(f"{'import quantdoctor - start':32} {import_cost:10.1f} {'':28}  < 60 ms")
    print(f"{'evaluate (one plan)':32} {inproc['evaluate_one_ms']:10.3f} {'':28}  < 1 ms")
    print(f"{'evaluate (+ alternatives)':32} {inproc['evaluate_one_with_alternatives_ms']:10.3f}")
    print(
        f"{'evaluate_grid (' + str(inproc['grid_plans']) + ' plans)':32} "
        f"{inproc['grid_ms']:10.1f} {'':28}  < 100 ms"
    )
    out = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "bytecode": "children write and reuse .pyc (PYTHONDONTWRITEBYTECODE unset)"},
        "processes": results,
        "import_quantdoctor_over_start_ms": import_cost,
        "in_process": inproc,
        "ratios_vs_import_torch": {n: torch_ms / r["median_ms"] for n, r in results.items()},
        "budgets_met": {
            "import_lt_60ms": import_cost < 60,
            "evaluate_lt_1ms": inproc["evaluate_one_ms"] < 1,
            "grid_lt_100ms": inproc["grid_ms"] < 100,
        },
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
