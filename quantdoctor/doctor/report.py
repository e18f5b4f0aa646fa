"""The doctor report: built as plain data from facts and verdicts, then rendered.

Deciding lives in ``rules/`` (the verdicts); this module only groups them so the report
stays short, and renders the same data as text (colour only on a terminal) or
JSON. Nothing here re-states a compatibility rule: what blocks a plan is always a
finding of the evaluator, named by its rule id.
"""

from __future__ import annotations

from quantdoctor.errors import EXIT_BLOCKED, EXIT_OK, EXIT_UNKNOWN, MARKS, STYLES
from quantdoctor.rules.vocab import BACKEND_ROWS, OFFLOADS, canonical_name

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from functools import lru_cache
    from typing import Any

    from quantdoctor._printable import Line
    from quantdoctor.rules.matrix import Matrix
    from quantdoctor.rules.models import Verdict
    from quantdoctor.rules.records import VerdictRecord

    #: the public API's verdicts, or the evaluator's plain ones (what the CLI builds)
    VerdictLike = Verdict | VerdictRecord
else:  # functools imports collections: ~3 ms of a command
    from quantdoctor._memo import lru_cache

#: Marks, as flutter doctor prints them; ``-`` is a neutral fact (nothing to fix).


#: Where to get a torch build for a GPU, per vendor (PyTorch's install selector).
TORCH_INSTALL = "pip install torch  (https://pytorch.org/get-started/locally/ picks the build)"


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


def _torch_build(torch: Mapping[str, Any], backend: str | None = None) -> str:
    if backend == "mps":
        return "macOS build (MPS)"
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
        env.get("os") or "", env.get("os") or "OS unknown"
    )
    parts = [os_name + (" (WSL)" if env.get("wsl") else "")]
    if env.get("arch"):
        parts[0] += " " + env["arch"]
    parts.append(f"Python {env['python']}" if env.get("python") else "Python version not given")
    checks.append(_check("system", "ok", ", ".join(parts)))

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
            _check(
                "torch",
                mark,
                f"torch {version}: {_torch_build(torch, env.get('backend'))}",
                None,
                details,
            )
        )

    gpus = env.get("gpus")
    if gpus is None and "gpus" not in env:
        checks.append(_check("gpus", "unknown", "GPUs: unknown", details=_pop(notes, "gpus")))
    elif not gpus:
        checks.append(_check("gpus", "none", "no GPU: models run on the CPU"))
    else:
        for i, gpu in enumerate(gpus):
            chosen = " <- runs the model" if i == device and len(gpus) > 1 else ""
            checks.append(_check(f"gpu.{i}", "ok", f"GPU {i}: {_gpu_text(gpu)}{chosen}"))
        if "gpus" in notes:
            checks.append(_check("gpus", "unknown", notes.pop("gpus")))

    checks.append(_backend_check(env, notes, device))
    checks.append(_triton_check(env, notes))
    for fact, why in sorted(notes.items()):
        checks.append(_check(fact, "unknown", f"{fact}: unknown", details=[why]))
    return checks


def drift_checks(verdicts: Sequence[VerdictLike]) -> list[dict[str, Any]]:
    """Once per package newer than any version the rules were checked on (``verified.*``)."""
    seen: dict[str, dict[str, Any]] = {}
    for verdict in verdicts:
        for f in verdict.findings:
            if f.rule.startswith("verified.") and f.state == "holds" and f.rule not in seen:
                seen[f.rule] = _check(f.rule, "warn", f.message, fix=f.fix)
    return [seen[k] for k in sorted(seen)]


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
    row = BACKEND_ROWS.get(backend)
    if row is not None and not row.accelerator and torch and "cuda" in torch:
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
        schemes = _schemes_text(g["schemes"], all_schemes) if len(all_schemes) > 1 else ""
        schemes = schemes or ", ".join(g["schemes"])
        parts.append(f"{schemes} with {_offloads_text(g['offloads'])}")
    return "; ".join(parts)


