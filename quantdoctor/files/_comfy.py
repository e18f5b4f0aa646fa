"""ComfyUI's own quantized checkpoints, recognised from the safetensors header alone.

Three generations of the same idea (weights stored low, with the scales needed to read
them back), as ComfyUI itself reads them:

- legacy *scaled fp8*: a ``scaled_fp8`` marker tensor and, per layer, fp8 ``weight`` with
  ``scale_weight`` (and ``scale_input``); ComfyUI rewrites it to ``float8_e4m3fn``
  (``comfy/utils.py`` ``convert_old_quants``, Comfy-Org/ComfyUI);
- ``_quantization_metadata`` in the header's metadata: ``{"format_version", "layers":
  {layer: {"format"}}}`` (ComfyUI ``QUANTIZATION.md``, "Checkpoint Format");
- per-layer ``<layer>.comfy_quant`` uint8 tensors holding that layer's JSON, with
  ``weight_scale`` (``weight_scale_2`` for NVFP4). The JSON is tensor data, which detect
  never reads; the format is read from the header the way ComfyUI itself falls back to
  when the JSON names none (``_infer_quant_format`` in ``comfy/ops.py``, ComfyUI v0.27.0):
  uint8 weight with ``weight_scale_2`` is NVFP4, an E8M0 (or 2-D uint8) block scale next to
  fp8 is MXFP8, int8 with a scale is int8, fp8 with a scale is fp8.

The formats are ComfyUI's ``QUANT_ALGOS`` (``comfy/quant_ops.py``); the hardware each
needs is comfy-kitchen's (Comfy-Org/comfy-kitchen@12b8bdd6 README.md, "Quantized Tensors"
and the HIP table). None of them is plain fp8 that can be upcast: every weight needs its
scale.
"""

from __future__ import annotations

from quantdoctor._json import loads
from quantdoctor.files._safetensors_header import TensorEntry

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from quantdoctor._namedtuple import NamedTuple


class ComfyFormat(NamedTuple):
    """One of ComfyUI's ``QUANT_ALGOS`` formats, as its files store it."""

    name: str
    layout: str
    #: weight values per stored element (NVFP4 packs two 4-bit values in each byte)
    values_per_element: int
    hardware: str


_FP8_HW = (
    "fp8 matmul on NVIDIA SM >= 8.9 (Ada, Hopper, Blackwell); AMD RDNA4 fp8 native, "
    "RDNA3/3.5 widened to bf16, RDNA2/RDNA1/Vega software tiles, CDNA not built; "
    "older GPUs dequantize to the compute dtype"
)
_BLACKWELL = (
    "NVIDIA SM >= 10.0 (Blackwell) for its matmul; elsewhere (AMD included) it runs "
    "in comfy-kitchen's eager fallback"
)
_INT8_HW = (
    "comfy-kitchen int8 kernels (CUDA, HIP, Ascend; eager elsewhere); no minimum "
    "generation is stated in its README"
)

FORMATS: dict[str, ComfyFormat] = {
    f.name: f
    for f in (
        ComfyFormat("float8_e4m3fn", "TensorCoreFP8E4M3Layout", 1, _FP8_HW),
        ComfyFormat("float8_e5m2", "TensorCoreFP8E5M2Layout", 1, _FP8_HW),
        ComfyFormat("nvfp4", "TensorCoreNVFP4Layout", 2, _BLACKWELL),
        ComfyFormat(
            "mxfp8",
            "TensorCoreMXFP8Layout",
            1,
            _BLACKWELL + "; ComfyUI's MXFP8 needs torch >= 2.10 (ComfyUI PR #12907)",
        ),
        ComfyFormat("int8_tensorwise", "TensorWiseINT8Layout", 1, _INT8_HW),
        ComfyFormat("convrot_w4a4", "TensorCoreConvRotW4A4Layout", 2, _INT8_HW),
        ComfyFormat("asym_w4a8_int8", "AsymW4A8Int8Layout", 2, _INT8_HW),
        ComfyFormat("awq_w4a16", "TensorCoreAWQW4A16Layout", 2, _INT8_HW),
    )
}
#: ComfyUI's ``_normalize_quant_format`` aliases.
_ALIASES = {
    "int8": "int8_tensorwise",
    "fp8": "float8_e4m3fn",
    "fp8_e4m3": "float8_e4m3fn",
    "fp8_e5m2": "float8_e5m2",
    "nvfp4_mixed": "nvfp4",
    "w4a8": "asym_w4a8_int8",
    "w4a16": "awq_w4a16",
    "awq": "awq_w4a16",
}
LOADER = (
    "loads in ComfyUI (its own loader, with comfy-kitchen for the kernels; ComfyUI wants "
    "PyTorch built for CUDA 13.0 or newer for them) or SD.Next (which reads comfy_quant "
    "files since 2026-07); it is not a diffusers quantizer, so there is no plan to check"
)
NEEDS_SCALES = (
    "its weights are stored with per-layer scales: upcasting them without the scales "
    "gives wrong weights (this is not a plain low-precision checkpoint)"
)


