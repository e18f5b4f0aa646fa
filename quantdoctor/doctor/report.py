"""The doctor report: built as plain data from facts and verdicts, then rendered.

Deciding lives in ``rules/`` (the verdicts); this module only groups them so the report
stays short, and renders the same data as text (rich, colour only on a terminal) or
JSON. Nothing here re-states a compatibility rule: what blocks a plan is always a
finding of the evaluator, named by its rule id.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from quantdoctor.rules.vocab import OFFLOADS

if TYPE_CHECKING:
    from quantdoctor.rules.matrix import Matrix
    from quantdoctor.rules.models import Verdict

#: Marks, as flutter doctor prints them; ``-`` is a neutral fact (nothing to fix).
MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "unknown": "?", "none": "-"}
STYLES = {"ok": "green", "warn": "yellow", "fail": "red", "unknown": "magenta", "none": "dim"}

EXIT_OK, EXIT_BLOCKED, EXIT_UNKNOWN = 0, 1, 3

#: Where to get a torch build for a GPU, per vendor (PyTorch's install selector).
TORCH_INSTALL = "pip install torch  (https://pytorch.org/get-started/locally/ picks the build)"

Line = list[tuple[str, str]]  # (text, rich style) segments of one output line


# ------------------------------------------------------------------------- checks


def _check(
    name: str, mark: str, text: str, fix: str | None = None, details: Sequence[str] = ()
) -> dict[str, Any]:
    return {"check": name, "mark": mark, "text": text, "details": list(details), "fix": fix}


def _gpu_text(gpu: Mapping[str, Any]) -> str:
    parts = []
    if gpu.get("cuda_cc"):
        parts.append(f"compute capability {gpu['cuda_cc']}")
    if gpu.get("gfx"):
        parts.append(gpu["gfx"])
    if gpu.get("memory_gb") is not None:
        parts.append(f"{gpu['memory_gb']:g} GiB")
    if gpu.get("driver"):
        parts.append(f"driver {gpu['driver']}")
    name = gpu.get("name") or f"{gpu.get('vendor') or 'unknown'} GPU"
    return name + (f" ({', '.join(parts)})" if parts else "")


def _torch_build(torch: Mapping[str, Any]) -> str:
    if torch.get("hip"):
        return f"ROCm {torch['hip']} build"
    if torch.get("cuda"):
        return f"CUDA {torch['cuda']} build"
    if torch.get("xpu"):
        return "XPU build"
    if "cuda" in torch:
        return "CPU build"
    return "build unknown"


def environment_checks(env: Mapping[str, Any], device: int = 0) -> list[dict[str, Any]]:
    """One check per fact group: system, torch, GPUs, backend, Triton, and what is unknown."""
    notes: dict[str, str] = dict(env.get("notes") or {})
    checks: list[dict[str, Any]] = []

    os_name = {"linux": "Linux", "windows": "Windows", "darwin": "macOS"}.get(
        env.get("os") or "", env.get("os") or "unknown OS"
    )
    wsl = " (WSL)" if env.get("wsl") else ""
    checks.append(
        _check(
            "system",
            "ok",
            f"{os_name}{wsl} {env.get('arch', '')}, Python {env.get('python', 'unknown')}".replace(
                "  ", " "
            ),
        )
    )

    if "torch" not in env:
        checks.append(_check("torch", "unknown", "torch: unknown", details=_pop(notes, "torch")))
    elif env["torch"] is None:
        checks.append(_check("torch", "fail", "torch is not installed", fix=TORCH_INSTALL))
    else:
        torch = env["torch"]
        version = torch.get("version", "(version unknown)")
        details = _pop(notes, "torch")
        mark = "unknown" if details else "ok"
        checks.append(
            _check("torch", mark, f"torch {version}: {_torch_build(torch)}", None, details)
        )

    gpus = env.get("gpus")
    if gpus is None and "gpus" not in env:
        checks.append(_check("gpus", "unknown", "GPUs: unknown", details=_pop(notes, "gpus")))
    elif not gpus:
        checks.append(_check("gpus", "warn", "no GPU found: models run on the CPU"))
    else:
        for i, gpu in enumerate(gpus):
            chosen = "  <- runs the model" if i == device and len(gpus) > 1 else ""
            checks.append(_check(f"gpu.{i}", "ok", f"GPU {i}: {_gpu_text(gpu)}{chosen}"))
        if "gpus" in notes:
            checks.append(_check("gpus", "unknown", notes.pop("gpus")))

    checks.append(_backend_check(env, notes, device))
    checks.append(_triton_check(env, notes))
    for fact, why in sorted(notes.items()):
        checks.append(_check(fact, "unknown", f"{fact}: unknown", details=[why]))
    return checks


def _pop(notes: dict[str, str], prefix: str) -> list[str]:
    keys = [k for k in notes if k == prefix or k.startswith(prefix + ".")]
    return [f"{k}: {notes.pop(k)}" for k in sorted(keys)]


def _backend_check(env: Mapping[str, Any], notes: dict[str, str], device: int) -> dict[str, Any]:
    if "backend" not in env:
        return _check("backend", "unknown", "backend: unknown", details=_pop(notes, "backend"))
    backend = env["backend"]
    if backend is None:
        return _check("backend", "none", "backend: none (no torch)")
    torch = env.get("torch") or {}
    gpus = env.get("gpus") or []
    vendors = {g.get("vendor") for g in gpus}
    # A GPU that the installed torch cannot use: the most common broken install.
    if backend in ("cpu", "openvino") and torch and "cuda" in torch:
        if "nvidia" in vendors:
            return _check(
                "backend",
                "warn",
                f"backend: {backend}, though an NVIDIA GPU is here: torch is a CPU build",
                fix="pip install torch --index-url https://download.pytorch.org/whl/cu128",
            )
        if "amd" in vendors and env.get("os") == "linux":
            return _check(
                "backend",
                "warn",
                f"backend: {backend}, though an AMD GPU is here: torch is not a ROCm build",
                fix="pip install torch --index-url https://download.pytorch.org/whl/rocm6.4",
            )
    return _check("backend", "ok", f"backend: {backend}")


def _triton_check(env: Mapping[str, Any], notes: dict[str, str]) -> dict[str, Any]:
    if "triton" not in env:
        return _check("triton", "unknown", "triton: unknown", details=_pop(notes, "triton"))
    triton = env["triton"]
    if triton is None:
        return _check("triton", "none", "triton: not installed")
    version = triton.get("version", "(version unknown)")
    works = triton.get("works")
    why = _pop(notes, "triton")
    if works is True:
        return _check("triton", "ok", f"triton {version}: compiles and runs a kernel here")
    if works is False:
        return _check("triton", "fail", f"triton {version} does not run a kernel here", None, why)
    return _check(
        "triton",
        "ok",
        f"triton {version} (not tested: `quantdoctor --deep` compiles a kernel)",
        details=why,
    )


# ------------------------------------------------------------------------ engines


def _offloads_text(offloads: Iterable[str]) -> str:
    chosen = [o for o in OFFLOADS if o in set(offloads)]
    if len(chosen) == len(OFFLOADS):
        return "every offload"
    return "offload " + ", ".join(chosen)


def _group(pairs: Sequence[tuple[str, str]], schemes_order: Sequence[str]) -> list[dict[str, Any]]:
    """(scheme, offload) pairs -> few groups: schemes that share the same offloads."""
    by_scheme: dict[str, set[str]] = {}
    for scheme, offload in pairs:
        by_scheme.setdefault(scheme, set()).add(offload)
    groups: dict[frozenset[str], list[str]] = {}
    for scheme in schemes_order:
        if scheme in by_scheme:
            groups.setdefault(frozenset(by_scheme[scheme]), []).append(scheme)
    return [
        {"schemes": schemes, "offloads": [o for o in OFFLOADS if o in offloads]}
        for offloads, schemes in groups.items()
    ]


def _describe(groups: Sequence[Mapping[str, Any]], all_schemes: Sequence[str]) -> str:
    """``nf4, fp4 with offload sequential; int8 with every offload``."""
    parts = []
    for g in groups:
        every = len(g["schemes"]) == len(all_schemes) and len(all_schemes) > 1
        schemes = "every scheme" if every else ", ".join(g["schemes"])
        parts.append(f"{schemes} with {_offloads_text(g['offloads'])}")
    return "; ".join(parts)


def engine_summary(
    engine: str,
    package: str,
    install: str,
    schemes: Sequence[str],
    verdicts: Sequence[Verdict],
    env: Mapping[str, Any],
) -> dict[str, Any]:
    """For one engine: the plans that work, and per rule the plans it blocks, leaves
    undecided, or lets through with a caveat. Each rule appears once, with its plans."""
    packages = env.get("packages") or {}
    installed: bool | None = None
    version = None
    if package in packages:
        version = packages[package]
        installed = version is not None
    # The probe notes a package that is there but whose version it could not read.
    unreadable = (env.get("notes") or {}).get(f"packages.{package}")
    passing: list[tuple[str, str]] = []
    by_rule: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
        "blocked": {},
        "unknown": {},
        "caveats": {},
    }
    for v in verdicts:
        pair = (v.plan.scheme, v.plan.offload)
        if v.passes:
            passing.append(pair)
        for f in v.findings:
            kind: str
            if f.decides(v.status) and v.status in ("blocked", "unknown"):
                kind = v.status
            elif v.passes and f.decides("warn"):
                kind = "caveats"
            else:
                continue
            entry = by_rule[kind].setdefault(
                (f.rule, f.message),
                {
                    "rule": f.rule,
                    "message": f.message,
                    "fix": f.fix,
                    "missing": list(f.missing),
                    "pairs": [],
                },
            )
            entry["pairs"].append(pair)

    def finish(kind: str) -> list[dict[str, Any]]:
        out = []
        for entry in by_rule[kind].values():
            pairs = entry.pop("pairs")
            out.append({**entry, "groups": _group(pairs, schemes), "plans": len(pairs)})
        return out

    counts = {"works": len(passing), "blocked": 0, "unknown": 0}
    for v in verdicts:
        if v.status in counts:
            counts[v.status] += 1
    if passing:
        status = "works"
    elif counts["unknown"]:
        status = "unknown"
    else:
        status = "blocked"
    return {
        "engine": engine,
        "package": package,
        "version": version,
        "installed": installed,
        "unreadable": unreadable,
        "install": install,
        "schemes": list(schemes),
        "status": status,
        "works": _group(passing, schemes),
        "blocked": finish("blocked"),
        "unknown": finish("unknown"),
        "caveats": finish("caveats"),
        "counts": counts,
    }


def _item(mark: str, text: str, fix: str | None = None) -> dict[str, Any]:
    return {"mark": mark, "text": text, "fix": fix}


def exit_code(engines: Sequence[Mapping[str, Any]]) -> int:
    """0: every installed engine has a working plan; 1: an installed one has none that
    can work; 3: an installed one (or whether one is installed) is undecided."""
    if any(e["installed"] and e["status"] == "blocked" for e in engines):
        return EXIT_BLOCKED
    if any(
        e["installed"] is None or (e["installed"] and e["status"] == "unknown") for e in engines
    ):
        return EXIT_UNKNOWN
    return EXIT_OK


def build_report(
    env: Mapping[str, Any],
    verdicts: Sequence[Verdict],
    matrix: Matrix,
    *,
    device: int = 0,
    verbose: bool = False,
    source: str = "probed",
    extra: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The whole report as plain data: what ``--json`` prints and the text renders.

    ``extra`` are sections appended after the engines (``{"title", "items": [{"mark",
    "text", "fix"}]}``), built by the caller (the recommendation, from ``advise``)."""
    by_engine: dict[str, list[Verdict]] = {}
    for v in verdicts:
        by_engine.setdefault(v.plan.engine, []).append(v)
    engines = [
        engine_summary(
            name, spec.package, spec.install, list(spec.schemes), by_engine.get(name, []), env
        )
        for name, spec in matrix.engines.items()
    ]
    code = exit_code(engines)
    installed = [e for e in engines if e["installed"]]
    working = [e for e in installed if e["status"] == "works"]
    if code == EXIT_OK and installed:
        text = (
            f"No issues found: all {len(installed)} installed engines have a plan that works here."
        )
    elif code == EXIT_OK:
        text = "No engine is installed; install one of those above to quantize."
    else:
        blocked = [e["engine"] for e in installed if e["status"] == "blocked"]
        undecided = [
            e["engine"]
            for e in engines
            if e not in working and e not in installed and e["installed"] is None
        ] + [e["engine"] for e in installed if e["status"] == "unknown"]
        parts = []
        if blocked:
            parts.append(f"{', '.join(blocked)} cannot work")
        if undecided:
            verb = "are" if len(undecided) > 1 else "is"
            parts.append(f"{', '.join(undecided)} {verb} undecided")
        text = (
            f"{len(working)} of {len(installed)} installed engines work here; "
            f"{'; '.join(parts)} (see above)."
        )
    report: dict[str, Any] = {
        "source": source,
        "device": device,
        "environment": dict(env),
        "checks": environment_checks(env, device),
        "engines": engines,
        "extra": [dict(x) for x in extra],
        "summary": {"text": text, "exit_code": code},
    }
    if verbose:
        report["verdicts"] = [v.model_dump(mode="json") for v in verdicts]
    return report


