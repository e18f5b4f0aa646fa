"""On a machine with NVIDIA GPUs: the probe leaves no CUDA context, and says what torch says.

1. ``nvidia-smi --query-compute-apps`` and the used memory, before; then ``probe_dict()``
   in this process (NVML through ctypes) and ``quantdoctor env --json`` in a child;
   then the same query again, with this process still alive: its pid must not be listed
   and no memory may have been taken. torch must not be in ``sys.modules``.
2. A control: a child that creates a CUDA context *is* listed, so the check can fail.
3. Ground truth from torch, in a child: ``get_device_name``, ``get_device_capability``,
   ``mem_get_info`` per device, ``torch.__version__``/``version.cuda``; compared with the
   probe's answers. ``memory_gb`` is NVML's total; CUDA's total is smaller by what the
   driver reserves, so NVML's v2 memory query (total, reserved) is shown beside them.
4. ``--deep``: the Triton kernel probe, in a child, really compiles and runs.

Writes ``probe-gpu-check-<tag>.json`` into ``--out`` and exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
GIB = float(1 << 30)

TORCH_TRUTH = r"""
import json, torch
out = {"version": torch.__version__, "cuda": torch.version.cuda, "devices": []}
for i in range(torch.cuda.device_count()):
    free, total = torch.cuda.mem_get_info(i)
    out["devices"].append({
        "name": torch.cuda.get_device_name(i),
        "capability": list(torch.cuda.get_device_capability(i)),
        "mem_get_info_total": total,
        "total_memory": torch.cuda.get_device_properties(i).total_memory,
    })
