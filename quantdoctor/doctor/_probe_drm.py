"""Display devices from ``/sys/class/drm/card*/device``: PCI vendor, device, VRAM.

No process and no pciutils (``lspci`` is missing in many containers and in WSL), the
route llmfit's ``hardware.rs`` takes. Only devices with a bound driver appear here, which
is what a GPU needs to be usable.
"""

from __future__ import annotations

import os

from quantdoctor.doctor._probe_nvidia import VendorResult
from quantdoctor.doctor._probe_util import (
    Json,
    ProbeContext,
    gib,
    line_end,
    listdir,
    read_text,
    run_tool,
)

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