# ---------------------------------------------------------------------- rendering


def _mark(mark: str) -> tuple[str, str]:
    return (f"[{MARKS[mark]}] ", STYLES[mark])


def render_report(report: Mapping[str, Any], *, verbose: bool = False) -> list[Line]:
    """The report as lines of styled segments (flutter doctor's shape)."""
    lines: list[Line] = []
    head = "quantdoctor report"
    if report["source"] != "probed":
        head += " for " + report["source"]
    hint = ":" if verbose else " (every fact and rule id: quantdoctor -v):"
    lines.append([(head + hint, "bold")])
    for check in report["checks"]:
        lines.append([_mark(check["mark"]), (check["text"], "")])
        for d in check["details"]:
            lines.append([("      • " + d, "dim")])
        if check["fix"]:
            lines.append([("      fix: ", "bold"), (check["fix"], "cyan")])
    lines.append([])
    lines.append([("Engines:", "bold")])
    for e in report["engines"]:
        lines.extend(_render_engine(e, verbose))
    for section in report["extra"]:
        lines.append([])
        lines.append([(section["title"] + ":", "bold")])
        for item in section["items"]:
            lines.append([_mark(item["mark"]), (item["text"], "")])
            if item.get("fix"):
                lines.append([("      fix: ", "bold"), (item["fix"], "cyan")])
    if verbose:
        lines.append([])
        lines.append([("Facts:", "bold")])
        lines.extend(_render_facts(report["environment"]))
    lines.append([])
    summary = report["summary"]
    mark = {EXIT_OK: "ok", EXIT_BLOCKED: "fail", EXIT_UNKNOWN: "unknown"}[summary["exit_code"]]
    lines.append([("• ", STYLES[mark]), (summary["text"], "bold")])
    return lines