#: How a fix names an offload (the vocabulary's words, or diffusers' method for it).
_OFFLOAD_WORDS = (
    r"\b(model|sequential|balanced|group)(?:[- ]level)? offload\b"
    r"|enable_(model)_cpu_offload|enable_(sequential)_cpu_offload|enable_(group)_offload"
)


_OFFLOAD_CALLS = {
    "enable_model_cpu_offload": "model",
    "enable_sequential_cpu_offload": "sequential",
    "enable_group_offload": "group",
}


@lru_cache(maxsize=1024)
def offloads_named(fix: str) -> frozenset[str]:
    """The offload modes a fix text recommends (``use model offload`` -> ``{"model"}``):
    what ``_OFFLOAD_WORDS`` finds, read with ``str`` methods (``re`` costs a process half
    its start-up; ``tests/test_probe_patterns.py`` holds the two to the same answers).
    Remembered: a report asks again for each engine the same fix names."""
    if "offload" not in fix:
        return frozenset()
    found = {word for call, word in _OFFLOAD_CALLS.items() if call in fix}
    for word in ("model", "sequential", "balanced", "group"):
        start = fix.find(word)
        while start >= 0:
            if start == 0 or not _is_word(fix[start - 1]):
                rest = fix[start + len(word) :]
                for tail in (" offload", "-level offload", " level offload"):
                    end = len(tail)
                    if rest.startswith(tail) and not (len(rest) > end and _is_word(rest[end])):
                        found.add(word)
            start = fix.find(word, start + 1)
    return frozenset(found)


def _is_word(char: str) -> bool:
    """``\\w`` on ``str``: a letter, a digit or a numeral in any script, or ``_``."""
    return char.isalnum() or char == "_"


@lru_cache(maxsize=1)
def _apps() -> dict[str, Any]:
    import os

    from quantdoctor._json import loads

    path = os.path.join(os.path.dirname(__file__), "apps.json")
    with open(path, encoding="utf-8") as f:
        data: dict[str, Any] = loads(f.read())
    data.pop("_about", None)
    return data


def app_from_path(path: str | None) -> str | None:
    """The app whose interpreter ``path`` is (``~/ComfyUI/venv/bin/python``), if known."""
    if not path:
        return None
    lowered = path.replace("\\", "/").lower()
    parts = [p for p in lowered.split("/") if p]
    for app, spec in _apps().items():
        if any(word in part for part in parts for word in spec.get("paths", ())):
            return str(app)
    return None


def fix_for_app(fix: str, app: str | None) -> str:
    """A fix that recommends an offload, with how the user's app offers it (diffusers'
    call and SD.Next's setting when the app is not known)."""
    named = [o for o in OFFLOADS if o in offloads_named(fix)]
    if not named:
        return fix
    apps = [app] if app in _apps() else ["diffusers", "sdnext"]
    said = []
    for name in apps:
        spec = _apps()[name]
        ways = [spec["offload"][o] for o in named if o in spec["offload"]]
        # a fix that already names diffusers' method needs it not twice
        ways = [w for w in ways if _bare_call(w) not in fix]
        if ways:
            said.append(f"{spec['name']}: {'; '.join(dict.fromkeys(ways))}")
    return fix if not said else f"{fix} ({' | '.join(said)})"


#: What ``_bare_call`` removes (the grammar: ``tests/test_probe_patterns.py`` holds the
#: two to the same answers).
_CALL_DRESS = r"^pipe(\.transformer)?\.|\(.*\)$"


def _bare_call(way: str) -> str:
    """``re.sub(_CALL_DRESS, "", way)``: diffusers' method without ``pipe.`` and its
    arguments (``pipe.enable_model_cpu_offload()`` -> ``enable_model_cpu_offload``)."""
    for head in ("pipe.transformer.", "pipe."):
        if way.startswith(head):
            way = way[len(head) :]
            break
    # "\(.*\)$": from the first "(" after which no newline comes before a ")" that ends
    # the text (or stands before its one final newline)
    body, final = (way[:-1], "\n") if way.endswith("\n") else (way, "")
    start = body.find("(")
    while start >= 0:
        if body.endswith(")") and len(body) - start >= 2 and "\n" not in body[start:]:
            return way[:start] + final
        start = body.find("(", start + 1)
    return way


