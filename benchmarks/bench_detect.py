"""How fast ``detect`` reads a model file, beside the readers people use, in one run.

Two real files, written by the real writers with tiny tensors (no downloads):

- ``flux1-dev.safetensors``: Flux.1-dev's 1,160 tensor names as released (diffusers
  layout, ``tests/data/layouts``), bf16 tensors of at most 4 per dimension, written by
  ``safetensors.torch.save_file``: a real header of real size over 21 KB of data;
- ``Q8_0.gguf``: eight 256 x 256 weights quantized to Q8_0 by gguf-py and written by
  ``gguf.GGUFWriter``.

quantdoctor is installed non-editable in a throwaway venv (``_bench.make_venv``).
Whole processes, warm, interleaved round by round (min and median of each):
``quantdoctor detect FILE`` piped and on a pseudo-terminal, beside ``python -c pass``
and the readers' own scripts: ``safetensors.safe_open`` reading the keys and every
tensor's shape, ``gguf.GGUFReader`` opening the file.

Then in one process of the installed venv, per call, interleaved: ``detect(path)`` beside
``safe_open`` (keys and shapes) and ``GGUFReader(path)`` (for the table; no goal).

Goals (issue #17): ``detect`` within 3x of ``python -c pass`` (whole process) on each
file; on a terminal within 1.2x of piped. Exits 1 when a goal is missed.

    python benchmarks/bench_detect.py [--rounds N] [--calls N] [--out FILE]

Writes ``benchmarks/results/detect.json`` and the printed table as ``detect.txt``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

import _bench as B

PASS = "baseline: python -c pass"
LAYOUT = B.ROOT / "tests" / "data" / "layouts" / "flux1-dev.json.gz"

#: what each reader does, as a script of its own (argv[1]: the file)
SAFE_OPEN = """import sys
from safetensors import safe_open
with safe_open(sys.argv[1], framework="numpy") as f:
    for key in f.keys():
        f.get_slice(key).get_shape()
"""
GGUF_READER = """import sys
from gguf import GGUFReader
GGUFReader(sys.argv[1])
"""

#: per call inside the installed copy: argv[1] safetensors, argv[2] GGUF, argv[3] calls
IN_PROCESS = """import json, sys, time, warnings
from pathlib import Path
from quantdoctor.files.detect import detect
from safetensors import safe_open
from gguf import GGUFReader
warnings.simplefilter("ignore")
st, gg, calls = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
def shapes(p):
    with safe_open(str(p), framework="numpy") as f:
        for key in f.keys():
            f.get_slice(key).get_shape()
fns = {"detect(flux1-dev.safetensors)": lambda: detect(st),
       "safe_open(flux1-dev.safetensors) keys+shapes": lambda: shapes(st),
       "detect(Q8_0.gguf)": lambda: detect(gg),
       "GGUFReader(Q8_0.gguf)": lambda: GGUFReader(str(gg))}
for fn in fns.values():
    fn()
out = {k: [] for k in fns}
for _ in range(calls):
    for k, fn in fns.items():
        t = time.perf_counter()
        fn()
        out[k].append((time.perf_counter() - t) * 1e3)
