"""OS, WSL, architecture and Python: facts the interpreter and the kernel state outright."""

from __future__ import annotations

from quantdoctor.doctor._probe_util import Json, Notes, ProbeContext, read_text

_OS_NAMES = ("linux", "windows", "darwin")


def probe_system(ctx: ProbeContext, notes: Notes) -> dict[str, Json]:
    """``os``, ``wsl``, ``arch``, ``python``; a key is left out (and noted) when unknown."""
    out: dict[str, Json] = {}
    if ctx.system in _OS_NAMES:
        out["os"] = ctx.system
    else:
        notes["os"] = f"{ctx.system!r} is not an OS quantdoctor knows (linux, windows, darwin)"
    wsl = probe_wsl(ctx, notes)
    if wsl is not None:
        out["wsl"] = wsl
    arch = normalise_arch(ctx.machine)
    if arch:
        out["arch"] = arch
    else:
        notes["arch"] = "the platform did not name its machine architecture"
    out["python"] = ctx.python_version
    return out


def probe_wsl(ctx: ProbeContext, notes: Notes) -> bool | None:
    """Whether this Linux runs under WSL: its kernel release says "microsoft" (WSL1 and 2)."""
    if ctx.system != "linux":
        return False
    # osrelease is one short line; /proc/version is the fallback some sandboxes keep.
    for rel in ("proc/sys/kernel/osrelease", "proc/version"):
        text = read_text(ctx.path(rel), 4096)
        if text is not None:
            lowered = text.lower()
            return "microsoft" in lowered or "wsl" in lowered
    notes["wsl"] = "neither /proc/sys/kernel/osrelease nor /proc/version could be read"
    return None


def normalise_arch(machine: str) -> str:
    """One spelling per architecture: Windows' ``AMD64`` is ``x86_64``."""
    m = machine.strip().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "i686": "x86", "i386": "x86"}.get(m, m)