def for_interpreter(report: dict[str, Any], exe: str) -> None:
    """Every ``pip install`` of ``report`` as that interpreter's (``--python``): the fix
    must install into the app's Python, not into the one running quantdoctor."""
    import re

    python = f'"{exe}"' if " " in exe else exe

    def said(text: str | None) -> str | None:
        return text and re.sub(r"\bpip install\b", f"{python} -m pip install", text)

    for check in report["checks"]:
        check["fix"] = said(check["fix"])
    for e in report["engines"]:
        e["install"] = said(e["install"])
        for kind in ("blocked", "caveats", "unknown"):
            for entry in e[kind]:
                entry["fix"] = said(entry["fix"])


def engine_summary(
    engine: str,
    package: str,
    install: str,
    schemes: Sequence[str],
    verdicts: Sequence[VerdictLike],
    env: Mapping[str, Any],
) -> dict[str, Any]:
    """For one engine: the plans that work, and per rule the plans it blocks, leaves
    undecided, or lets through with a caveat. Each rule appears once, with its plans.

    A rule entry's ``wide`` lists the schemes it decides at every offload (every passing
    one, for a caveat): those are the bare report's; the rest is ``-v``'s."""
    packages = env.get("packages") or {}
    installed: bool | None = None
    version = None
    if package in packages:
        version = packages[package]
        installed = version is not None
    # The probe notes a package that is there but whose version it could not read.
    unreadable = (env.get("notes") or {}).get(f"packages.{package}")
    passing: list[tuple[str, str]] = []
    evaluated: dict[str, set[str]] = {}
    passes_at: dict[str, set[str]] = {}
    by_rule: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
        "blocked": {},
        "unknown": {},
        "caveats": {},
    }
    needs: dict[str, int] = {}
    kinds = _kinds()
    for v in verdicts:
        status = v.status
        pair = (v.plan.scheme, v.plan.offload)
        evaluated.setdefault(pair[0], set()).add(pair[1])
        if v.passes:
            passing.append(pair)
            passes_at.setdefault(pair[0], set()).add(pair[1])
        seen: set[str] = set()  # one cause once per plan, whatever its wording
        for f in v.findings:
            kind = kinds.get((f.severity, f.state, status))
            if kind is None:
                continue
            if f.rule in seen:
                continue
            seen.add(f.rule)
            if kind == "unknown":
                for fact in f.missing:
                    needs[fact] = needs.get(fact, 0) + 1
            bucket, key = by_rule[kind], (f.rule, f.message)
            entry = bucket.get(key)
            if entry is None:  # not setdefault: its default would be built for every finding
                entry = bucket[key] = {
                    "rule": f.rule,
                    "message": f.message,
                    "fix": f.fix,
                    "missing": list(f.missing),
                    "pairs": [],
                }
            entry["pairs"].append(pair)

    def finish(kind: str) -> list[dict[str, Any]]:
        out = []
        for entry in by_rule[kind].values():
            pairs = entry.pop("pairs")
            covered: dict[str, set[str]] = {}
            for scheme, offload in pairs:
                covered.setdefault(scheme, set()).add(offload)
            full = passes_at if kind == "caveats" else evaluated
            wide = [s for s in schemes if s in covered and covered[s] >= full.get(s, set())]
            entry["fix"] = _fix_that_fits(entry["fix"], list(covered), passes_at)
            out.append(
                {**entry, "groups": _group(pairs, schemes), "plans": len(pairs), "wide": wide}
            )
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
        "needs": sorted(needs, key=lambda k: (-needs[k], k)),
    }


