"""Flatten an Environment into named facts: ``gpu.cuda_cc``, ``packages.torchao`` ...

A fact missing from the result is *unknown*; a fact whose value is ``None`` is *known
absent*. Works on the plain JSON mapping so that fast paths need no pydantic.
"""

from __future__ import annotations

from quantdoctor.rules.vocab import BACKEND_TABLE

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    Facts = dict[str, Any]
else:
    Facts = dict

_BACKEND_ROWS = {row[0]: row for row in BACKEND_TABLE}
_TOP = ("os", "wsl", "arch", "python", "backend")
_TORCH = ("version", "cuda", "hip", "xpu")
_GPU = ("vendor", "name", "cuda_cc", "gfx", "memory_gb", "driver")
_TRITON = ("version", "works")

#: Every fact name a rule may read (``packages.<name>`` stands for any distribution).
FACT_NAMES: tuple[str, ...] = (
    *_TOP,
    "backend.vendor",
    "backend.accelerator",
    "backend.triton",
    *(f"torch.{k}" for k in _TORCH),
    *(f"gpu.{k}" for k in _GPU),
    "gpu.count",
    *(f"triton.{k}" for k in _TRITON),
)


def _nested(out: Facts, data: Mapping[str, Any], key: str, fields: tuple[str, ...]) -> None:
    if key not in data:
        return
    value = data[key]
    for field in fields:
        if value is None:
            out[f"{key}.{field}"] = None
        elif field in value:
            out[f"{key}.{field}"] = value[field]


def facts_from_json(data: Mapping[str, Any], *, device: int = 0) -> Facts:
    """Facts from an Environment JSON mapping; ``device`` picks the GPU the model runs on."""
    out: Facts = {k: data[k] for k in _TOP if k in data}
    if "backend" in data:
        row = _BACKEND_ROWS.get(data["backend"])  # none: the backend is known absent
        out["backend.vendor"] = row[1] if row else None
        out["backend.accelerator"] = row[2] if row else None
        out["backend.triton"] = row[3] if row else None
    _nested(out, data, "torch", _TORCH)
    _nested(out, data, "triton", _TRITON)
    if "gpus" in data:
        gpus = data["gpus"] or []
        out["gpu.count"] = len(gpus)
        gpu = gpus[device] if 0 <= device < len(gpus) else None
        _nested(out, {"gpu": gpu}, "gpu", _GPU)
    for name, version in (data.get("packages") or {}).items():
        out[f"packages.{name}"] = version
    return out


def is_known_fact(name: str) -> bool:
    return name in FACT_NAMES or (name.startswith("packages.") and len(name) > len("packages."))
