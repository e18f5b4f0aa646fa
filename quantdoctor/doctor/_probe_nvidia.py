"""NVIDIA GPUs through NVML (ctypes), falling back to ``nvidia-smi`` with a timeout.

NVML answers name, exact compute capability, memory and driver without creating a CUDA
context (torch itself reads NVML through ``ctypes.CDLL("libnvidia-ml.so.1")``; see
peers.md section 7, and the H100 evidence: 0 MiB used, nothing in
``--query-compute-apps`` while NVML was open). ``nvidia-smi`` is the fallback because it
is a process (~30 ms) and can hang on broken hosts; it gets a hard timeout.

NVML is a driver library: on a broken host it can sleep forever, ``abort()`` the
process, or report 2^32-1 GPUs (#18). So it never runs in the caller's process: a forked
child (~2 ms; a fresh interpreter where fork is unsafe or absent) loads it and sends the
facts back as JSON, under the same timeout as the vendor tools.
"""

from __future__ import annotations

import os

from quantdoctor.doctor._probe_util import (
    MAX_GPUS,
    MAX_TEXT,
    Json,
    ProbeContext,
    clean_text,
    gib,
    run_tool,
)

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from typing import Any

NVML_SUCCESS = 0


class VendorResult:
    """GPUs of one vendor: a list (possibly empty) when known, else ``why`` it is unknown.

    ``uuids`` are in the order of ``gpus`` (NVML only), for CUDA_VISIBLE_DEVICES. A plain
    class: creating a NamedTuple costs ~0.5 ms of import on ``env --json``'s path.
    """

    __slots__ = ("gpus", "uuids", "why")

    def __init__(
        self,
        gpus: list[dict[str, Json]] | None,
        why: str | None = None,
        uuids: tuple[str, ...] = (),
    ) -> None:
        self.gpus = gpus
        self.why = why
        self.uuids = uuids

    def __repr__(self) -> str:
        return f"VendorResult(gpus={self.gpus!r}, why={self.why!r})"


def _nvml_candidates(ctx: ProbeContext) -> tuple[str, ...]:
    if ctx.nvml_libs is not None:
        return ctx.nvml_libs
    if ctx.system == "windows":
        # The driver installs nvml.dll in System32; older drivers under NVSMI.
        windir = ctx.environ.get("SystemRoot", r"C:\Windows")
        return (
            "nvml.dll",
            os.path.join(windir, "System32", "nvml.dll"),
            os.path.join(
                ctx.environ.get("ProgramFiles", r"C:\Program Files"),
                "NVIDIA Corporation",
                "NVSMI",
                "nvml.dll",
            ),
        )
    if ctx.system == "darwin":
        return ()
    # WSL keeps it in /usr/lib/wsl/lib, which the loader's path already names.
    return ("libnvidia-ml.so.1", "libnvidia-ml.so")


def probe_nvml(ctx: ProbeContext) -> VendorResult:
    """Every NVIDIA GPU NVML sees (PCI order), or why NVML could not answer; NVML runs
    in a child process bounded by ``ctx.timeout``."""
    candidates = _nvml_candidates(ctx)
    if not candidates:
        return VendorResult(gpus=[])
    if all(os.path.isabs(c) and not os.path.exists(c) for c in candidates):
        # Nothing to load: say so without a child process.
        return VendorResult(
            gpus=None, why="NVML did not load (" + ", ".join(candidates) + ": no such file)"
        )
    from quantdoctor.doctor._probe_child import run_in_child

    answer = run_in_child(
        "quantdoctor.doctor._probe_nvidia:nvml_answer", list(candidates), ctx.timeout, "NVML"
    )
    if isinstance(answer, str):
        return VendorResult(gpus=None, why=answer)
    try:
        gpus, why, uuids = answer
        return VendorResult(gpus=gpus, why=why, uuids=tuple(uuids))
    except (TypeError, ValueError):
        return VendorResult(gpus=None, why="NVML's child process answered nonsense")


def nvml_answer(candidates: list[str]) -> Json:
    """What the child sends back: ``[gpus, why, uuids]`` (runs in the child)."""
    result = probe_nvml_here(candidates)
    return [result.gpus, result.why, list(result.uuids)]


def probe_nvml_here(candidates: list[str] | tuple[str, ...]) -> VendorResult:
    """NVML in this process: only ever called in a child (``probe_nvml``)."""
    import ctypes

    lib = None
    load_errors: list[str] = []
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as err:
            load_errors.append(f"{name}: {clean_text(str(err))}")
    if lib is None:
        return VendorResult(gpus=None, why="NVML did not load (" + "; ".join(load_errors) + ")")
    try:
        return _query_nvml(lib)
    except AttributeError as err:
        # A library that loads but lacks the v2 entry points: too old or not NVML at all.
        return VendorResult(gpus=None, why=f"NVML lacks a function: {err}")