@lru_cache(maxsize=1)
def _kinds() -> dict[tuple[str, str, str], str]:
    """(severity, state, a verdict's status) -> where ``engine_summary`` lists such a
    finding: under the status it decides (blocked, unknown), as a caveat of a plan that
    passes, or (absent) nowhere."""
    from quantdoctor.rules.records import PASSING, decides
    from quantdoctor.rules.vocab import SEVERITIES

    out: dict[tuple[str, str, str], str] = {}
    for severity in SEVERITIES:
        for state in ("holds", "unknown"):
            for status in ("blocked", "unknown", *PASSING):
                if status in ("blocked", "unknown") and decides(severity, state, status):
                    out[severity, state, status] = status
                elif status in PASSING and decides(severity, state, "warn"):
                    out[severity, state, status] = "caveats"
    return out


def _fix_that_fits(fix: str, schemes: Sequence[str], passes_at: Mapping[str, set[str]]) -> str:
    """A fix that sends the user to an offload failing here for these schemes is replaced
    by the offloads that do work here (the report lists both; they must agree)."""
    named = offloads_named(fix)
    works = set().union(*(passes_at.get(s, set()) for s in schemes)) if schemes else set()
    if not named or named & works:
        return fix
    if not works:
        return fix
    chosen = ", ".join(o for o in OFFLOADS if o in works)
    return f"use offload {chosen} here (elsewhere: {fix})"


def engine_mark(e: Mapping[str, Any]) -> str:
    """The mark of an engine's line: what the exit code follows."""
    if e["installed"] is False:
        return "none"
    if e["installed"] is None:
        return "unknown"
    return {"works": "ok", "unknown": "unknown", "blocked": "fail"}[e["status"]]


def exit_code(
    engines: Sequence[Mapping[str, Any]],
    checks: Sequence[Mapping[str, Any]] = (),
    extra: Sequence[Mapping[str, Any]] = (),
) -> int:
    """The exit code follows the marks of the report's left column: 1 when any is ✗,
    else 3 when any is ?, else 0 (✓, ! and - only)."""
    marks = {engine_mark(e) for e in engines} | {c["mark"] for c in checks}
    marks |= {i["mark"] for x in extra for i in x.get("items", ())}
    if "fail" in marks:
        return EXIT_BLOCKED
    if "unknown" in marks:
        return EXIT_UNKNOWN
    return EXIT_OK


def _add_keys(
    env: Mapping[str, Any],
    engines: Sequence[Mapping[str, Any]],
    checks: Sequence[Mapping[str, Any]],
) -> list[str]:
    """The Environment keys whose absence leaves something undecided, most deciding first."""
    order: dict[str, int] = {}
    for e in engines:
        for i, fact in enumerate(e["needs"]):
            order[fact] = min(order.get(fact, 99), i)
        if e["installed"] is None and not e.get("unreadable"):
            order.setdefault(f"packages.{e['package']}", 50)
    for c in checks:
        if c["mark"] == "unknown" and c["check"] in ("torch", "gpus", "backend", "triton"):
            order.setdefault(c["check"], 40)
    keys: list[str] = []
    for fact in sorted(order, key=lambda k: (order[k], k)):
        top = fact.split(".")[0].split("[")[0]
        top = "gpus" if top == "gpu" else top
        key = top if top != "packages" else "packages"
        if key not in keys:
            keys.append(key)
    return keys


