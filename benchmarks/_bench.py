"""What the benchmarks share: installed trees, whole-process timers, interleaved rounds,
goals judged on the figures, the table and the results files.

A benchmark builds its jobs, measures them, judges its goals and exits with the verdict::

    import _bench as B

    py = B.make_venv("installed", B.ROOT, work)            # quantdoctor, non-editable
    peer, note = B.make_peer_venv("torchruntime", ["torchruntime"], work)
    jobs = [B.Job("baseline: python -c pass", [str(py), "-c", "pass"]),
            B.Job("quantdoctor: env --json", [str(py), "-m", "quantdoctor", "env", "--json"]),
            B.Job("quantdoctor: env --json [tty]", [...], how="tty")]
    figures = B.measure(jobs, rounds=3)
    if peer is None:
        figures["peer: torchruntime info"] = B.unavailable(note)
    goals = [B.Goal("env --json within 3x of python -c pass", "quantdoctor: env --json",
                    "within", 3.0, "baseline: python -c pass")]
    verdicts = B.judge(goals, figures)
    raise SystemExit(B.finish(out, "what was measured", started, figures, verdicts,
                              baseline="baseline: python -c pass", notes=[...]))

(``started = B.machine()`` before measuring; ``finish`` prints the table with the goals
beside the figures, writes ``out`` (JSON) and the printed text beside it (``.txt``) and
returns the exit code.)

Figures are milliseconds of whole processes, spawn to exit. Every goal is judged on the
minimum of its figure (the machine is shared: the minimum is the run least disturbed);
the median is shown beside it. A goal whose figure could not be measured is
``unmeasured`` and fails the run like a missed one: a benchmark never passes on a
figure it did not take. :func:`judge` is a pure function of the figures (tested in
``tests/test_benchmarks.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import pty
import select
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

#: how a goal compares its figure: ``within``: measured <= limit x reference;
#: ``faster``: reference >= limit x measured; ``under_ms``: measured < limit ms.
KINDS = ("within", "faster", "under_ms")


# ------------------------------------------------------------------ installed trees


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without what would change what a child runs: no ``PYTHONPATH``
    (a checkout would win over the installed copy), no ``QUANTDOCTOR_*`` settings, and
    bytecode written and reused as after ``pip install``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDOCTOR_")}
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def _bare_venv(venv: Path) -> Path:
    base = Path(sys.base_prefix) / "bin" / "python3"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


def make_venv(name: str, tree: Path, work: Path) -> Path:
    """A throwaway venv under ``work`` with ``tree`` installed non-editable
    (``pip install --no-deps``) with its ``quantdoctor`` console script (``command``); its
    other packages are this venv's (one ``.pth`` line, without this venv's own ``.pth``
    files: no editable finder, which costs every process ~11 ms). Returns its python."""
    py = _bare_venv(work / f"venv-{name}")
    site = next((work / f"venv-{name}" / "lib").glob("python3*/site-packages"))
    (site / "_project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    src = work / f"src-{name}"
    shutil.copytree(tree, src, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    out = subprocess.run(
        [str(py), "-c", "import quantdoctor; print(quantdoctor.__file__)"],
        capture_output=True, text=True, check=True, env=clean_env(),
    )  # fmt: skip
    assert str(site) in out.stdout, out.stdout  # the installed copy, not a checkout
    subprocess.run([str(py), "-m", "compileall", "-q", str(site / "quantdoctor")], check=False)
    # the console script pip wrote (under --target, for the interpreter that ran pip), as
    # pip writes it into a venv: the same text under this venv's python
    written = (site / "bin" / "quantdoctor").read_text().split("\n", 1)[1]
    script = command(py)
    script.write_text(f"#!{py}\n{written}")
    script.chmod(0o755)
    return py


def command(py: Path) -> Path:
    """The ``quantdoctor`` console script of a venv ``make_venv`` made (what users run)."""
    return py.parent / "quantdoctor"


def make_peer_venv(
    name: str, requirements: Sequence[str], work: Path, timeout: float = 600.0
) -> tuple[Path | None, str]:
    """A throwaway venv of its own (nothing of this venv) with ``requirements`` installed
    from the package registry. Returns (its python, what was installed) or (None, why
    not): a peer that cannot be installed is reported as such, never stood in for."""
    py = _bare_venv(work / f"venv-{name}")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
             "--disable-pip-version-check", *requirements],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"pip install {' '.join(requirements)} ran past {timeout:.0f} s"
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
        why = lines[-1] if lines else proc.stderr.strip()[-300:]
        return None, f"pip install {' '.join(requirements)} failed: {why}"
    names = [r.split("=")[0].split("<")[0].split(">")[0].strip() for r in requirements]
    code = "import sys, importlib.metadata as m; print(*(n + ' ' + m.version(n) for n in sys.argv[1:]), sep=', ')"  # noqa: E501
    got = subprocess.run([str(py), "-c", code, *names], capture_output=True, text=True)
    return py, f"{got.stdout.strip()} from the registry, in its own venv"


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[Path]:
    """A throwaway folder, also the working directory while it lasts: never the checkout,
    from which ``python -m quantdoctor`` would import the source instead of the install."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(here)


