"""How fast the doctor learns the machine, beside what people run today, in one run.

quantdoctor is installed non-editable in a throwaway venv (``_bench.make_venv``) and
timed as whole processes, warm, piped and on a pseudo-terminal:

- ``quantdoctor env --json`` and the bare report ``quantdoctor`` (cached);
- ``import quantdoctor`` (for the table).

Beside them, in the same interleaved rounds (min and median of each):

- ``python -c pass``: the interpreter's own start-up, the baseline of the ratios;
- the peers: ``import torch; torch.cuda.is_available()``, ``python -m
  torch.utils.collect_env``, ``python -m bitsandbytes`` (when installed), and
  torchruntime's ``info``, installed from the registry into a venv of its own (when
  that fails the row and the JSON say why, and the goals on it are unmeasured).

Goals (issue #17): ``env --json`` within 3x of ``python -c pass``; the terminal no
slower than piped by more than 20%; ``env --json`` and the bare report faster than
every peer. Exits 1 when a goal is missed or could not be measured. Also times
``probe_dict()`` inside the installed copy (first call, imports included, and warm).

    python benchmarks/bench_probe.py [--rounds N] [--slow-rounds N] [--out FILE]

Writes ``benchmarks/results/probe.json`` and the printed table as ``probe.txt``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import _bench as B

PASS = "baseline: python -c pass"
ENV, ENV_TTY = "quantdoctor: env --json", "quantdoctor: env --json [tty]"
REPORT, REPORT_TTY = "quantdoctor: report (cached)", "quantdoctor: report (cached) [tty]"
TORCHRUNTIME = "peer: torchruntime info"

IN_PROCESS = """
import json, statistics, sys, time
t = time.perf_counter()
from quantdoctor.doctor.probe import probe_dict
probe_dict()
first = (time.perf_counter() - t) * 1e3
warm = []
for _ in range(20):
    t = time.perf_counter()
    probe_dict()
    warm.append((time.perf_counter() - t) * 1e3)
heavy = sorted(m for m in ("torch", "rich", "pydantic", "yaml") if m in sys.modules)
print(json.dumps({"first_call_ms": round(first, 2), "warm_ms_median":
      round(statistics.median(warm), 3), "runs": 20, "heavy_modules_imported": heavy}))
"""


def jobs(py: Path, trt: Path | None, env: dict[str, str], slow: int) -> list[B.Job]:
    qd = [str(py), "-m", "quantdoctor"]
    out = [
        B.Job(PASS, [str(py), "-c", "pass"]),
        B.Job("quantdoctor: import quantdoctor", [str(py), "-c", "import quantdoctor"], env=env),
        B.Job(ENV, [*qd, "env", "--json"], env=env),
        B.Job(ENV_TTY, [*qd, "env", "--json"], "tty", env),
        B.Job(REPORT, qd, env=env),
        B.Job(REPORT_TTY, qd, "tty", env),
        B.Job(
            "peer: import torch; torch.cuda.is_available()",
            [str(py), "-c", "import torch; torch.cuda.is_available()"],
            rounds=slow,
        ),
        B.Job(
            "peer: python -m torch.utils.collect_env",
            [str(py), "-m", "torch.utils.collect_env"],
            rounds=slow,
        ),
    ]
    if has_module(py, "bitsandbytes"):
        bnb = [str(py), "-m", "bitsandbytes"]
        out.append(B.Job("peer: python -m bitsandbytes", bnb, rounds=slow))
    if trt:
        out.append(B.Job(TORCHRUNTIME, [str(trt), "-m", "torchruntime", "info"]))
    return out


def has_module(py: Path, name: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is None)"
    return subprocess.run([str(py), "-c", code], env=B.clean_env()).returncode == 0


def goals(figures: dict[str, Any]) -> list[B.Goal]:
    out = [
        B.Goal("env --json within 3x of python -c pass", ENV, "within", 3.0, PASS),
        B.Goal("env --json on a terminal within 1.2x of piped", ENV_TTY, "within", 1.2, ENV),
        B.Goal("report on a terminal within 1.2x of piped", REPORT_TTY, "within", 1.2, REPORT),
    ]
    peers = [k for k in figures if k.startswith("peer: ")]
    for measured, what in ((ENV, "env --json"), (REPORT, "the bare report")):
        for peer in peers:
            name = f"{what} faster than {peer.removeprefix('peer: ')}"
            out.append(B.Goal(name, measured, "faster", 1.0, peer))
    return out


def sanity(py: Path, env: dict[str, str]) -> None:
    """The commands measured do their work: env --json prints the machine as JSON."""
    proc = subprocess.run(
        [str(py), "-m", "quantdoctor", "env", "--json"], capture_output=True, env=env
    )
    data = json.loads(proc.stdout)
    assert proc.returncode == 0 and "python" in data and "packages" in data, proc.stderr[-300:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slow-rounds", type=int, default=3, help="for the second-long peers")
    parser.add_argument("--out", type=Path, default=B.RESULTS / "probe.json")
    args = parser.parse_args()
    out = args.out.resolve()
    started = B.machine()
    with B.workspace("qd-bench-probe-") as work:
        py = B.make_venv("installed", B.ROOT, work)
        trt, trt_note = B.make_peer_venv("torchruntime", ["torchruntime"], work)
        print(f"torchruntime: {trt_note}")
        env = B.clean_env(QUANTDOCTOR_CACHE_DIR=str(work / "cache"))
        sanity(py, env)
        figures = B.measure(jobs(py, trt, env, args.slow_rounds), args.rounds)
        if not trt:
            figures[TORCHRUNTIME] = B.unavailable(trt_note)
        done = subprocess.run(
            [str(py), "-c", IN_PROCESS], capture_output=True, text=True, env=env, check=True
        )
        in_process = json.loads(done.stdout)
    verdicts = B.judge(goals(figures), figures)
    notes = [
        f"torchruntime: {trt_note}",
        f"probe_dict() inside the installed copy: first call {in_process['first_call_ms']}"
        f" ms (imports included), warm {in_process['warm_ms_median']} ms; heavy modules"
        f" imported: {', '.join(in_process['heavy_modules_imported']) or 'none'}",
    ]
    extra = {"rounds": args.rounds, "torchruntime": trt_note, "probe_in_process": in_process}
    return B.finish(out, __doc__.splitlines()[0], started, figures, verdicts, PASS, notes, extra)


if __name__ == "__main__":
    raise SystemExit(main())
