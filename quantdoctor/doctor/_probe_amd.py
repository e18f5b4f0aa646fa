"""AMD GPUs from the KFD topology in sysfs, ``rocminfo`` as the fallback.

The KFD topology (``/sys/class/kfd/kfd/topology/nodes/*/properties``) is what LLVM's
``amdgpu-arch`` reads (clang/tools/amdgpu-arch/AMDGPUArchByKFD.cpp): it needs only the
amdgpu driver, no ROCm install and no process. ``gfx_target_version`` is decimal
``MMmmss``; the stepping is printed in hex, so 90010 is ``gfx90a``. A node whose value
is 0 is a CPU. Memory comes from the DRM node the KFD node names (``drm_render_minor``).
"""

from __future__ import annotations

import os

from quantdoctor.doctor._probe_nvidia import VendorResult, apply_visible_devices
from quantdoctor.doctor._probe_util import (
    MAX_GPUS,
    Json,
    ProbeContext,
    clean_text,
    gib,
    listdir,
    read_text,
    run_tool,
)

KFD_NODES = "sys/class/kfd/kfd/topology/nodes"


def gfx_name(target_version: int) -> str | None:
    """``gfx_target_version`` to the LLVM target name (``110000`` -> ``gfx1100``)."""
    if target_version <= 0:
        return None
    major = target_version // 10000 % 100
    minor = target_version // 100 % 100
    step = target_version % 100
    return f"gfx{major}{minor}{step:x}"


