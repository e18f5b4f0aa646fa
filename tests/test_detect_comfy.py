"""ComfyUI's quantized checkpoints: named, counted unpacked, never taken for plain fp8.

The files are written with safetensors' own writer, the way ComfyUI saves a quantized
layer (``_quantized_weight_state_dict`` in ``comfy/ops.py``: ``weight``, the layout's
``weight_scale``/``weight_scale_2`` and a uint8 ``comfy_quant`` JSON tensor), with the
dtypes and shapes comfy-kitchen 0.2.40's layouts produce on the CPU (``RECORDED``, checked
against comfy-kitchen itself when it is installed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quantdoctor.files.detect import detect

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

OUT, IN = 96, 160
#: comfy-kitchen 0.2.40 layout -> (qdata dtype, qdata shape, {suffix: (dtype, shape)})
#: for a [96, 160] bf16 weight, as ``Layout.quantize`` + ``state_dict_tensors`` give them.
RECORDED: dict[str, tuple[str, tuple[int, ...], dict[str, tuple[str, tuple[int, ...]]]]] = {
    "float8_e4m3fn": ("float8_e4m3fn", (96, 160), {"_scale": ("float32", ())}),
    "nvfp4": (
        "uint8",
        (96, 80),
        {"_scale": ("float8_e4m3fn", (128, 12)), "_scale_2": ("float32", ())},
    ),
    "mxfp8": ("float8_e4m3fn", (96, 160), {"_scale": ("float8_e8m0fnu", (128, 8))}),
    "int8_tensorwise": ("int8", (96, 160), {"_scale": ("float32", (96, 1))}),
}
_LAYOUTS = {
    "float8_e4m3fn": ("TensorCoreFP8Layout", {}),
    "nvfp4": ("TensorCoreNVFP4Layout", {}),
    "mxfp8": ("TensorCoreMXFP8Layout", {}),
    "int8_tensorwise": ("TensorWiseINT8Layout", {"per_channel": True}),
}
FLUX = (
    "double_blocks.0.img_attn.qkv",
    "double_blocks.0.img_attn.proj",
    "single_blocks.0.linear1",
)


def _quantized_layer(prefix: str, fmt: str, marker: bool = True) -> dict[str, Any]:
    dtype, shape, extras = RECORDED[fmt]
    sd = {f"{prefix}.weight": torch.zeros(shape, dtype=getattr(torch, dtype))}
    for suffix, (sdtype, sshape) in extras.items():
        sd[f"{prefix}.weight{suffix}"] = torch.zeros(sshape, dtype=getattr(torch, sdtype))
    if marker:
        conf = json.dumps({"format": fmt}).encode()
        sd[f"{prefix}.comfy_quant"] = torch.tensor(list(conf), dtype=torch.uint8)
    sd[f"{prefix}.bias"] = torch.zeros(OUT, dtype=torch.bfloat16)
    return sd


def _flux_file(
    path: Path, fmt: str, marker: bool = True, metadata: dict[str, str] | None = None
) -> Path:
    sd: dict[str, Any] = {
        "double_blocks.0.img_attn.norm.key_norm.scale": torch.zeros(128, dtype=torch.bfloat16),
        "img_in.weight": torch.zeros(3072, 64, dtype=torch.bfloat16),
    }
    for layer in FLUX:
        sd.update(_quantized_layer(layer, fmt, marker))
    safetensors_torch.save_file(sd, str(path), metadata=metadata)
    return path


EXPECTED_PARAMS = 128 + 3072 * 64 + len(FLUX) * (OUT * IN + OUT)


@pytest.mark.parametrize("fmt", sorted(RECORDED))
def test_a_comfy_quant_file_is_named_with_its_true_parameter_count(
    tmp_path: Path, fmt: str
) -> None:
    found = detect(_flux_file(tmp_path / "m.safetensors", fmt))
    assert (found.engine, found.scheme) == ("comfyui", fmt)
    assert found.parameters == EXPECTED_PARAMS, "NVFP4 counts two values per stored byte"
    assert (found.component, found.architecture) == ("transformer", "flux")
    assert found.plan is None, "ComfyUI loads it; no diffusers quantizer plan to check"
    text = " ".join(found.notes)
    assert "upcasting them without the scales gives wrong weights" in text
    assert "loads in ComfyUI" in text
    assert "plain checkpoint stored in float8" not in text


@pytest.mark.parametrize(
    ("fmt", "needs"),
    [
        ("float8_e4m3fn", "SM >= 8.9"),
        ("nvfp4", "SM >= 10.0"),
        ("mxfp8", "torch >= 2.10"),
        ("int8_tensorwise", "int8 kernels"),
    ],
)
def test_a_comfy_quant_file_says_the_hardware_it_needs(
    tmp_path: Path, fmt: str, needs: str
) -> None:
    found = detect(_flux_file(tmp_path / "m.safetensors", fmt))
    assert any(needs in n for n in found.notes), found.notes


def test_quantization_metadata_in_the_header_names_the_formats(tmp_path: Path) -> None:
    layers = {layer: {"format": "nvfp4"} for layer in FLUX}
    meta = {"_quantization_metadata": json.dumps({"format_version": "1.0", "layers": layers})}
    found = detect(_flux_file(tmp_path / "m.safetensors", "nvfp4", marker=False, metadata=meta))
    assert (found.engine, found.scheme) == ("comfyui", "nvfp4")
    assert found.parameters == EXPECTED_PARAMS
    assert any("_quantization_metadata" in n for n in found.notes)


def test_a_legacy_scaled_fp8_file_needs_its_scales(tmp_path: Path) -> None:
    """ComfyUI's scaled fp8: a ``scaled_fp8`` marker and ``scale_weight`` per layer."""
    sd: dict[str, Any] = {
        "model.diffusion_model.scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)
    }
    for layer in FLUX:
        p = f"model.diffusion_model.{layer}"
        sd[f"{p}.weight"] = torch.zeros(OUT, IN, dtype=torch.float8_e4m3fn)
        sd[f"{p}.scale_weight"] = torch.ones((), dtype=torch.float32)
        sd[f"{p}.bias"] = torch.zeros(OUT, dtype=torch.bfloat16)
    sd["model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale"] = torch.zeros(128)
    sd["model.diffusion_model.img_in.weight"] = torch.zeros(3072, 64, dtype=torch.bfloat16)
    path = tmp_path / "flux-scaled-fp8.safetensors"
    safetensors_torch.save_file(sd, str(path))
    found = detect(path)
    assert (found.engine, found.scheme) == ("comfyui", "float8_e4m3fn")
    assert found.architecture == "flux"
    assert found.parameters == EXPECTED_PARAMS
    text = " ".join(found.notes)
    assert "legacy scaled_fp8" in text and "wrong weights" in text
    assert "plain checkpoint stored in float8" not in text