def build_report(
    env: Mapping[str, Any],
    verdicts: Sequence[VerdictLike],
    matrix: Matrix,
    *,
    device: int = 0,
    verbose: bool = False,
    source: str = "probed",
    extra: Sequence[Mapping[str, Any]] = (),
    assumed: Mapping[str, str] | None = None,
    app: str | None = None,
) -> dict[str, Any]:
    """The whole report as plain data: what ``--json`` prints and the text renders.

    ``extra`` are sections appended after the engines (``{"title", "items": [{"mark",
    "text", "fix"}]}``), built by the caller (the recommendation, from ``advise``).
    ``assumed`` are facts the caller inferred (``doctor.infer``), said as such."""
    by_engine: dict[str, list[VerdictLike]] = {}
    for v in verdicts:
        by_engine.setdefault(v.plan.engine, []).append(v)
    engines = [
        engine_summary(
            name, spec.package, spec.install, list(spec.schemes), by_engine.get(name, []), env
        )
        for name, spec in matrix.records.items()
    ]
    for e in engines:
        for kind in ("blocked", "caveats"):
            for entry in e[kind]:
                entry["fix"] = fix_for_app(entry["fix"], app)
    checks = environment_checks(env, device) + drift_checks(verdicts)
    code = exit_code(engines, checks, extra)
    installed = [e for e in engines if e["installed"]]
    working = [e for e in installed if e["status"] == "works"]
    failing = [c["text"] for c in checks if c["mark"] == "fail"]
    blocked = [e["engine"] for e in installed if e["status"] == "blocked"]
    undecided = [e["engine"] for e in engines if engine_mark(e) == "unknown"]
    if code == EXIT_OK and installed:
        noun = "engine has" if len(installed) == 1 else "engines have"
        text = f"No issues found: {len(installed)} installed {noun} a plan that works here."
    elif code == EXIT_OK:
        text = "No engine is installed; install one of those above to quantize."
    else:
        parts = [*failing]
        if blocked:
            parts.append(f"{', '.join(blocked)} cannot work")
        if undecided:
            verb = "are" if len(undecided) > 1 else "is"
            parts.append(f"{', '.join(undecided)} {verb} undecided")
        if not parts:
            parts.append("some facts are unknown")
        lead = (
            f"{len(working)} of {len(installed)} installed engines work here; " if installed else ""
        )
        text = f"{lead}{'; '.join(parts)} (see above)."
    report: dict[str, Any] = {
        "source": source,
        "device": device,
        "environment": dict(env),
        "assumed": dict(assumed or {}),
        "app": app,
        "checks": checks,
        "engines": engines,
        "add_keys": _add_keys(env, engines, checks) if code == EXIT_UNKNOWN else [],
        "extra": [dict(x) for x in extra],
        "summary": {"text": text, "exit_code": code},
    }
    if verbose:
        from quantdoctor.rules.records import VerdictRecord

        report["verdicts"] = [
            v.data if isinstance(v, VerdictRecord) else v.model_dump(mode="json") for v in verdicts
        ]
    return report


# ---------------------------------------------------------------------- rendering


def _mark(mark: str) -> tuple[str, str]:
    return (f"[{MARKS[mark]}] ", STYLES[mark])


#: The order engines are listed in: what works first.
_ENGINE_ORDER = {"ok": 0, "fail": 1, "unknown": 2, "none": 3}