# ---------------------------------------------------------------------------- timers


def run_piped(
    cmd: Sequence[str], env: Mapping[str, str], timeout: float = 300.0
) -> tuple[float, int]:
    """(ms from spawn to exit, exit code) with stdout and stderr on pipes, read to the end.
    A timer kills a child that outlives ``timeout``; the wait itself blocks (a wait with a
    timeout polls with sleeps that round short processes up)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=dict(env),
    )  # fmt: skip
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        proc.communicate()
    finally:
        timer.cancel()
    return (time.perf_counter() - start) * 1e3, proc.returncode


def run_tty(
    cmd: Sequence[str], env: Mapping[str, str], timeout: float = 300.0
) -> tuple[float, int]:
    """(ms from spawn to exit, exit code) with stdout and stderr on a pseudo-terminal,
    read until the child exits."""
    master, slave = pty.openpty()
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=dict(env)
    )
    os.close(slave)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    if not os.read(master, 65536):
                        break
                except OSError:  # EIO: the child closed the terminal
                    break
            elif proc.poll() is not None:
                break
        proc.wait()
    finally:
        timer.cancel()
    elapsed = (time.perf_counter() - start) * 1e3
    os.close(master)
    return elapsed, proc.returncode


TIMERS = {"piped": run_piped, "tty": run_tty}


# --------------------------------------------------------------------------- rounds


@dataclass(frozen=True)
class Job:
    """One whole process to time. ``key`` names its row ("baseline: python -c pass",
    "quantdoctor: env --json [tty]"); ``how`` is "piped" or "tty"; ``env`` defaults to
    :func:`clean_env`; ``rounds`` caps the timed rounds of a slow command (None: all)."""

    key: str
    argv: Sequence[str]
    how: str = "piped"
    env: Mapping[str, str] | None = None
    rounds: int | None = None


def measure(jobs: Sequence[Job], rounds: int, warmup: bool = True) -> dict[str, dict[str, Any]]:
    """Times every job once per round, the rounds interleaving every job (load from other
    work falls on all alike; the starting job rotates each round). One untimed run of each
    first warms the page cache, the bytecode and quantdoctor's caches. Returns
    key -> {min_ms, median_ms, n, exit_codes, how, argv}."""
    envs = [dict(j.env) if j.env is not None else clean_env() for j in jobs]
    if warmup:
        for job, env in zip(jobs, envs, strict=True):
            TIMERS[job.how](job.argv, env)
    samples: dict[str, list[tuple[float, int]]] = {j.key: [] for j in jobs}
    for r in range(rounds):
        order = list(range(len(jobs)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for i in order:
            job = jobs[i]
            if job.rounds is None or len(samples[job.key]) < job.rounds:
                samples[job.key].append(TIMERS[job.how](job.argv, envs[i]))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    return {
        j.key: {
            "min_ms": round(min(ms for ms, _ in samples[j.key]), 2),
            "median_ms": round(statistics.median(ms for ms, _ in samples[j.key]), 2),
            "n": len(samples[j.key]),
            "exit_codes": sorted({rc for _, rc in samples[j.key]}),
            "how": j.how,
            "argv": [Path(a).name if os.path.exists(a) else a for a in j.argv],
        }
        for j in jobs
    }


def write_gguf_q8(path: Path, tensors: int = 8, arch: str = "flux") -> Path:
    """A small GGUF written by ``gguf.GGUFWriter``: ``tensors`` Q8_0 weights of 256 x 256
    quantized by gguf-py (Flux's key names)."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    writer = GGUFWriter(str(path), arch)
    rng = np.random.default_rng(0)
    for i in range(tensors):
        w = rng.standard_normal((256, 256)).astype(np.float32)
        q = quantize(w, GGMLQuantizationType.Q8_0)
        name = f"double_blocks.{i}.img_attn.qkv.weight"
        writer.add_tensor(name, q, raw_dtype=GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def unavailable(why: str) -> dict[str, Any]:
    """The figure of something that could not be measured, and why."""
    return {"unavailable": why}


# ---------------------------------------------------------------------------- goals


@dataclass(frozen=True)
class Goal:
    """``measured`` (a figure's key) against ``limit``: ``within``: at most limit x the
    ``reference`` figure; ``faster``: the reference takes at least limit x as long;
    ``under_ms``: under limit milliseconds (no reference)."""

    name: str
    measured: str
    kind: str
    limit: float
    reference: str | None = None


def judge(goals: Sequence[Goal], figures: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each goal's verdict on the minimum of its figures: status "met", "missed" or
    "unmeasured" (a figure missing or unavailable), the value, and the figure as text
    with the goal beside it. Pure: figures in, verdicts out."""
    verdicts = []
    for goal in goals:
        if goal.kind not in KINDS:
            raise ValueError(f"unknown goal kind {goal.kind!r} (known: {', '.join(KINDS)})")
        names = [goal.measured] + ([goal.reference] if goal.reference else [])
        if goal.kind != "under_ms" and not goal.reference:
            raise ValueError(f"goal {goal.name!r}: kind {goal.kind} needs a reference")
        missing = [n for n in names if "min_ms" not in figures.get(n, {})]
        value: float | None = None
        if missing:
            why = "; ".join(
                f"{n}: {figures.get(n, {}).get('unavailable', 'not measured')}" for n in missing
            )
            status, text = "unmeasured", f"not measured ({why})"
        else:
            ms = float(figures[goal.measured]["min_ms"])
            ref = float(figures[goal.reference]["min_ms"]) if goal.reference else 0.0
            short = (goal.reference or "").split(": ", 1)[-1]
            if goal.kind == "within":
                value = ms / ref
                ok = value <= goal.limit
                text = f"{value:.2f}x {short} (goal <= {goal.limit:g}x)"
            elif goal.kind == "faster":
                value = ref / ms
                ok = value >= goal.limit
                text = f"{value:.2f}x faster than {short} (goal >= {goal.limit:g}x)"
            else:
                value = ms
                ok = ms < goal.limit
                text = f"{ms:.0f} ms (goal < {goal.limit:g} ms)"
            status = "met" if ok else "missed"
        verdict = {"status": status, "met": status == "met", "value": value, "figure": text}
        verdicts.append({**asdict(goal), **verdict})
    return verdicts


def exit_code(verdicts: Sequence[Mapping[str, Any]]) -> int:
    """0 when every goal is met; 1 when any is missed or could not be measured, or when
    there was no goal to judge."""
    return 0 if verdicts and all(v["status"] == "met" for v in verdicts) else 1


# ------------------------------------------------------------------------- printing

_MARK = {"met": "met ", "missed": "MISS", "unmeasured": "N/A "}


def format_table(
    figures: Mapping[str, Mapping[str, Any]],
    verdicts: Sequence[Mapping[str, Any]],
    baseline: str,
) -> str:
    """The figures (min, median, x ``baseline``) with each goal's verdict beside the figure
    it judges, then the goals one a line."""
    base = figures.get(baseline, {}).get("min_ms")
    width = max(len(k) for k in figures) + 1
    head = f"{'measurement':{width}} {'n':>3} {'min ms':>9} {'median':>9} {'x base':>7}  goals"
    lines = [head, "-" * len(head)]
    for key, fig in figures.items():
        beside = [
            f"{_MARK[v['status']].strip()}: {v['figure']}" for v in verdicts if v["measured"] == key
        ]
        if "min_ms" not in fig:
            lines.append(f"{key:{width}} not measured: {fig.get('unavailable', '?')}")
            continue
        rcs = fig.get("exit_codes", [0])
        note = f" [exit {','.join(map(str, rcs))}]" if rcs != [0] else ""
        ratio = f"{fig['min_ms'] / base:7.2f}" if base else f"{'':7}"
        first = f"{key:{width}} {fig['n']:>3} {fig['min_ms']:9.1f} {fig['median_ms']:9.1f} {ratio}"
        lines.append(f"{first}  {beside[0] if beside else ''}{note}")
        lines.extend(f"{'':{len(first)}}  {b}" for b in beside[1:])
    lines.append(f"\ngoals (x base = min / min of '{baseline}')")
    named = max((len(v["name"]) for v in verdicts), default=0)
    for v in verdicts:
        lines.append(f"  {_MARK[v['status']]}  {v['name']:{named}}  {v['figure']}")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where the figures were taken."""
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def write_results(out: Path, payload: Mapping[str, Any], text: str | None = None) -> None:
    """``payload`` as JSON at ``out`` and, when given, the printed ``text`` beside it
    (same name, ``.txt``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if text is not None:
        out.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    print(f"wrote {out}" + (f" and {out.with_suffix('.txt').name}" if text is not None else ""))


def finish(
    out: Path,
    what: str,
    started: Mapping[str, Any],
    figures: Mapping[str, Mapping[str, Any]],
    verdicts: Sequence[Mapping[str, Any]],
    baseline: str,
    notes: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> int:
    """Prints the table (goals beside the figures), the ``notes`` and the load at the start
    (``started``, from :func:`machine`) and now; writes ``out`` (JSON: what, machine,
    figures, goals and ``extra``) with the printed text beside it; returns the exit code."""
    now = machine()
    text = "\n".join(
        [
            format_table(figures, verdicts, baseline),
            *notes,
            f"machine: {started['cpus']} CPUs, load {started['load_avg']} at the start,"
            f" {now['load_avg']} at the end",
        ]
    )
    print(text)
    payload = {
        "what": what,
        "machine": dict(started),
        "load_avg_at_end": now["load_avg"],
        **(extra or {}),
        "figures": figures,
        "goals": list(verdicts),
    }
    write_results(out, payload, text)
    return exit_code(verdicts)
