"""How fast the doctor answers, beside what people run today, measured in one run.

Whole processes, warm (one untimed run of each first), interleaved round by round so
that load from other work on the machine falls on every command alike:

- ``quantdoctor env --json``, the bare ``quantdoctor`` report, ``import quantdoctor``;
- ``python -c "import torch; torch.cuda.is_available()"`` (the baseline every ratio uses),
  ``python -m torch.utils.collect_env`` and ``python -m bitsandbytes``;
- ``probe_dict()`` in this process (first call, then warm calls).

Each row gives the median wall time and the median CPU time (user + sys of the child):
on a shared machine the CPU time is the steadier of the two. Prints a table and writes
``benchmarks/results/probe-<tag>.json``.

    python benchmarks/bench_probe.py [--tag NAME] [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

#: The budgets of DESIGN.md and the issue, checked against this run's numbers.
ENV_JSON_MAX_MS = 150.0
ENV_JSON_MIN_RATIO = 20.0
REPORT_MIN_RATIO = 10.0


def commands(py: str) -> dict[str, tuple[list[str], int]]:
    """name -> (argv, how many timed runs per ``--rounds`` unit)."""
    return {
        "python -c pass": ([py, "-c", "pass"], 3),
        "import quantdoctor": ([py, "-c", "import quantdoctor"], 3),
        "quantdoctor env --json": ([py, "-m", "quantdoctor", "env", "--json"], 3),
        "quantdoctor (report)": ([py, "-m", "quantdoctor"], 3),
        "quantdoctor --no-cache (report)": ([py, "-m", "quantdoctor", "--no-cache"], 3),
        "import torch; cuda.is_available()": (
            [py, "-c", "import torch; torch.cuda.is_available()"],
            1,
        ),
        "python -m torch.utils.collect_env": ([py, "-m", "torch.utils.collect_env"], 1),
        "python -m bitsandbytes": ([py, "-m", "bitsandbytes"], 1),
    }


BASELINE = "import torch; cuda.is_available()"


def child_env(bytecode: bool, cache: str) -> dict[str, str]:
    """The children's environment. With ``bytecode``, as after ``pip install``: modules
    load from cached bytecode (kept under ``cache``, out of the source tree), even where
    ``PYTHONDONTWRITEBYTECODE`` is set, which would recompile every module on every run."""
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache
    return env


def run_once(argv: list[str], timeout: float, env: dict[str, str]) -> tuple[float, float, int]:
    """(wall ms, child CPU ms, exit code) of one whole process.

    ``os.wait4`` blocks until the child ends and returns its own CPU time. (A wait with
    a timeout, as ``subprocess.run(timeout=...)`` does, polls with doubling sleeps and
    rounds a 35 ms process up to 64 ms.) A timer kills a child that outlives ``timeout``.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = (time.perf_counter() - start) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = (usage.ru_utime + usage.ru_stime) * 1000
    return wall, cpu, proc.returncode


def measure_processes(
    rounds: int, timeout: float, skip: set[str], env: dict[str, str]
) -> dict[str, dict[str, Any]]:
    cmds = {k: v for k, v in commands(sys.executable).items() if k not in skip}
    samples: dict[str, list[tuple[float, float, int]]] = {k: [] for k in cmds}
    for argv, _ in cmds.values():  # warm the page cache, the bytecode, the report's cache
        run_once(argv, timeout, env)
    for r in range(rounds):
        for name, (argv, per_round) in cmds.items():
            for _ in range(per_round):
                samples[name].append(run_once(argv, timeout, env))
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
    out: dict[str, dict[str, Any]] = {}
    for name, rows in samples.items():
        walls = [w for w, _, _ in rows]
        cpus = [c for _, c, _ in rows]
        out[name] = {
            "argv": cmds[name][0][1:],
            "runs": len(rows),
            "wall_ms_median": round(statistics.median(walls), 1),
            "wall_ms_min": round(min(walls), 1),
            "cpu_ms_median": round(statistics.median(cpus), 1),
            "exit_codes": sorted({c for _, _, c in rows}),
        }
    return out