def _query_nvml(nvml: Any) -> VendorResult:
    import ctypes as c

    class Memory(c.Structure):
        """``nvmlMemory_t``, in bytes."""

        _fields_ = (("total", c.c_ulonglong), ("free", c.c_ulonglong), ("used", c.c_ulonglong))

    class MemoryV2(c.Structure):
        """``nvmlMemory_v2_t``: the total less what the driver reserves is what CUDA's
        ``cudaMemGetInfo`` (``torch.cuda.mem_get_info``) calls total. On an H100: NVML
        total 79.65 GiB, reserved 0.47 GiB, CUDA 79.18 GiB (probe-gpu-check-h100.json)."""

        _fields_ = (
            ("version", c.c_uint),
            ("total", c.c_ulonglong),
            ("reserved", c.c_ulonglong),
            ("free", c.c_ulonglong),
            ("used", c.c_ulonglong),
        )

    def usable_bytes(handle: Any) -> int | None:
        v2 = MemoryV2()
        v2.version = c.sizeof(MemoryV2) | (2 << 24)  # NVML_STRUCT_VERSION(Memory, 2)
        fn = getattr(nvml, "nvmlDeviceGetMemoryInfo_v2", None)  # drivers since R510
        if fn is not None and fn(handle, c.byref(v2)) == NVML_SUCCESS:
            if v2.reserved <= v2.total:
                return int(v2.total - v2.reserved)
            return None  # more reserved than there is: a lying driver, memory unknown
        v1 = Memory()
        if nvml.nvmlDeviceGetMemoryInfo(handle, c.byref(v1)) == NVML_SUCCESS:
            return int(v1.total)
        return None

    def err_text(code: int) -> str:
        try:
            fn = nvml.nvmlErrorString
            fn.restype = c.c_char_p
            raw = fn(code)
            text = clean_text(raw.decode("utf-8", "replace")) if raw else ""
            return f"{text} (NVML error {code})" if text else f"NVML error {code}"
        except AttributeError:
            return f"NVML error {code}"

    code = nvml.nvmlInit_v2()
    if code != NVML_SUCCESS:
        return VendorResult(gpus=None, why=f"nvmlInit failed: {err_text(code)}")
    try:
        buf = c.create_string_buffer(96)
        driver: str | None = None
        if nvml.nvmlSystemGetDriverVersion(buf, 96) == NVML_SUCCESS:
            driver = clean_text(buf.value.decode("utf-8", "replace"))
        count = c.c_uint(0)
        code = nvml.nvmlDeviceGetCount_v2(c.byref(count))
        if code != NVML_SUCCESS:
            return VendorResult(gpus=None, why=f"nvmlDeviceGetCount failed: {err_text(code)}")
        if count.value > MAX_GPUS:
            return VendorResult(
                gpus=None, why=f"NVML reported {count.value} GPUs, more than a host holds"
            )
        gpus: list[dict[str, Json]] = []
        uuids: list[str] = []
        for i in range(count.value):
            handle = c.c_void_p()
            code = nvml.nvmlDeviceGetHandleByIndex_v2(i, c.byref(handle))
            if code != NVML_SUCCESS:
                return VendorResult(gpus=None, why=f"GPU {i}: {err_text(code)}")
            gpu: dict[str, Json] = {"vendor": "nvidia"}
            if nvml.nvmlDeviceGetName(handle, buf, 96) == NVML_SUCCESS:
                gpu["name"] = clean_text(buf.value.decode("utf-8", "replace"))
            major, minor = c.c_int(0), c.c_int(0)
            if (
                nvml.nvmlDeviceGetCudaComputeCapability(handle, c.byref(major), c.byref(minor))
                == NVML_SUCCESS
                and major.value >= 0
                and minor.value >= 0
            ):
                gpu["cuda_cc"] = f"{major.value}.{minor.value}"
            gpu["gfx"] = None
            total = usable_bytes(handle)
            if total is not None:
                gpu["memory_gb"] = gib(total)
            if driver is not None:
                gpu["driver"] = driver
            uuid = ""
            if nvml.nvmlDeviceGetUUID(handle, buf, 96) == NVML_SUCCESS:
                uuid = clean_text(buf.value.decode("utf-8", "replace"))
            gpus.append(gpu)
            uuids.append(uuid)
        return VendorResult(gpus=gpus, uuids=tuple(uuids))
    finally:
        nvml.nvmlShutdown()


SMI_FIELDS: tuple[str, ...] = ("name", "compute_cap", "memory.total", "driver_version", "uuid")


def smi_query(fields: tuple[str, ...]) -> tuple[str, ...]:
    return ("nvidia-smi", "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits")


def probe_nvidia_smi(ctx: ProbeContext) -> VendorResult:
    """The same facts from ``nvidia-smi``; a missing tool means no NVIDIA driver here."""
    fields = SMI_FIELDS
    result = run_tool(smi_query(fields), ctx)
    if result.error and "compute_cap" in result.error and "valid field" in result.error:
        # Drivers before 510 reject the field; the name, memory and driver still help.
        fields = tuple(f for f in SMI_FIELDS if f != "compute_cap")
        result = run_tool(smi_query(fields), ctx)
    if result.missing:
        return VendorResult(gpus=[])
    if not result.ok:
        return VendorResult(gpus=None, why=result.error)
    return parse_nvidia_smi(result.stdout, fields)