class ComfyFinding(NamedTuple):
    """Per-weight formats found in one checkpoint, and how they were found."""

    how: str
    weights: dict[str, tuple[str, int]]  # name -> (format, params)


def _format_of(weight: TensorEntry, by_name: dict[str, TensorEntry], layer: str) -> str | None:
    """ComfyUI's own fallback (``_infer_quant_format``), on dtypes and shapes only."""
    scale = by_name.get(layer + ".weight_scale")
    if (
        weight.dtype == "I8"
        and scale is not None
        and (layer + ".weight_zero" in by_name or layer + ".weight_zeros" in by_name)
    ):
        return "awq_w4a16"
    if weight.dtype == "I8" and layer + ".weight_s_rel" in by_name:
        return "asym_w4a8_int8"
    if weight.dtype == "U8" and len(weight.shape) == 2 and layer + ".weight_scale_2" in by_name:
        return "nvfp4"
    if scale is not None and scale.dtype == "F8_E8M0":
        return "mxfp8"
    if weight.dtype == "F8_E4M3" and scale is not None and scale.dtype == "U8":
        return "mxfp8" if len(scale.shape) == 2 else None
    if weight.dtype == "I8" and scale is not None:
        return "int8_tensorwise"
    if weight.dtype == "F8_E4M3":
        return "float8_e4m3fn"
    if weight.dtype == "F8_E5M2":
        return "float8_e5m2"
    if weight.dtype == "U8" and scale is not None:  # fp8 bytes in a uint8 container
        return "float8_e4m3fn"
    return None


def _params(fmt: str | None, weight: TensorEntry) -> int:
    spec = FORMATS.get(fmt or "")
    return weight.numel * (spec.values_per_element if spec else 1)


def find(by_name: dict[str, TensorEntry], metadata: dict[str, str]) -> ComfyFinding | None:
    """The ComfyUI-quantized weights of a checkpoint, or None when it is not one."""
    declared = _declared_layers(metadata)
    markers = [n[: -len(".comfy_quant")] for n in by_name if n.endswith(".comfy_quant")]
    sentinel = next((n for n in by_name if n == "scaled_fp8" or n.endswith(".scaled_fp8")), None)
    if declared is not None:
        found = ComfyFinding("_quantization_metadata in the header", {})
        layers = list(declared)
    elif markers:
        found = ComfyFinding(
            "per-layer .comfy_quant tensors (format read from dtypes and scales)", {}
        )
        layers = markers
    elif sentinel is not None:
        found = ComfyFinding("legacy scaled_fp8 marker with per-layer scale_weight", {})
        layers = [n[: -len(".scale_weight")] for n in by_name if n.endswith(".scale_weight")]
    else:
        return None
    for layer in layers:
        weight = by_name.get(layer + ".weight")
        if weight is None:
            continue
        fmt = (declared or {}).get(layer) or _format_of(weight, by_name, layer)
        if sentinel is not None and declared is None and not markers:
            # convert_old_quants: e4m3fn unless the marker itself is stored as e5m2
            fmt = "float8_e5m2" if by_name[sentinel].dtype == "F8_E5M2" else "float8_e4m3fn"
        found.weights[weight.name] = (fmt or "unknown", _params(fmt, weight))
    return found


def _declared_layers(metadata: dict[str, str]) -> dict[str, str] | None:
    """layer -> format from ``_quantization_metadata``; None when absent or unreadable."""
    raw = metadata.get("_quantization_metadata")
    if raw is None:
        return None
    try:
        data = loads(raw)
    except (ValueError, RecursionError):
        return None
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, dict):
        return None
    out: dict[str, str] = {}
    for layer, conf in layers.items():
        fmt = conf.get("format") if isinstance(conf, dict) else None
        if isinstance(layer, str) and isinstance(fmt, str):
            fmt = fmt.strip().lower()
            out[layer] = _ALIASES.get(fmt, fmt)
    return out


def notes(scheme: str | None, how: str) -> list[str]:
    """What a reader of a ComfyUI-quantized file must know: the loader, the hardware."""
    spec = FORMATS.get(scheme or "")
    lines = [f"ComfyUI quantized checkpoint ({how}); {NEEDS_SCALES}", LOADER]
    if spec is not None:
        lines.append(f"{spec.name} (comfy-kitchen {spec.layout}): {spec.hardware}")
    return lines