def _render_engine(e: Mapping[str, Any], verbose: bool) -> list[Line]:
    name = e["engine"] + (f" {e['version']}" if e["version"] else "")
    schemes = e["schemes"]
    out: list[Line]
    if e["installed"] is False:
        out = [[_mark("none"), (f"{e['engine']}: not installed", "")]]
        out.append([("      install: ", "bold"), (e["install"], "cyan")])
        if not verbose:
            return out
    elif e["installed"] is None and e.get("unreadable"):
        text = f"{e['engine']}: {e['package']} is {e['unreadable']}"
        out = [[_mark("unknown"), (text, "")]]
        fix = f"pip install --force-reinstall --no-deps {e['package']}"
        out.append([("      fix: ", "bold"), (fix, "cyan")])
    elif e["installed"] is None:
        text = f"{e['engine']}: whether {e['package']} is installed is unknown"
        out = [[_mark("unknown"), (text, "")]]
    elif e["status"] == "works":
        out = [[_mark("ok"), (name, "bold")]]
    elif e["status"] == "unknown":
        out = [[_mark("unknown"), (f"{name}: undecided here", "bold")]]
    else:
        out = [[_mark("fail"), (f"{name}: no plan works here", "bold")]]
    if e["works"]:
        out.append([("    ✓ ", STYLES["ok"]), ("works: " + _describe(e["works"], schemes), "")])
    for kind, sign, style in (
        ("caveats", "!", "warn"),
        ("blocked", "✗", "fail"),
        ("unknown", "?", "unknown"),
    ):
        for r in e[kind]:
            rule = f" [{r['rule']}]" if verbose else ""
            text = f"{_describe(r['groups'], schemes)}: {r['message']}{rule}"
            out.append([(f"    {sign} ", STYLES[style]), (text, "")])
            if kind == "unknown" and r["missing"]:
                out.append([(f"        unknown: {', '.join(r['missing'])}", "dim")])
            if r["fix"] and kind != "caveats":
                out.append([("        fix: ", "bold"), (r["fix"], "cyan")])
    return out


