"""GPUs where sysfs does not exist: Apple silicon (MPS) and Windows (WMI).

Each runs only on its own platform. Apple silicon answers from ``sysctl`` through libc
(no process): the GPU shares the machine's memory, so its memory is ``hw.memsize``.
Windows asks WMI for the video controllers in a PowerShell subprocess with a timeout
(torchruntime's ``device_db.py`` route); WMI's ``AdapterRAM`` is a uint32 and caps near
4 GiB, so a value at the cap is left unknown rather than reported wrong.
"""

from __future__ import annotations

import re

from quantdoctor.doctor._probe_nvidia import VendorResult
from quantdoctor.doctor._probe_util import Json, ProbeContext, gib, run_tool


def _sysctl(name: str, *, integer: bool = False) -> str | int | None:
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        fn = libc.sysctlbyname
    except (OSError, AttributeError):
        return None
    size = ctypes.c_size_t(0)
    if fn(name.encode(), None, ctypes.byref(size), None, 0) != 0 or size.value == 0:
        return None
    if integer:
        value = ctypes.c_uint64(0)
        size = ctypes.c_size_t(ctypes.sizeof(value))
        if fn(name.encode(), ctypes.byref(value), ctypes.byref(size), None, 0) != 0:
            return None
        return int(value.value)
    buf = ctypes.create_string_buffer(size.value)
    if fn(name.encode(), buf, ctypes.byref(size), None, 0) != 0:
        return None
    return buf.value.decode("utf-8", "replace")


def probe_apple(ctx: ProbeContext) -> VendorResult:
    """The Apple GPU of an arm64 Mac; Intel Macs are left unknown (no MPS rules need them)."""
    if ctx.system != "darwin":
        return VendorResult(gpus=[])
    if ctx.machine not in ("arm64", "aarch64"):
        return VendorResult(gpus=None, why="GPUs of Intel Macs are not probed")
    gpu: dict[str, Json] = {"vendor": "apple", "cuda_cc": None, "gfx": None}
    brand = _sysctl("machdep.cpu.brand_string")
    gpu["name"] = f"{brand} GPU" if isinstance(brand, str) and brand else "Apple GPU"
    mem = _sysctl("hw.memsize", integer=True)
    if isinstance(mem, int) and mem > 0:
        gpu["memory_gb"] = gib(mem)
    return VendorResult(gpus=[gpu])


WMI_QUERY = (
    "powershell",
    "-NoProfile",
    "-NonInteractive",
    "-Command",
    "Get-CimInstance Win32_VideoController | "
    "Select-Object Name,PNPDeviceID,AdapterRAM,DriverVersion | ConvertTo-Json -Compress",
)
_VEN = re.compile(r"VEN_([0-9A-Fa-f]{4})")
_VENDORS = {"10de": "nvidia", "1002": "amd", "8086": "intel"}


def parse_wmi(text: str) -> VendorResult:
    """``Win32_VideoController`` as PowerShell's ConvertTo-Json prints it (one or a list)."""
    import json

    try:
        data = json.loads(text) if text.strip() else []
    except ValueError as err:
        return VendorResult(gpus=None, why=f"PowerShell printed something other than JSON: {err}")
    rows = data if isinstance(data, list) else [data]
    gpus: list[dict[str, Json]] = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        m = _VEN.search(str(row.get("PNPDeviceID") or ""))
        vendor = _VENDORS.get(m.group(1).lower(), "other") if m else "other"
        if vendor == "other" and "PCI\\" not in str(row.get("PNPDeviceID") or ""):
            continue  # Microsoft Basic Display / remote adapters are not GPUs to run on
        gpu: dict[str, Json] = {"vendor": vendor, "cuda_cc": None, "gfx": None}
        if vendor == "amd":
            gpu.pop("gfx")  # WMI does not know it: unknown, not absent
        if vendor == "nvidia":
            gpu.pop("cuda_cc")
        if row.get("Name"):
            gpu["name"] = str(row["Name"])
        ram = row.get("AdapterRAM")
        if isinstance(ram, int) and 0 < ram < 0xFFF00000:
            gpu["memory_gb"] = gib(ram)
        if row.get("DriverVersion"):
            gpu["driver"] = str(row["DriverVersion"])
        gpus.append(gpu)
    return VendorResult(gpus=gpus)


def probe_windows(ctx: ProbeContext) -> VendorResult:
    """Non-NVIDIA adapters on Windows (NVML answers for NVIDIA ones, with their CC)."""
    if ctx.system != "windows":
        return VendorResult(gpus=[])
    result = run_tool(WMI_QUERY, ctx, timeout=max(ctx.timeout, 5.0))
    if not result.ok:
        return VendorResult(gpus=None, why=result.error)
    return parse_wmi(result.stdout)