def render_report(report: Mapping[str, Any], *, verbose: bool = False) -> list[Line]:
    """The report as lines of styled segments (flutter doctor's shape): the machine, the
    engines that work first, every ✗ and ! with its fix under it, then the summary.
    The bare report keeps what a user acts on; ``-v`` adds every plan, fact and rule id."""
    lines: list[Line] = []
    checks = list(report["checks"])
    head = "quantdoctor report"
    if report["source"] != "probed":
        head += " for " + report["source"]
    elif report.get("interpreter"):
        head += " for the Python at " + report["interpreter"]
    system = checks.pop(0) if checks and checks[0]["check"] == "system" else None
    lines.append([(head + (": " + system["text"] if system else ""), "bold")])
    for check in checks:
        if (
            not verbose
            and check["check"] in ("backend", "triton")
            and check["mark"] in ("ok", "none")
        ):
            continue  # the torch line says the build; -v names the backend and Triton too
        lines.append([_mark(check["mark"]), (check["text"], "")])
        for d in check["details"]:
            lines.append([("      • " + d, "dim")])
        if check["fix"]:
            lines.append([("      fix: ", "bold"), (check["fix"], "cyan")])
    for fact, why in report.get("assumed", {}).items():
        lines.append([("    assumed ", "dim"), (f"{fact}: {why}", "dim")])
    lines.append([])
    lines.append([("Engines, what works first:", "bold")])
    engines = sorted(report["engines"], key=lambda e: _ENGINE_ORDER[engine_mark(e)])
    absent = [e for e in engines if e["installed"] is False]
    hidden = 0
    for e in engines:
        if e["installed"] is False and not verbose:
            continue
        shown, not_shown = _render_engine(e, verbose)
        lines.extend(shown)
        hidden += not_shown
    if absent and not verbose:
        names = ", ".join(e["engine"] for e in absent)
        lines.append([_mark("none"), (f"not installed: {names}", "")])
        lines.append([("      install: ", "bold"), (_one_install(absent), "cyan")])
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
    if report.get("add_keys"):
        where = report["source"] if report["source"] != "probed" else "an --env file"
        keys = ", ".join(f'"{k}"' for k in report["add_keys"])
        text = (
            f"to decide what is marked ?, add {keys} to {where} "
            "(quantdoctor env --json on that machine prints them)"
        )
        if report["source"] == "probed":
            text = "what is marked ? could not be probed here; the notes above say why"
        lines.append([("? ", STYLES["unknown"]), (text, "")])
    summary = report["summary"]
    mark = {EXIT_OK: "ok", EXIT_BLOCKED: "fail", EXIT_UNKNOWN: "unknown"}[summary["exit_code"]]
    lines.append([("• ", STYLES[mark]), (summary["text"], "bold")])
    if not verbose:
        more = f"why {hidden} more plans fail or warn here, " if hidden else ""
        lines.append([(f"  quantdoctor -v: {more}every fact and rule id", "dim")])
    return lines


def _one_install(engines: Sequence[Mapping[str, Any]]) -> str:
    """The engines' install commands, those that differ only in the package they end with
    (``pip install a``, ``pip install b``; ``pip install -U c``) as one each (``pip install
    a b``; ``pip install -U c``), in the order first met, ``;`` between. A package named
    bare and with a version (``diffusers``, ``"diffusers>=0.33"``) is named once, with it."""
    commands: dict[str, list[str]] = {}
    for e in engines:
        command = e["install"] or ""
        parts = _install_parts(command)
        head, word = parts if parts is not None else (command, "")
        words = commands.setdefault(head, [])
        if not word or word in words:
            continue
        name, bare = _requirement_name(word)
        first = next((w for w in words if _requirement_name(w)[0] == name), None)
        if first is None:
            words.append(word)
        elif not bare and _requirement_name(first)[1]:
            words[words.index(first)] = word  # the bare name gives way to the version
        elif not bare:
            words.append(word)  # another version of it: pip takes both
    return "; ".join(" ".join([head, *words]) for head, words in commands.items() if head)


def _requirement_name(word: str) -> tuple[str, bool]:
    """A pip argument's distribution (canonical) and whether it names nothing else (no
    version, extras or marker): ``"diffusers>=0.33"`` is ("diffusers", False)."""
    text = word.strip("\"'")
    end = len(text)
    for i, c in enumerate(text):
        if not (c.isalnum() or c in "._-"):
            end = i
            break
    name = text[:end]
    return canonical_name(name), end == len(text)


def _install_parts(command: str) -> tuple[str, str] | None:
    r"""``re.fullmatch(r"(.*pip install(?: -\S+)*) (\S+)", command).groups()``, by hand:
    the text up to and with ``pip install`` and its options, and the one word after
    them, which ends the command."""
    if "\n" in command:
        return None  # "." and "\S" take no newline
    cut = len(command) - 1
    while cut >= 0 and not command[cut].isspace():
        cut -= 1
    head, word = command[: max(cut, 0)], command[cut + 1 :]
    if cut < 0 or command[cut] != " " or not word:
        return None
    stem = head
    while not stem.endswith("pip install"):  # an option between: -U, --pre
        space = stem.rfind(" ")
        option = stem[space + 1 :]
        if space < 0 or len(option) < 2 or option[0] != "-":
            return None
        if any(c.isspace() for c in option):
            return None
        stem = stem[:space]
    return head, word