def parse_nvidia_smi(text: str, fields: tuple[str, ...] = SMI_FIELDS) -> VendorResult:
    """Parse the CSV lines of ``--query-gpu=fields``; ``[N/A]`` fields stay unknown."""
    gpus: list[dict[str, Json]] = []
    uuids: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if len(gpus) == MAX_GPUS:
            return VendorResult(gpus=None, why=f"nvidia-smi listed more than {MAX_GPUS} GPUs")
        # A GPU name has no comma; split from the left so a stray one stays in the uuid.
        values = [v.strip() for v in line.split(",", len(fields) - 1)]
        if len(values) < len(fields) - ("uuid" in fields):
            shown = clean_text(repr(line[:MAX_TEXT]))
            return VendorResult(gpus=None, why=f"nvidia-smi printed an unexpected line: {shown}")
        row = dict(zip(fields, values, strict=False))
        gpu: dict[str, Json] = {"vendor": "nvidia"}
        name, cc = row.get("name", ""), row.get("compute_cap", "")
        if _known(name):
            gpu["name"] = clean_text(name)
        if _known(cc) and _is_cc(cc):
            gpu["cuda_cc"] = cc
        gpu["gfx"] = None
        mib = _number(row.get("memory.total", ""))  # MiB, as nounits prints it
        if mib is not None:
            gpu["memory_gb"] = round(mib / 1024.0, 2)
        driver = row.get("driver_version", "")
        if _known(driver):
            gpu["driver"] = clean_text(driver)
        gpus.append(gpu)
        uuids.append(row.get("uuid", ""))
    return VendorResult(gpus=gpus, uuids=tuple(uuids))


def _known(field: str) -> bool:
    return bool(field) and not field.startswith("[") and field.upper() != "N/A"


def _number(text: str) -> float | None:
    """A plain decimal, or ``None`` for "[Not Supported]", "N/A" and the like."""
    head, _, tail = text.partition(".")
    if head.isdigit() and (not tail or tail.isdigit()):
        return float(text)
    return None


def _is_cc(text: str) -> bool:
    major, _, minor = text.partition(".")
    return major.isdigit() and minor.isdigit()


def no_nvidia_device_nodes(ctx: ProbeContext) -> bool:
    """Linux without ``/dev/nvidiactl`` (and not WSL's ``/dev/dxg``): no NVIDIA driver to talk
    to, so no NVIDIA GPU can run a model here. Saves loading ctypes and NVML at all."""
    return (
        ctx.system == "linux"
        and not os.path.exists(ctx.path("dev", "nvidiactl"))
        and not os.path.exists(ctx.path("dev", "dxg"))
    )


def probe_nvidia(ctx: ProbeContext) -> VendorResult:
    """NVML first (in process, no context, ~10 ms), ``nvidia-smi`` second (a process)."""
    if no_nvidia_device_nodes(ctx):
        return VendorResult(gpus=[])
    nvml = probe_nvml(ctx)
    if nvml.gpus is not None:
        return apply_visible_devices(nvml, ctx.environ.get("CUDA_VISIBLE_DEVICES"))
    smi = probe_nvidia_smi(ctx)
    if smi.gpus is not None:
        if smi.gpus or ctx.system == "darwin":
            return apply_visible_devices(smi, ctx.environ.get("CUDA_VISIBLE_DEVICES"))
        # No nvidia-smi either: an NVML that failed to *load* means no driver is installed.
        if nvml.why and nvml.why.startswith("NVML did not load"):
            return VendorResult(gpus=[])
        return VendorResult(gpus=None, why=nvml.why)
    return VendorResult(gpus=None, why=f"{nvml.why}; then {smi.why}")


def apply_visible_devices(result: VendorResult, visible: str | None) -> VendorResult:
    """Reorder and filter to what CUDA will number 0, 1, ... (NVML ignores the variable).

    CUDA reads indices or ``GPU-`` UUID prefixes and stops at the first entry it cannot
    resolve (pynvml#28, pytorch#94568). MIG ids are not resolved here; they leave the
    list as NVML gave it.
    """
    if visible is None or result.gpus is None:
        return result
    chosen: list[int] = []  # indices: two identical cards have equal entries
    for token in (t.strip() for t in visible.split(",")):
        index = _resolve(token, result.uuids, len(result.gpus))
        if index is None or index in chosen:
            break
        chosen.append(index)
    if any(t.strip().startswith("MIG-") for t in visible.split(",")):
        return result
    return VendorResult(
        gpus=[result.gpus[i] for i in chosen],
        uuids=tuple(result.uuids[i] if i < len(result.uuids) else "" for i in chosen),
    )


def _resolve(token: str, uuids: tuple[str, ...], count: int) -> int | None:
    if token.isdigit():
        i = int(token)
        return i if i < count else None
    if token.startswith("GPU-"):
        matches = [i for i, u in enumerate(uuids) if u.startswith(token)]
        return matches[0] if len(matches) == 1 else None
    return None