print(json.dumps(out))
"""


def write_files(work: Path) -> dict[str, Path]:
    import torch
    from safetensors.torch import save_file

    with gzip.open(LAYOUT, "rt", encoding="utf-8") as f:
        tensors = json.load(f)["tensors"]
    st = work / "flux1-dev.safetensors"
    tiny = {k: torch.zeros([min(d, 4) for d in shape]) for k, shape in tensors.items()}
    tiny = {k: t.to(torch.bfloat16) for k, t in tiny.items()}
    save_file(tiny, str(st), metadata={"format": "pt"})
    return {"safetensors": st, "gguf": B.write_gguf_q8(work / "Q8_0.gguf")}


def sanity(py: Path, files: dict[str, Path], env: dict[str, str]) -> None:
    """detect names what each file is (the figures are of detect doing its work)."""
    want = {"safetensors": ("safetensors", "flux"), "gguf": ("gguf", None)}
    for kind, path in files.items():
        proc = subprocess.run(
            [str(py), "-m", "quantdoctor", "detect", str(path), "--json"],
            capture_output=True, env=env, check=False,
        )  # fmt: skip
        data = json.loads(proc.stdout)
        fmt, arch = want[kind]
        assert data["format"] == fmt and (arch is None or data["architecture"] == arch), data


def jobs(py: Path, files: dict[str, Path], env: dict[str, str]) -> list[B.Job]:
    st, gg = str(files["safetensors"]), str(files["gguf"])
    out = [
        B.Job(PASS, [str(py), "-c", "pass"]),
        B.Job("reader: safe_open keys+shapes", [str(py), "-c", SAFE_OPEN, st]),
        B.Job("reader: gguf.GGUFReader", [str(py), "-c", GGUF_READER, gg]),
    ]
    for path in files.values():
        detect = [str(py), "-m", "quantdoctor", "detect", str(path)]
        out.append(B.Job(f"quantdoctor: detect {path.name}", detect, env=env))
        out.append(B.Job(f"quantdoctor: detect {path.name} [tty]", detect, "tty", env))
    return out


def goals(files: dict[str, Path]) -> list[B.Goal]:
    out = []
    for path in files.values():
        piped = f"quantdoctor: detect {path.name}"
        name = f"detect {path.name}"
        out.append(B.Goal(f"{name} within 3x of python -c pass", piped, "within", 3.0, PASS))
        tty = B.Goal(
            f"{name} on a terminal within 1.2x of piped", f"{piped} [tty]", "within", 1.2, piped
        )
        out.append(tty)
    return out


def per_call(py: Path, files: dict[str, Path], calls: int, env: dict[str, str]) -> dict[str, Any]:
    argv = [str(py), "-c", IN_PROCESS, str(files["safetensors"]), str(files["gguf"]), str(calls)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    return {
        k: {"min_ms": round(min(s), 3), "median_ms": round(statistics.median(s), 3), "n": len(s)}
        for k, s in json.loads(done.stdout).items()
    }


def per_call_table(rows: dict[str, dict[str, Any]]) -> str:
    n = next(iter(rows.values()))["n"]
    lines = [f"\nin one process, per call ({n} calls each, interleaved)"]
    lines.append(f"{'call':46} {'min ms':>8} {'median':>8}")
    for key, row in rows.items():
        lines.append(f"{key:46} {row['min_ms']:8.3f} {row['median_ms']:8.3f}")
    pairs = (("detect(flux1-dev.safetensors)", "safe_open(flux1-dev.safetensors) keys+shapes"),
             ("detect(Q8_0.gguf)", "GGUFReader(Q8_0.gguf)"))  # fmt: skip
    for ours, theirs in pairs:
        ratio = rows[ours]["min_ms"] / rows[theirs]["min_ms"]
        lines.append(f"{ours} takes {ratio:.2f}x {theirs} (minimum)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=30, help="per call in one process")
    parser.add_argument("--out", type=Path, default=B.RESULTS / "detect.json")
    args = parser.parse_args()
    out = args.out.resolve()
    started = B.machine()
    with B.workspace("qd-bench-detect-") as work:
        files = write_files(work)
        py = B.make_venv("installed", B.ROOT, work)
        env = B.clean_env(QUANTDOCTOR_CACHE_DIR=str(work / "cache"))
        sanity(py, files, env)
        figures = B.measure(jobs(py, files, env), args.rounds)
        calls = per_call(py, files, args.calls, env)
        sizes = {p.name: p.stat().st_size for p in files.values()}
    verdicts = B.judge(goals(files), figures)
    notes = [
        per_call_table(calls),
        f"files: {', '.join(f'{k} {v:,} bytes' for k, v in sizes.items())}",
    ]
    extra = {"rounds": args.rounds, "files": sizes, "per_call_in_process": calls}
    return B.finish(out, __doc__.splitlines()[0], started, figures, verdicts, PASS, notes, extra)


if __name__ == "__main__":
    raise SystemExit(main())