def _flatten(prefix: str, value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(f"{prefix}.{k}" if prefix else k, v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flatten(f"{prefix}[{i}]", v)
    else:
        yield prefix, value


def _render_facts(env: Mapping[str, Any]) -> list[Line]:
    rows = [(k, "null (absent)" if v is None else str(v)) for k, v in _flatten("", dict(env))]
    width = max((len(k) for k, _ in rows), default=0)
    return [[(f"    {k.ljust(width)}  ", "dim"), (v, "")] for k, v in rows]


def render_env(env: Mapping[str, Any], *, device: int = 0) -> list[Line]:
    """``quantdoctor env``: a short two-column table of the facts."""
    rows: list[tuple[str, str]] = []
    wsl = " (WSL)" if env.get("wsl") else ""
    rows.append(("system", f"{env.get('os', '?')}{wsl} {env.get('arch', '?')}"))
    rows.append(("python", str(env.get("python", "?"))))
    torch = env.get("torch", "?")
    if isinstance(torch, dict):
        rows.append(("torch", f"{torch.get('version', '?')} ({_torch_build(torch)})"))
    else:
        rows.append(("torch", "not installed" if torch is None else "unknown"))
    backend = env.get("backend", "unknown")
    rows.append(("backend", "none (no torch)" if backend is None else str(backend)))
    gpus = env.get("gpus")
    if "gpus" not in env:
        rows.append(("gpus", "unknown"))
    elif not gpus:
        rows.append(("gpus", "none"))
    else:
        for i, gpu in enumerate(gpus):
            mark = " *" if i == device and len(gpus) > 1 else ""
            rows.append((f"gpu {i}{mark}", _gpu_text(gpu)))
    triton = env.get("triton", "?")
    if isinstance(triton, dict):
        ran = triton.get("works")
        works = ", works" if ran is True else ", does not work" if ran is False else ""
        rows.append(("triton", f"{triton.get('version', '?')}{works}"))
    else:
        rows.append(("triton", "not installed" if triton is None else "unknown"))
    packages = env.get("packages") or {}
    for name, version in packages.items():
        if version is not None:
            rows.append((name, version))
    absent = [n for n, v in packages.items() if v is None]
    if absent:
        rows.append(("not installed", ", ".join(absent)))
    for fact, why in (env.get("notes") or {}).items():
        rows.append((f"? {fact}", why))
    width = max(len(k) for k, _ in rows)
    return [[(k.ljust(width) + "  ", "bold"), (v, "")] for k, v in rows]


def print_lines(lines: Sequence[Line], stream: Any = None) -> None:
    """Styled on a terminal (rich, imported only then), plain text everywhere else."""
    out = stream or sys.stdout
    if out.isatty():
        from rich.console import Console
        from rich.text import Text

        console = Console(file=out, highlight=False, soft_wrap=True)
        for line in lines:
            console.print(Text.assemble(*line) if line else "")
        return
    out.write("".join("".join(t for t, _ in line) + "\n" for line in lines))