def parse_properties(text: str) -> dict[str, int]:
    """``key value`` lines (KFD topology); non-numeric values are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        value = value.strip()
        # A longer number than any real property is a corrupt file (and past 4300
        # digits int() itself refuses it).
        if key and value.lstrip("-").isdigit() and len(value) <= 40:
            out[key] = int(value)
    return out


def probe_kfd(ctx: ProbeContext) -> VendorResult | None:
    """AMD GPUs from KFD, or ``None`` when there is no KFD topology to read."""
    base = ctx.path(KFD_NODES)
    if not os.path.isdir(base):
        return None
    gpus: list[dict[str, Json]] = []
    unreadable: list[str] = []
    nodes = sorted((n for n in listdir(base) if n.isdigit() and len(n) < 10), key=int)
    if len(nodes) > 4 * MAX_GPUS:
        return VendorResult(gpus=None, why=f"{base} lists {len(nodes)} nodes, more than a host has")
    if not nodes:
        return VendorResult(gpus=None, why=f"{base} lists no nodes (permission?)")
    for node in nodes:
        text = read_text(os.path.join(base, node, "properties"))
        if text is None:
            unreadable.append(node)
            continue
        props = parse_properties(text)
        gfx = gfx_name(props.get("gfx_target_version", 0))
        if gfx is None:
            continue  # a CPU node
        gpu: dict[str, Json] = {"vendor": "amd", "cuda_cc": None, "gfx": gfx}
        drm = _drm_device_dir(ctx, props.get("drm_render_minor"))
        name = _product_name(drm) if drm else None
        gpu["name"] = name or f"AMD GPU {gfx}"
        mem = _vram_bytes(drm) if drm else None
        if mem is None:
            mem = _kfd_local_memory(os.path.join(base, node))
        if mem is not None:
            gpu["memory_gb"] = gib(mem)
        driver = read_text(ctx.path("sys/module/amdgpu/version"), 256)
        if driver and driver.strip():
            gpu["driver"] = clean_text(driver)
        gpus.append(gpu)
    if unreadable and not gpus:
        return VendorResult(gpus=None, why=f"KFD nodes {', '.join(unreadable)} are unreadable")
    return VendorResult(gpus=gpus)


def _drm_device_dir(ctx: ProbeContext, minor: int | None) -> str | None:
    if minor is None or minor <= 0:
        return None
    path = ctx.path("sys/class/drm", f"renderD{minor}", "device")
    return path if os.path.isdir(path) else None


def _product_name(device_dir: str) -> str | None:
    text = read_text(os.path.join(device_dir, "product_name"), 512)
    return clean_text(text) if text and text.strip() else None


def _vram_bytes(device_dir: str) -> int | None:
    text = read_text(os.path.join(device_dir, "mem_info_vram_total"), 64)
    if text and text.strip().isdigit():
        return int(text.strip())
    return None


def _kfd_local_memory(node_dir: str) -> int | None:
    # heap_type 1 and 2 are the public and private frame buffer (KFD topology docs).
    total = 0
    banks = os.path.join(node_dir, "mem_banks")
    for bank in listdir(banks):
        text = read_text(os.path.join(banks, bank, "properties"))
        if text is None:
            continue
        props = parse_properties(text)
        if props.get("heap_type") in (1, 2):
            total += props.get("size_in_bytes", 0)
    return total or None


_AGENT_SPLIT = r"^\*{5,}"


def parse_rocminfo(text: str) -> VendorResult:
    """GPU agents from ``rocminfo``: ``Name: gfx1100``, ``Marketing Name: ...``."""
    gpus: list[dict[str, Json]] = []
    import re  # where rocminfo ran (re costs a process half its start-up)

    for block in re.split(_AGENT_SPLIT, text, flags=re.MULTILINE):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.strip().partition(":")
            key = key.strip()
            if sep and key not in fields:  # the agent's own Name comes before its ISA's
                fields[key] = value.strip()
        if fields.get("Device Type") != "GPU":
            continue
        if len(gpus) == MAX_GPUS:
            return VendorResult(gpus=None, why=f"rocminfo listed more than {MAX_GPUS} GPUs")
        gfx = fields.get("Name", "")
        if not re.fullmatch(r"gfx[0-9a-f]{3,5}", gfx):
            continue
        gpus.append(
            {
                "vendor": "amd",
                "name": clean_text(fields.get("Marketing Name") or f"AMD GPU {gfx}"),
                "cuda_cc": None,
                "gfx": gfx,
            }
        )
    return VendorResult(gpus=gpus)


def probe_rocminfo(ctx: ProbeContext) -> VendorResult:
    """``rocminfo`` first (ROCm's own agent list), ``amd-smi`` where only that is installed."""
    result = run_tool(("rocminfo",), ctx)
    if result.missing:
        smi = run_tool(AMD_SMI_QUERY, ctx)
        if smi.missing:
            return VendorResult(
                gpus=None,
                why="no KFD topology in sysfs, and neither rocminfo nor amd-smi is on PATH",
            )
        return parse_amd_smi(smi.stdout) if smi.ok else VendorResult(gpus=None, why=smi.error)
    if not result.ok:
        return VendorResult(gpus=None, why=result.error)
    return parse_rocminfo(result.stdout)


AMD_SMI_QUERY = ("amd-smi", "static", "--asic", "--vram", "--json")
_MIB = {"B": 1.0 / (1 << 20), "KB": 1.0 / 1024, "MB": 1.0, "GB": 1024.0}


def parse_amd_smi(text: str) -> VendorResult:
    """``amd-smi static --asic --vram --json``: a list of GPUs (ROCm 6.0-6.2) or
    ``{"gpu_data": [...]}`` (6.3 on); ``vram.size`` as ``{"value", "unit"}`` or ``"N MB"``."""
    import json
    import re  # where amd-smi ran

    try:
        data = json.loads(text)
    except ValueError as err:
        why = clean_text(f"amd-smi printed something other than JSON: {err}")
        return VendorResult(gpus=None, why=why)
    rows = data.get("gpu_data") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        return VendorResult(gpus=None, why="amd-smi printed no list of GPUs")
    if len(rows) > MAX_GPUS:
        return VendorResult(
            gpus=None, why=f"amd-smi listed {len(rows)} GPUs, more than a host holds"
        )
    gpus: list[dict[str, Json]] = []
    for row in rows:
        asic = row.get("asic") if isinstance(row, dict) else None
        gfx = asic.get("target_graphics_version") if isinstance(asic, dict) else None
        if not isinstance(gfx, str) or not re.fullmatch(r"gfx[0-9a-f]{3,5}", gfx):
            continue
        name = asic.get("market_name") if isinstance(asic, dict) else None
        gpu: dict[str, Json] = {"vendor": "amd", "cuda_cc": None, "gfx": gfx}
        gpu["name"] = (
            clean_text(name) if isinstance(name, str) and name != "N/A" else f"AMD GPU {gfx}"
        )
        mib = _vram_mib(row.get("vram"))
        if mib:
            gpu["memory_gb"] = round(mib / 1024.0, 2)
        gpus.append(gpu)
    return VendorResult(gpus=gpus)


def _vram_mib(vram: object) -> float | None:
    size = vram.get("size") if isinstance(vram, dict) else None
    if isinstance(size, dict):
        value, unit = size.get("value"), str(size.get("unit", "MB")).upper()
    elif isinstance(size, str):
        value, _, unit = size.strip().partition(" ")
        unit = unit.strip().upper() or "MB"
    else:
        value, unit = size, "MB"
    try:
        return float(value) * _MIB[unit] if value is not None else None
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def probe_amd(ctx: ProbeContext, drm_amd: list[dict[str, Json]]) -> VendorResult:
    """KFD first; ``rocminfo`` only when DRM shows an AMD card that KFD does not describe."""
    if ctx.system != "linux":
        return VendorResult(gpus=[])
    kfd = probe_kfd(ctx)
    if kfd is not None and kfd.gpus is not None:
        result = kfd
    elif not drm_amd and kfd is None:
        # Neither KFD nor an AMD display device: no AMD GPU with a driver here.
        return VendorResult(gpus=[])
    else:
        result = probe_rocminfo(ctx)
        if result.gpus is None:
            if drm_amd:
                # The cards exist but their gfx target is unknown: keep what DRM knows.
                return VendorResult(gpus=drm_amd, why=result.why)
            return result
    visible = ctx.environ.get("ROCR_VISIBLE_DEVICES") or ctx.environ.get("HIP_VISIBLE_DEVICES")
    return apply_visible_devices(result, visible)
