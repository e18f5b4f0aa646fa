"""``probe()``: the facts of this machine, as DESIGN.md's Environment JSON.

The probe never imports torch or an engine, never creates a CUDA context and never
touches the network: versions come from metadata files, build facts from
``torch/version.py`` read as text, GPUs from NVML, sysfs and (bounded) vendor tools.
Anything that must run code (the ``deep`` Triton test) runs in a subprocess with a
timeout. ``probe_dict`` builds the JSON without pydantic, for ``env --json``.
"""

from __future__ import annotations

import os

from quantdoctor.doctor._probe_nvidia import VendorResult
from quantdoctor.doctor._probe_util import (
    DEFAULT_TIMEOUT,
    Json,
    Notes,
    ProbeContext,
    gib,
    line_end,
    listdir,
    read_text,
    run_tool,
)
from quantdoctor.rules.vocab import BACKEND_TABLE, OS_NAMES

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from quantdoctor.rules.models import Environment

__all__ = ["DEFAULT_TIMEOUT", "ProbeContext", "derive_backend", "probe", "probe_dict"]

#: The vendor whose GPUs the backend numbers 0, 1, ... (``--device N`` counts these first).
BACKEND_VENDOR = {name: vendor for name, vendor, _, _ in BACKEND_TABLE if vendor}


def probe(
    *,
    deep: bool = False,
    device: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
    root: str | None = None,
    site_dirs: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    packages: Sequence[str] = (),
) -> Environment:
    """Probe this machine (or the tree under ``root``, for tests) into an ``Environment``.

    ``deep`` also compiles and runs a Triton kernel on GPU ``device`` in a subprocess.
    ``timeout`` bounds each vendor tool; ``packages`` adds distributions to report (those
    of a matrix with overlays of its own: ``matrix.packages()``); the built-in matrix's and
    the default overlays' are always read.
    """
    from quantdoctor.rules.models import Environment

    ctx = make_context(timeout=timeout, root=root, site_dirs=site_dirs, environ=environ)
    return Environment.model_validate(probe_dict(ctx, deep=deep, device=device, packages=packages))


