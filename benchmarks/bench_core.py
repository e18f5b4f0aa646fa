"""quantdoctor's command line against its speed goals (issue #17), as ratios against
baselines measured in the same run. Exits 1 when a goal is missed, printing the goal
beside the figure.

    python benchmarks/bench_core.py [--rounds N] [--tree NAME=DIR ...] [--out FILE]

Each ``--tree`` (default: this checkout, as ``after``) is installed non-editable
(``pip install --no-deps``) into a throwaway venv of its own whose only other packages
are the project venv's (a ``.pth`` line: no editable finder, which costs every process
~11 ms). Every command runs as users run it, the venv's ``quantdoctor`` console script
(the report built afresh also as ``python -m quantdoctor``), as a whole process from
spawn to exit, piped and, where the goal is about it, on a pseudo-terminal; the rounds
interleave every command of every tree with the baselines, and each figure is the
minimum (the machine is shared: the minimum is the run least disturbed) with the median
beside it. Goals are judged on the first tree (``after``); other trees (``--tree
before=DIR``) are measured for the table.

Baselines: ``python -c pass`` (the interpreter's own start-up), ``python -m`` of an
empty package (what running any package with ``-m`` costs before its code: runpy and the
importlib it brings), ``import torch``, and torchruntime's ``info`` in its own venv
(installed from the registry, or the one given with ``--torchruntime PYTHON``; when it
cannot be installed the row says why). The timers, rounds, goal judging and files are
``benchmarks/_bench.py``'s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import _bench as B

ROOT = B.ROOT
sys.path.insert(0, str(ROOT / "tests"))

from envs import H100_LINUX as ENV  # noqa: E402  (the suite's literal H100 machine)

PASS, TORCH = "baseline: python -c pass", "baseline: import torch"
TRT = "baseline: torchruntime info"
#: What ``python -m PACKAGE`` costs before the package's code runs (runpy, importlib.util,
#: contextlib): the floor under a command run as ``python -m quantdoctor`` (no goal; shown
#: for reading the ``(python -m)`` row).
FLOOR = "baseline: python -m (an empty package)"

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


def fixtures(work: Path) -> dict[str, Path]:
    """The inputs: an env file, 1,000 env files, a Q8_0 GGUF, a 10,000-rule overlay."""
    env = work / "env.json"
    env.write_text(json.dumps(ENV))
    envs = work / "envs"
    envs.mkdir()
    for i in range(1000):
        gpu = {**ENV["gpus"][0], "cuda_cc": f"{7 + i % 3}.{i % 10}", "memory_gb": 8 + i % 80}
        (envs / f"m{i:04d}.json").write_text(json.dumps({**ENV, "gpus": [gpu]}))
    gguf_path = B.write_gguf_q8(work / "Q8_0.gguf")
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
    """name -> (argv, how): how is "piped", "tty", or "once" (slow ones: fewer rounds).

    Each command runs as users run it: the installed ``quantdoctor`` console script. The
    report built afresh is also run as ``python -m quantdoctor`` (no goal: runpy and the
    importlib, contextlib and collections it imports cost that form ``FLOOR`` before
    quantdoctor's code runs).

    ``check ... --no-cache`` is a check evaluated afresh (the 10,000-rule overlay's row is
    one: it measures loading the overlay, which a kept verdict would skip); a tree whose
    check keeps no verdicts (no such option) evaluates every check afresh, so there it is
    plain ``check``."""
    qd = [str(B.command(py))]
    helped = subprocess.run([*qd, "check", "--help"], capture_output=True, text=True)
    fresh = ["--no-cache"] if "--no-cache" in helped.stdout else []
    env_files = [a for p in sorted(f["envs"].iterdir()) for a in ("--env", str(p))]
    check = [*qd, "check", "--engine", "quanto", "--scheme", "qint8", "--offload", "balanced"]
    return {
        "env --json": ([*qd, "env", "--json"], "piped"),
        "report (cached)": (qd, "piped"),
        "report (cached) [tty]": (qd, "tty"),
        "report --no-cache": ([*qd, "--no-cache"], "piped"),
        "report --no-cache (python -m)": ([str(py), "-m", "quantdoctor", "--no-cache"], "piped"),
        "check --env F --json": ([*check, "--env", str(f["env"]), "--json"], "piped"),
        "check --env F --json --no-cache": (
            [*check, "--env", str(f["env"]), "--json", *fresh],
            "piped",
        ),
        "check --env F": ([*check, "--env", str(f["env"])], "piped"),
        "check --env F [tty]": ([*check, "--env", str(f["env"])], "tty"),
        "explain TEXT": (
            [*qd, "explain", "QBytesTensor.__new__() missing 5 required positional arguments"],
            "piped",
        ),
        "detect Q8_0.gguf": ([*qd, "detect", str(f["gguf"])], "piped"),
        "recommend --params 12B --vram 24 --env F": (
            [*qd, "recommend", "--params", "12B", "--vram", "24", "--env", str(f["env"])],
            "piped",
        ),
        "matrix 1000 envs --json": ([*qd, "matrix", *env_files, "--json"], "once"),
        "check --matrix 10k rules": (
            [*check, "--env", str(f["env"]), "--json", "--matrix", str(f["overlay"]), *fresh],
            "once",
        ),
    }


def _empty_package(work: Path) -> dict[str, str]:
    """The environment that runs ``python -m emptypkg``: a package that does nothing."""
    package = work / "floor" / "emptypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("")
    return B.clean_env(PYTHONPATH=str(work / "floor"))


def goals(head: str) -> list[B.Goal]:
    """GOALS as the shared module's goals on the figures of tree ``head``."""
    refs = {
        "x_pass": ("within", PASS),
        "x_torch": ("faster", TORCH),
        "ms": ("under_ms", None),
    }
    out = []
    for name, measured, limit, kind in GOALS:
        if kind == "x_piped":
            how, ref = "within", f"{head}: {measured.replace(' [tty]', '')}"
        else:
            how, ref = refs[kind]
        out.append(B.Goal(name, f"{head}: {measured}", how, limit, ref))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 21: the goals are judged on a ratio of minima, which a lucky baseline round moves;
    # on the shared 2-core machine the report built afresh read 2.48x to 3.00x python -c
    # pass in four runs of 21 rounds on one day (2.67x in one of 41)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--slow-rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument(
        "--torchruntime",
        metavar="PYTHON",
        help="a venv's python with torchruntime (default: installed from the registry)",
    )
    parser.add_argument("--out", default=str(B.RESULTS / "core.json"))
    args = parser.parse_args()
    trees = [t.split("=", 1) for t in args.tree] or [["after", str(ROOT)]]
    trees = [[name, str(Path(tree).resolve())] for name, tree in trees]
    out = Path(args.out).resolve()
    started = B.machine()
    with B.workspace("qd-bench-") as work:
        f = fixtures(work)
        pys = {name: B.make_venv(name, Path(tree), work) for name, tree in trees}
        first = next(iter(pys.values()))
        trt, trt_note = (
            (Path(args.torchruntime), "given with --torchruntime")
            if args.torchruntime
            else B.make_peer_venv("torchruntime", ["torchruntime"], work)
        )
        jobs = [
            B.Job(PASS, [str(first), "-c", "pass"]),
            B.Job(TORCH, [str(first), "-c", "import torch"]),
            B.Job(FLOOR, [str(first), "-m", "emptypkg"], env=_empty_package(work)),
        ]
        if trt:
            jobs.append(B.Job(TRT, [str(trt), "-m", "torchruntime", "info"]))
        for tree, py in pys.items():
            env = B.clean_env(QUANTDOCTOR_CACHE_DIR=str(work / f"cache-{tree}"))
            for name, (cmd, how) in commands(py, f).items():
                rounds = args.slow_rounds if how == "once" else None
                timer = "tty" if how == "tty" else "piped"
                jobs.append(B.Job(f"{tree}: {name}", cmd, timer, env, rounds))
        figures = B.measure(jobs, args.rounds)
    if not trt:
        figures[TRT] = B.unavailable(trt_note)
    head = trees[0][0]
    verdicts = B.judge(goals(head), figures)
    measured = {k: v for k, v in figures.items() if "min_ms" in v}
    pass_ms, torch_ms = figures[PASS]["min_ms"], figures[TORCH]["min_ms"]
    extra = {
        "trees": dict(trees),
        "torchruntime": trt_note,
        "ratios_vs_python_pass": {k: v["min_ms"] / pass_ms for k, v in measured.items()},
        "ratios_import_torch_over": {k: torch_ms / v["min_ms"] for k, v in measured.items()},
    }
    notes = [f"(goals judged on '{head}', minimum of each; torchruntime: {trt_note})"]
    what = "installed non-editable per tree; interleaved rounds; min and median"
    return B.finish(out, what, started, figures, verdicts, PASS, notes, extra)


if __name__ == "__main__":
    raise SystemExit(main())