print(json.dumps(out))
"""

HOLD_CONTEXT = r"""
import sys, time, torch
x = torch.zeros(1, device="cuda")
torch.cuda.synchronize()
print("ready", flush=True)
sys.stdin.readline()
"""


def smi(*query: str) -> str:
    out = subprocess.run(
        ["nvidia-smi", *query, "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout.strip()


def compute_apps() -> list[dict[str, Any]]:
    rows = []
    for line in smi("--query-compute-apps=pid,used_memory").splitlines():
        if line.strip():
            pid, mem = (f.strip() for f in line.split(",", 1))
            rows.append({"pid": int(pid), "used_mib": mem})
    return rows


def used_mib() -> list[int]:
    return [int(v) for v in smi("--query-gpu=memory.used").split()]


def nvml_v2_memory() -> list[dict[str, int]]:
    """NVML's v2 memory info (total, reserved, free, used), for the memory comparison."""

    class MemoryV2(ctypes.Structure):
        _fields_ = (
            ("version", ctypes.c_uint),
            ("total", ctypes.c_ulonglong),
            ("reserved", ctypes.c_ulonglong),
            ("free", ctypes.c_ulonglong),
            ("used", ctypes.c_ulonglong),
        )

    lib = ctypes.CDLL("libnvidia-ml.so.1")
    out = []
    if lib.nvmlInit_v2() != 0:
        return out
    try:
        count = ctypes.c_uint(0)
        lib.nvmlDeviceGetCount_v2(ctypes.byref(count))
        for i in range(count.value):
            handle = ctypes.c_void_p()
            lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle))
            mem = MemoryV2()
            mem.version = ctypes.sizeof(MemoryV2) | (2 << 24)
            code = lib.nvmlDeviceGetMemoryInfo_v2(handle, ctypes.byref(mem))
            if code == 0:
                out.append({"total": mem.total, "reserved": mem.reserved, "used": mem.used})
    finally:
        lib.nvmlShutdown()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="gpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if shutil.which("nvidia-smi") is None:
        print("gpu_probe_check: needs an NVIDIA driver (nvidia-smi is not on PATH)")
        return 2
    checks: dict[str, bool] = {}
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    # 1. No context from the probe.
    before_apps, before_used = compute_apps(), used_mib()
    t = time.perf_counter()
    from quantdoctor.doctor.probe import probe_dict

    env = probe_dict()
    probe_ms = (time.perf_counter() - t) * 1000
    cli = subprocess.run(
        [sys.executable, "-m", "quantdoctor", "env", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    cli_env = json.loads(cli.stdout)
    after_apps, after_used = compute_apps(), used_mib()
    result["no_context"] = {
        "pid": os.getpid(),
        "compute_apps_before": before_apps,
        "compute_apps_after": after_apps,
        "used_mib_before": before_used,
        "used_mib_after": after_used,
        "probe_ms_in_process": round(probe_ms, 2),
        "torch_imported": "torch" in sys.modules,
    }
    checks["probe left no compute app"] = not any(a["pid"] == os.getpid() for a in after_apps)
    checks["no compute apps appeared"] = len(after_apps) <= len(before_apps)
    checks["used memory unchanged (+-2 MiB)"] = all(
        abs(a - b) <= 2 for a, b in zip(after_used, before_used, strict=True)
    )
    checks["torch not imported by probe"] = "torch" not in sys.modules
    checks["env --json equals probe_dict()"] = cli_env == env

    # 2. The control: a real CUDA context is seen by the same query.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CONTEXT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    ready = holder.stdout.readline().strip() == "ready"
    control_apps = compute_apps()
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(timeout=60)
    result["control"] = {"pid": holder.pid, "compute_apps": control_apps, "ready": ready}
    checks["control: a CUDA context is listed"] = any(a["pid"] == holder.pid for a in control_apps)

    # 3. Ground truth from torch.
    truth_proc = subprocess.run(
        [sys.executable, "-c", TORCH_TRUTH], capture_output=True, text=True, timeout=120
    )
    truth = json.loads(truth_proc.stdout)
    nvml2 = nvml_v2_memory()
    rows = []
    gpus = [g for g in env.get("gpus") or [] if g.get("vendor") == "nvidia"]
    checks["same number of GPUs"] = len(gpus) == len(truth["devices"])
    for i, (gpu, dev) in enumerate(zip(gpus, truth["devices"], strict=False)):
        cc = "{}.{}".format(*dev["capability"])
        cuda_total = dev["mem_get_info_total"] / GIB
        row = {
            "index": i,
            "probe": gpu,
            "torch": dev,
            "nvml_v2": nvml2[i] if i < len(nvml2) else None,
            "memory_gb_probe": gpu.get("memory_gb"),
            "memory_gb_cuda": round(cuda_total, 3),
            "memory_ratio_probe_over_cuda": round(gpu.get("memory_gb", 0) / cuda_total, 4),
        }
        if i < len(nvml2):
            row["nvml_total_minus_reserved_gb"] = round(
                (nvml2[i]["total"] - nvml2[i]["reserved"]) / GIB, 3
            )
        rows.append(row)
        checks[f"gpu {i}: name"] = gpu.get("name") == dev["name"]
        checks[f"gpu {i}: compute capability"] = gpu.get("cuda_cc") == cc
        checks[f"gpu {i}: memory within 1% of CUDA's total"] = (
            abs(gpu.get("memory_gb", 0) / cuda_total - 1) < 0.01
        )
    result["ground_truth"] = {"torch": {k: truth[k] for k in ("version", "cuda")}, "gpus": rows}
    torch_info = env.get("torch") or {}
    checks["torch version"] = torch_info.get("version") == truth["version"]
    checks["torch cuda"] = torch_info.get("cuda") == truth["cuda"]
    checks["backend is cuda"] = env.get("backend") == "cuda"

    # 4. The deep Triton probe.
    t = time.perf_counter()
    deep = probe_dict(deep=True)
    result["deep"] = {
        "triton": deep.get("triton"),
        "notes": (deep.get("notes") or {}).get("triton.works"),
        "seconds": round(time.perf_counter() - t, 2),
    }
    checks["--deep: triton compiles and runs a kernel"] = (deep.get("triton") or {}).get(
        "works"
    ) is True
    checks["torch still not imported"] = "torch" not in sys.modules

    result["environment"] = env
    result["checks"] = checks
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"probe-gpu-check-{args.tag}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for row in rows:
        print(
            f"gpu {row['index']}: probe {row['probe'].get('name')} cc {row['probe'].get('cuda_cc')}"
            f" {row['memory_gb_probe']} GiB; torch {row['torch']['name']}"
            f" cc {row['torch']['capability']} {row['memory_gb_cuda']} GiB (CUDA total);"
            f" NVML total-reserved {row.get('nvml_total_minus_reserved_gb')} GiB"
        )
    print(
        f"compute apps before {before_apps}, after {after_apps}; used MiB {before_used} ->"
        f" {after_used}; control {control_apps}"
    )
    print(f"probe_dict() in process: {probe_ms:.1f} ms; --deep: {result['deep']}")
    for what, ok in checks.items():
        print(f"  [{'pass' if ok else 'FAIL'}] {what}")
    print(f"wrote {path}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