def make_context(
    *,
    timeout: float = DEFAULT_TIMEOUT,
    root: str | None = None,
    site_dirs: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProbeContext:
    return ProbeContext(timeout=timeout, root=root or "/", site_dirs=site_dirs, environ=environ)


def probe_dict(
    ctx: ProbeContext | None = None,
    *,
    deep: bool = False,
    device: int = 0,
    packages: Sequence[str] = (),
    deep_timeout: float | None = None,
) -> dict[str, Json]:
    """The Environment JSON as a plain dict (no pydantic): unknown keys are left out,
    and ``notes`` (present only when non-empty) says why each is unknown."""
    from quantdoctor.doctor import _probe_packages as pk

    ctx = ctx or ProbeContext()
    notes: Notes = {}
    env: dict[str, Json] = probe_system(ctx, notes)

    from quantdoctor.rules.named import named_packages
    from quantdoctor.rules.vocab import canonical_name

    # every distribution the matrix (and its default overlays) names, so a rule on any
    # package is decided: known absent where it is not installed, not unknown
    named = named_packages()
    names = list(dict.fromkeys([*named, *pk.PACKAGES, *(canonical_name(p) for p in packages)]))
    dists = pk.index_distributions(ctx.site_dirs, wanted={*names, "torch", *pk.TRITON_DISTS})
    pkgs = pk.probe_packages(dists, names, notes)
    torch = pk.probe_torch(ctx, dists, notes)
    gpus_by_vendor, gpu_notes = _probe_gpus(ctx)

    zluda = None
    if torch.info is not None and torch.info.get("cuda"):
        zluda = pk.zluda_evidence(ctx, torch.package_dir)
    backend_known, backend, why = derive_backend(ctx, torch.info, gpus_by_vendor, pkgs, zluda)
    if backend_known:
        env["backend"] = backend
    else:
        notes["backend"] = why
    env["torch"] = torch.info

    gpus = _ordered_gpus(gpus_by_vendor, backend)
    if gpus is not None:
        gpus = _clean_gpus(gpus, notes)
        env["gpus"] = gpus
        if gpu_notes:
            notes["gpus"] = "the list may be incomplete: " + "; ".join(gpu_notes)
    else:
        notes["gpus"] = "; ".join(gpu_notes)

    known, triton = pk.probe_triton(dists, notes)
    if known:
        if deep and isinstance(triton, dict):
            from quantdoctor.doctor._probe_triton import DEEP_TIMEOUT, probe_triton_works

            limit = DEEP_TIMEOUT if deep_timeout is None else deep_timeout
            works = probe_triton_works(ctx, backend, device, notes, limit)
            if works is not None:
                triton["works"] = works
        env["triton"] = triton
    env["packages"] = pkgs
    if notes:
        from quantdoctor._printable import printable

        # Notes quote tools and files: safe to print, and short.
        env["notes"] = {k: printable(v, limit=2000) for k, v in sorted(notes.items())}
    return env


# ------------------------------------------------------------------- system
# OS, WSL, architecture and Python: facts the interpreter and the kernel state outright.


def probe_system(ctx: ProbeContext, notes: Notes) -> dict[str, Json]:
    """``os``, ``wsl``, ``arch``, ``python``; a key is left out (and noted) when unknown."""
    out: dict[str, Json] = {}
    if ctx.system in OS_NAMES:
        out["os"] = ctx.system
    else:
        notes["os"] = f"{ctx.system!r} is not an OS quantdoctor knows ({', '.join(OS_NAMES)})"
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


# ---------------------------------------------------------------------- GPUs


# ---------------------------------------------------------------- display devices
# From ``/sys/class/drm/card*/device``: PCI vendor, device, VRAM. No process and no
# pciutils (``lspci`` is missing in many containers and in WSL), the route llmfit's
# ``hardware.rs`` takes. Only devices with a bound driver appear here, which is what a GPU
# needs to be usable.


VENDOR_IDS = {"0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel"}


def probe_drm(ctx: ProbeContext) -> dict[str, list[dict[str, Json]]]:
    """Display-class devices by vendor: ``{"amd": [...], "intel": [...], "nvidia": [...]}``."""
    out: dict[str, list[dict[str, Json]]] = {}
    base = ctx.path("sys/class/drm")
    seen: set[str] = set()
    for card in listdir(base):
        number = line_end(card).removeprefix("card")
        if not (card.startswith("card") and number.isdecimal()):  # ^card\d+$
            continue
        dev = os.path.join(base, card, "device")
        real = os.path.realpath(dev)
        if real in seen:
            continue
        seen.add(real)
        vendor = (read_text(os.path.join(dev, "vendor"), 32) or "").strip().lower()
        klass = (read_text(os.path.join(dev, "class"), 32) or "").strip().lower()
        if vendor not in VENDOR_IDS or not klass.startswith("0x03"):
            continue  # 0x03xxxx is the PCI display class
        device = (read_text(os.path.join(dev, "device"), 32) or "").strip().lower()
        name = VENDOR_IDS[vendor]
        gpu: dict[str, Json] = {"vendor": name, "cuda_cc": None, "gfx": None}
        label = "AMD" if name == "amd" else name.title()
        gpu["name"] = f"{label} GPU [{vendor[2:]}:{device[2:]}]"
        vram = read_text(os.path.join(dev, "mem_info_vram_total"), 64)
        if vram and vram.strip().isdigit() and int(vram.strip()) > 0:
            gpu["memory_gb"] = gib(int(vram.strip()))
        if name == "amd":
            gpu.pop("gfx")  # unknown until KFD or rocminfo says
        out.setdefault(name, []).append(gpu)
    return out


_SYCL_GPU = r"^\[[^\]]*level_zero:gpu[^\]]*\](?:\[[^\]]*\])?\s*(.*)$"
_TRAILING_VERSIONS = r"\s+[\d.]+\s*\[[^\]]*\]\s*$"


def parse_sycl_ls(text: str) -> list[str]:
    """GPU names from ``sycl-ls``'s Level Zero lines, in its order."""
    import re  # only where the tool ran (re costs a process half its start-up)

    names: list[str] = []
    for line in text.splitlines():
        m = re.match(_SYCL_GPU, line.strip())
        if not m:
            continue
        rest = m.group(1)
        _platform, sep, device = rest.partition(", ")
        name = re.sub(_TRAILING_VERSIONS, "", device if sep else rest).strip()
        if name:
            names.append(name)
    return names


def probe_intel(ctx: ProbeContext, drm_intel: list[dict[str, Json]]) -> VendorResult:
    """Intel GPUs from DRM, named by ``sycl-ls`` when it is installed (it can crash: bounded)."""
    if ctx.system != "linux" or not drm_intel:
        return VendorResult(gpus=[])
    result = run_tool(("sycl-ls",), ctx)
    if result.ok:
        names = parse_sycl_ls(result.stdout)
        if len(names) == len(drm_intel):
            return VendorResult(
                gpus=[{**gpu, "name": n} for gpu, n in zip(drm_intel, names, strict=True)]
            )
    return VendorResult(gpus=drm_intel)


def _probe_gpus(ctx: ProbeContext) -> tuple[dict[str, VendorResult], list[str]]:
    """Every vendor's GPUs; the second value lists why some vendor's are unknown."""
    from quantdoctor.doctor._probe_amd import probe_amd
    from quantdoctor.doctor._probe_nvidia import probe_nvidia

    drm = probe_drm(ctx) if ctx.system == "linux" else {}
    results: dict[str, VendorResult] = {
        "nvidia": probe_nvidia(ctx),
        "amd": probe_amd(ctx, drm.get("amd", [])),
        "intel": probe_intel(ctx, drm.get("intel", [])),
        "apple": VendorResult(gpus=[]),
    }
    if ctx.system == "darwin":
        from quantdoctor.doctor._probe_os_gpus import probe_apple

        results["apple"] = probe_apple(ctx)
    if ctx.system == "windows":
        from quantdoctor.doctor._probe_os_gpus import probe_windows

        wmi = probe_windows(ctx)
        for vendor in ("amd", "intel", "other"):
            rows = None if wmi.gpus is None else [g for g in wmi.gpus if g["vendor"] == vendor]
            results[vendor] = VendorResult(gpus=rows, why=wmi.why)
        if results["nvidia"].gpus is None and wmi.gpus is not None:
            # NVML failed; WMI still names the cards, without their compute capability.
            nv = [g for g in wmi.gpus if g["vendor"] == "nvidia"]
            results["nvidia"] = VendorResult(gpus=nv, why=results["nvidia"].why if nv else None)
    why = [f"{v}: {r.why}" for v, r in results.items() if r.why]
    return results, why


def _clean_gpus(gpus: list[dict[str, Json]], notes: Notes) -> list[dict[str, Json]]:
    """Facts a lying driver or tool reported that break the contract, dropped and noted."""
    from quantdoctor.doctor._probe_util import clean_gpu

    out = []
    for i, gpu in enumerate(gpus):
        cleaned, dropped = clean_gpu(gpu)
        if dropped:
            notes[f"gpus[{i}]"] = "invalid values read and left unknown: " + "; ".join(dropped)
        out.append(cleaned)
    return out


def _ordered_gpus(
    results: dict[str, VendorResult], backend: str | None
) -> list[dict[str, Json]] | None:
    """All GPUs, the backend's vendor first (torch numbers only those); ``None`` if unknown."""
    known = [r.gpus for r in results.values() if r.gpus is not None]
    found = [g for rows in known for g in rows]
    if len(known) < len(results) and not found:
        return None
    first = BACKEND_VENDOR.get(backend or "")
    return sorted(found, key=lambda g: g.get("vendor") != first)


def derive_backend(
    ctx: ProbeContext,
    info: dict[str, Json] | None,
    gpus: Mapping[str, VendorResult],
    packages: Mapping[str, str | None],
    zluda: str | None,
) -> tuple[bool, str | None, str]:
    """``(known, backend, why-unknown)`` from torch's build and the GPUs found.

    The order follows what the UIs do at run time (SD.Next ``modules/devices.py``:
    openvino and directml by choice, then xpu, zluda, cuda, rocm, mps, cpu), decided here
    from files: a ROCm build is rocm; a CUDA build on ZLUDA's libraries is zluda; a CUDA
    build with an NVIDIA GPU is cuda; then xpu, directml, mps, openvino, cpu.
    """
    if info is None:
        return True, None, ""  # no torch: nothing runs a model, the backend is absent
    if "cuda" not in info:
        return False, None, "torch's build (CUDA, ROCm, CPU) is unknown"

    def count(vendor: str) -> int | None:
        rows = gpus[vendor].gpus if vendor in gpus else []
        return None if rows is None else len(rows)

    if info.get("hip"):
        amd = count("amd")
        if amd:
            return True, "rocm", ""
        if amd is None:
            why = gpus["amd"].why or "unknown"
            return False, None, f"torch is a ROCm build; are AMD GPUs here? unknown ({why})"
        # A ROCm build with no AMD GPU runs on the CPU (torch.cuda.is_available() is False).
    if info.get("cuda"):
        if zluda is not None and not count("nvidia"):
            return True, "zluda", ""
        nvidia = count("nvidia")
        if nvidia:
            return True, "cuda", ""
        if nvidia is None:
            why = gpus["nvidia"].why or "unknown"
            return False, None, f"torch is a CUDA build; are NVIDIA GPUs here? unknown ({why})"
    intel = count("intel")
    if (info.get("xpu") or packages.get("intel-extension-for-pytorch")) and intel != 0:
        if intel is None:
            return False, None, "torch can use Intel GPUs, but whether one is here is unknown"
        return True, "xpu", ""
    if packages.get("torch-directml"):
        return True, "directml", ""
    if ctx.system == "darwin" and ctx.machine in ("arm64", "aarch64"):
        return True, "mps", ""
    if packages.get("openvino"):
        return True, "openvino", ""
    return True, "cpu", ""
