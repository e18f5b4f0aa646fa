"""quantdoctor's command line against its speed goals (issue #17), as ratios against
baselines measured in the same run. Exits 1 when a goal is missed, printing the goal
beside the figure.

    python benchmarks/bench_core.py [--rounds N] [--tree NAME=DIR ...] [--out FILE]

Each ``--tree`` (default: this checkout, as ``after``) is installed non-editable
(``pip install --no-deps``) into a throwaway venv of its own whose only other packages
are the project venv's (a ``.pth`` line: no editable finder, which costs every process
~11 ms). Every command runs as a whole process from spawn to exit, piped and, where the
goal is about it, on a pseudo-terminal; the rounds interleave every command of every
tree with the baselines, and each figure is the minimum (the machine is shared: the
minimum is the run least disturbed) with the median beside it. Goals are judged on the
first tree (``after``); other trees (``--tree before=DIR``) are measured for the table.

Baselines: ``python -c pass`` (the interpreter's own start-up), ``import torch``, and
torchruntime's ``info`` (in its own venv, ``--torchruntime PYTHON``) when given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pty
import select
import shutil
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

#: goal -> (description, check on the figures) ; figures are min ms of the first tree
GOALS: list[tuple[str, str, float, str]] = [
    # (name, command measured, limit, kind): kind "x_pass" = at most limit x python -c pass,
    # "x_torch" = at least limit x faster than import torch, "ms" = under limit ms,
    # "x_piped" = terminal at most limit x the same command piped
    ("check within 3x of python -c pass", "check --env F --json", 3.0, "x_pass"),
    ("explain within 3x of python -c pass", "explain TEXT", 3.0, "x_pass"),
    ("detect within 3x of python -c pass", "detect Q8_0.gguf", 3.0, "x_pass"),
    ("uncached report within 3x of python -c pass", "report --no-cache", 3.0, "x_pass"),
    ("cached report within 2x of python -c pass", "report (cached)", 2.0, "x_pass"),
    ("env --json within 3x of python -c pass", "env --json", 3.0, "x_pass"),
    ("uncached report >= 20x faster than import torch", "report --no-cache", 20.0, "x_torch"),
    ("matrix with 1,000 environments under 5 s", "matrix 1000 envs --json", 5000.0, "ms"),
    ("10,000 overlay rules load under 1 s (cached)", "check --matrix 10k rules", 1000.0, "ms"),
    ("report on a terminal within 1.2x of piped", "report (cached) [tty]", 1.2, "x_piped"),
    ("check on a terminal within 1.2x of piped", "check --env F [tty]", 1.2, "x_piped"),
]


def run_piped(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    return (time.perf_counter() - start) * 1e3


def run_tty(cmd: list[str], env: dict[str, str]) -> float:
    """The command with stdout and stderr on a pseudo-terminal, read until it exits."""
    master, slave = pty.openpty()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    while True:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
        elif proc.poll() is not None:
            break
    proc.wait()
    elapsed = (time.perf_counter() - start) * 1e3
    os.close(master)
    return elapsed


def make_venv(name: str, tree: Path, work: Path) -> Path:
    """A throwaway venv with ``tree`` installed non-editable; returns its python."""
    base = Path(sys.base_prefix) / "bin" / "python3"
    venv = work / f"venv-{name}"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # the project venv's packages (torch, pydantic ...), without its .pth files
    import sysconfig

    (site / "_project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    py = venv / "bin" / "python"
    src = work / f"src-{name}"
    shutil.copytree(tree, src, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    out = subprocess.run(
        [str(py), "-c", "import quantdoctor, sys; print(quantdoctor.__file__)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert str(site) in out.stdout, out.stdout  # the installed copy, not a checkout
    subprocess.run([str(py), "-m", "compileall", "-q", str(site / "quantdoctor")], check=False)
    return py


def fixtures(work: Path) -> dict[str, Path]:
    """The inputs: an env file, 1,000 env files, a Q8_0 GGUF, a 10,000-rule overlay."""
    env = work / "env.json"
    env.write_text(json.dumps(ENV))
    envs = work / "envs"
    envs.mkdir()
    for i in range(1000):
        gpu = {**ENV["gpus"][0], "cuda_cc": f"{7 + i % 3}.{i % 10}", "memory_gb": 8 + i % 80}
        (envs / f"m{i:04d}.json").write_text(json.dumps({**ENV, "gpus": [gpu]}))
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    gguf_path = work / "Q8_0.gguf"
    writer = GGUFWriter(str(gguf_path), "flux")
    rng = np.random.default_rng(0)
    for i in range(8):
        w = rng.standard_normal((256, 256)).astype(np.float32)
        q = quantize(w, GGMLQuantizationType.Q8_0)
        writer.add_tensor(
            f"double_blocks.{i}.img_attn.qkv.weight", q, raw_dtype=GGMLQuantizationType.Q8_0
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    overlay = work / "rules10k.yaml"  # flow style: 10,000 rules within the 1 MiB overlay limit
    lines = ["rules:"]
    for i in range(10000):
        lines.append(
            f"- {{id: b.r{i}, when: {{fact: gpu.memory_gb, lt: {i % 97}}}, severity: warn, "
            "message: m, source: b}"
        )
    overlay.write_text("\n".join(lines) + "\n")
    return {"env": env, "envs": envs, "gguf": gguf_path, "overlay": overlay}


def commands(py: Path, f: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, how): how is "piped", "tty", or "once" (slow ones: fewer rounds)."""
    qd = [str(py), "-m", "quantdoctor"]
    env_files = [a for p in sorted(f["envs"].iterdir()) for a in ("--env", str(p))]
    check = [*qd, "check", "--engine", "quanto", "--scheme", "qint8", "--offload", "balanced"]
    return {
        "env --json": ([*qd, "env", "--json"], "piped"),
        "report (cached)": (qd, "piped"),
        "report (cached) [tty]": (qd, "tty"),
        "report --no-cache": ([*qd, "--no-cache"], "piped"),
        "check --env F --json": ([*check, "--env", str(f["env"]), "--json"], "piped"),
        "check --env F": ([*check, "--env", str(f["env"])], "piped"),
        "check --env F [tty]": ([*check, "--env", str(f["env"])], "tty"),
        "explain TEXT": (
            [*qd, "explain", "QBytesTensor.__new__() missing 5 required positional arguments"],
            "piped",
        ),
        "detect Q8_0.gguf": ([*qd, "detect", str(f["gguf"])], "piped"),
        "matrix 1000 envs --json": ([*qd, "matrix", *env_files, "--json"], "once"),
        "check --matrix 10k rules": (
            [*check, "--env", str(f["env"]), "--json", "--matrix", str(f["overlay"])],
            "once",
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--slow-rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--torchruntime", metavar="PYTHON", help="a venv's python with torchruntime")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "core.json"))
    args = parser.parse_args()
    trees = [t.split("=", 1) for t in args.tree] or [["after", str(ROOT)]]
    trees = [[name, str(Path(tree).resolve())] for name, tree in trees]
    args.out = str(Path(args.out).resolve())
    with tempfile.TemporaryDirectory(prefix="qd-bench-") as tmp:
        work = Path(tmp)
        os.chdir(work)  # never the checkout: python -m would import it from the cwd
        f = fixtures(work)
        pys = {name: make_venv(name, Path(tree), work) for name, tree in trees}
        first = next(iter(pys.values()))
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDOCTOR_")}
        base_env.pop("PYTHONPATH", None)
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: .pyc written and reused
        baselines = {
            "python -c pass": ([str(first), "-c", "pass"], "piped"),
            "import torch": ([str(first), "-c", "import torch"], "piped"),
        }
        if args.torchruntime:
            baselines["torchruntime info"] = (
                [args.torchruntime, "-m", "torchruntime", "info"],
                "piped",
            )
        jobs: list[tuple[str, str, list[str], str, dict[str, str]]] = []
        for name, cmd in baselines.items():
            jobs.append(("baseline", name, cmd[0], cmd[1], base_env))
        for tree, py in pys.items():
            cache = work / f"cache-{tree}"
            env = {**base_env, "QUANTDOCTOR_CACHE_DIR": str(cache)}
            for name, (cmd, how) in commands(py, f).items():
                jobs.append((tree, name, cmd, how, env))
        samples: dict[tuple[str, str], list[float]] = {(j[0], j[1]): [] for j in jobs}
        for _, _, cmd, _, env in jobs:  # warm-up: caches written, files in the page cache
            subprocess.run(cmd, capture_output=True, env=env, check=False)
        for r in range(args.rounds):
            for tree, name, cmd, how, env in jobs:
                if how == "once" and r >= args.slow_rounds:
                    continue
                timer = run_tty if how == "tty" else run_piped
                samples[(tree, name)].append(timer(cmd, env))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    figures = {
        f"{t}: {n}": {"min_ms": min(s), "median_ms": statistics.median(s), "n": len(s)}
        for (t, n), s in samples.items()
    }
    pass_ms = figures["baseline: python -c pass"]["min_ms"]
    torch_ms = figures["baseline: import torch"]["min_ms"]
    print(f"\n{'measurement':48} {'min ms':>9} {'median':>9} {'x pass':>7} {'torch/x':>8}")
    for key, fig in figures.items():
        print(
            f"{key:48} {fig['min_ms']:9.1f} {fig['median_ms']:9.1f} "
            f"{fig['min_ms'] / pass_ms:7.2f} {torch_ms / fig['min_ms']:8.1f}"
        )
    head = trees[0][0]
    results = []
    print(f"\ngoals (judged on '{head}', minimum of each)")
    for goal, measured, limit, kind in GOALS:
        ms = figures[f"{head}: {measured}"]["min_ms"]
        if kind == "x_pass":
            value, ok, shown = ms / pass_ms, ms / pass_ms <= limit, f"{ms / pass_ms:.2f}x pass"
        elif kind == "x_torch":
            value = torch_ms / ms
            ok, shown = value >= limit, f"{value:.1f}x faster than import torch"
        elif kind == "x_piped":
            piped = figures[f"{head}: {measured.replace(' [tty]', '')}"]["min_ms"]
            value = ms / piped
            ok, shown = value <= limit, f"{value:.2f}x piped"
        else:
            value, ok, shown = ms, ms < limit, f"{ms:.0f} ms"
        results.append({"goal": goal, "figure": shown, "value": value, "met": ok})
        print(f"  {'met ' if ok else 'MISS'}  {goal:52} {shown}")
    out = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load": os.getloadavg(),
        },
        "how": "installed non-editable per tree; interleaved rounds; min and median per command",
        "trees": dict(trees),
        "figures": figures,
        "ratios_vs_python_pass": {k: v["min_ms"] / pass_ms for k, v in figures.items()},
        "ratios_import_torch_over": {k: torch_ms / v["min_ms"] for k, v in figures.items()},
        "goals": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0 if all(r["met"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