def test_fp8_weights_with_scales_but_no_comfy_marker_are_not_called_plain(tmp_path: Path) -> None:
    sd = {
        "blk.weight": torch.zeros(OUT, IN, dtype=torch.float8_e4m3fn),
        "blk.weight_scale": torch.ones((), dtype=torch.float32),
    }
    path = tmp_path / "m.safetensors"
    safetensors_torch.save_file(sd, str(path))
    found = detect(path)
    assert found.engine is None
    assert any("scaled fp8 format" in n and "wrong weights" in n for n in found.notes)
    assert not any("plain checkpoint" in n for n in found.notes)


@pytest.mark.parametrize("fmt", sorted(RECORDED))
def test_recorded_shapes_are_comfy_kitchens(fmt: str) -> None:
    tensor = pytest.importorskip("comfy_kitchen.tensor")
    name, kwargs = _LAYOUTS[fmt]
    layout = getattr(tensor, name)
    qdata, params = layout.quantize(torch.randn(OUT, IN, dtype=torch.bfloat16), **kwargs)
    dtype, shape, extras = RECORDED[fmt]
    assert (str(qdata.dtype), tuple(qdata.shape)) == (f"torch.{dtype}", shape)
    theirs = {
        k: (str(v.dtype).removeprefix("torch."), tuple(v.shape))
        for k, v in layout.state_dict_tensors(qdata, params).items()
        if k
    }
    assert theirs == extras