def _engine_head(e: Mapping[str, Any]) -> Line:
    name = e["engine"] + (f" {e['version']}" if e["version"] else "")
    mark = engine_mark(e)
    if e["installed"] is False:
        return [_mark("none"), (f"{e['engine']}: not installed", "")]
    if e["installed"] is None and e.get("unreadable"):
        return [_mark("unknown"), (f"{e['engine']}: {e['package']} is {e['unreadable']}", "")]
    if e["installed"] is None:
        needs = e["needs"] or [f"packages.{e['package']}"]
        if f"packages.{e['package']}" not in needs:
            needs = [f"packages.{e['package']}", *needs]
        return [_mark("unknown"), (f"{e['engine']}: undecided; needs {', '.join(needs)}", "")]
    if mark == "ok":
        return [_mark("ok"), (f"{name}: ", "bold"), (_describe(e["works"], e["schemes"]), "")]
    if mark == "unknown":
        return [_mark("unknown"), (f"{name}: undecided; needs {', '.join(e['needs'])}", "bold")]
    return [_mark("fail"), (f"{name}: no plan works here", "bold")]


def _in_bare(e: Mapping[str, Any], kind: str, r: Mapping[str, Any]) -> bool:
    """What the bare report shows of an engine: for one that works, the caveats on all of
    a scheme's plans; for one that cannot work, why (the rules deciding whole schemes,
    or all of them when none does). The rest (other offloads, other schemes) is -v's."""
    mark = engine_mark(e)
    if kind == "caveats":
        return bool(r["wide"])
    if kind == "blocked" and mark == "fail":
        return bool(r["wide"]) or not any(x["wide"] for x in e["blocked"])
    return False


def _schemes_text(chosen: Sequence[str], schemes: Sequence[str]) -> str:
    """``int4wo``; ``every scheme``; ``every scheme but F32, F16``."""
    if len(chosen) == len(schemes):
        return "every scheme"
    rest = [s for s in schemes if s not in chosen]
    if len(chosen) > 3 and len(rest) < len(chosen) / 2:
        return "every scheme but " + ", ".join(rest)
    return ", ".join(chosen)


def _render_engine(e: Mapping[str, Any], verbose: bool) -> tuple[list[Line], int]:
    """An engine's lines, and how many of its findings only ``-v`` shows."""
    schemes = e["schemes"]
    out: list[Line] = [_engine_head(e)]
    if e["installed"] is False:
        out.append([("      install: ", "bold"), (e["install"], "cyan")])
        return out, 0
    if e["installed"] is None and e.get("unreadable"):
        fix = f"pip install --force-reinstall --no-deps {e['package']}"
        out.append([("      fix: ", "bold"), (fix, "cyan")])
    if verbose and e["works"] and engine_mark(e) != "ok":
        out.append([("    ✓ ", STYLES["ok"]), ("works: " + _describe(e["works"], schemes), "")])
    hidden = 0
    for kind, sign, style in (
        ("blocked", "✗", "fail"),
        ("caveats", "!", "warn"),
        ("unknown", "?", "unknown"),
    ):
        shown = [r for r in e[kind] if verbose or _in_bare(e, kind, r)]
        hidden += len(e[kind]) - len(shown)
        for r in shown:
            if verbose or not r["wide"]:
                where = _describe(r["groups"], schemes)
            else:
                where = _schemes_text(r["wide"], schemes)
            rule = f" [{r['rule']}]" if verbose else ""
            if kind == "unknown":
                text = f"{where}: unknown whether this holds ({', '.join(r['missing'])}): "
                text += r["message"] + rule
            else:
                text = f"{where}: {r['message']}{rule}"
            out.append([(f"    {sign} ", STYLES[style]), (text, "")])
            if r["fix"] and kind != "unknown":
                out.append([("        fix: ", "bold"), (r["fix"], "cyan")])
    return out, hidden


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