def measure_in_process(runs: int) -> dict[str, Any]:
    start = time.perf_counter()
    from quantdoctor.doctor.probe import probe_dict

    env = probe_dict()
    first = (time.perf_counter() - start) * 1000
    warm = []
    for _ in range(runs):
        t = time.perf_counter()
        probe_dict()
        warm.append((time.perf_counter() - t) * 1000)
    heavy = sorted(m for m in ("torch", "rich", "pydantic", "yaml") if m in sys.modules)
    return {
        "first_call_ms": round(first, 2),
        "warm_ms_median": round(statistics.median(warm), 2),
        "runs": runs,
        "imported_heavy_modules": heavy,
        "environment": env,
    }


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if BASELINE not in rows:
        return {}
    base = rows[BASELINE]
    out: dict[str, Any] = {}
    for name, row in rows.items():
        if name == BASELINE:
            continue
        out[name] = {
            "wall": round(base["wall_ms_median"] / row["wall_ms_median"], 1),
            "cpu": round(base["cpu_ms_median"] / max(row["cpu_ms_median"], 0.1), 1),
        }
    return out


def budgets(rows: dict[str, dict[str, Any]], r: dict[str, Any]) -> dict[str, Any]:
    env = rows.get("quantdoctor env --json")
    out: dict[str, Any] = {}
    if env:
        out["env --json < 150 ms (wall)"] = env["wall_ms_median"] < ENV_JSON_MAX_MS
    if "quantdoctor env --json" in r:
        ratio = r["quantdoctor env --json"]["wall"]
        out[f"env --json >= {ENV_JSON_MIN_RATIO:g}x faster than import torch"] = (
            ratio >= ENV_JSON_MIN_RATIO
        )
    for name in ("quantdoctor (report)", "quantdoctor --no-cache (report)"):
        if name in r:
            what = "report" if "no-cache" not in name else "report, rebuilt (--no-cache)"
            out[f"{what} >= {REPORT_MIN_RATIO:g}x faster than import torch"] = (
                r[name]["wall"] >= REPORT_MIN_RATIO
            )
    return out


def table(rows: dict[str, dict[str, Any]], r: dict[str, Any]) -> str:
    head = (
        f"{'command':36} {'runs':>4} {'wall ms':>9} {'min ms':>8} {'cpu ms':>8}"
        "  torch/x (wall, cpu)"
    )
    lines = [head, "-" * len(head)]
    for name, row in rows.items():
        ratio = r.get(name)
        rt = f"{ratio['wall']:>6}x {ratio['cpu']:>6}x" if ratio else "  (baseline)"
        if name != BASELINE and not ratio:
            rt = ""
        lines.append(
            f"{name:36} {row['runs']:>4} {row['wall_ms_median']:>9.1f} {row['wall_ms_min']:>8.1f}"
            f" {row['cpu_ms_median']:>8.1f}  {rt}"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    gpu = None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        gpu = out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "gpu": gpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default=None, help="names the results file (default: host)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument(
        "--quick", action="store_true", help="skip collect_env and python -m bitsandbytes"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per process, seconds")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON")
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="run the children as this environment says (no bytecode cache if it says so)",
    )
    args = parser.parse_args()

    skip = {"python -m torch.utils.collect_env", "python -m bitsandbytes"} if args.quick else set()
    info = machine()
    print(f"bench_probe on {info['host']} ({info['cpus']} CPUs, load {info['load_avg']})")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-probe-pyc-") as pyc:
        env = child_env(not args.no_bytecode, pyc)
        info["bytecode_cache"] = not args.no_bytecode
        info["PYTHONDONTWRITEBYTECODE_here"] = os.environ.get("PYTHONDONTWRITEBYTECODE")
        rows = measure_processes(args.rounds, args.timeout, skip, env)
    in_process = measure_in_process(runs=20)
    r = ratios(rows)
    checks = budgets(rows, r)
    print(table(rows, r))
    print(
        f"probe_dict() in process: first call {in_process['first_call_ms']} ms"
        f" (imports included), warm {in_process['warm_ms_median']} ms;"
        f" heavy modules imported: {in_process['imported_heavy_modules'] or 'none'}"
    )
    for what, ok in checks.items():
        print(f"  [{'pass' if ok else 'FAIL'}] {what}")

    tag = args.tag or info["host"]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"probe-{tag}.json"
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": info,
        "baseline": BASELINE,
        "processes": rows,
        "ratios_vs_baseline": r,
        "probe_in_process": in_process,
        "budgets": checks,
    }
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
