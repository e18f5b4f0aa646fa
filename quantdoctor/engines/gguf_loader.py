"""GGUF files into torch modules whose linear layers keep the quantized blocks.

``GGUFLinear`` holds a weight's raw GGUF bytes in a ``uint8`` buffer and dequantizes
them in torch, on the buffer's device, at every forward (as diffusers' and ComfyUI's
GGUF layers do). The bytes are a plain buffer, not a tensor subclass, so the layer moves
with ``.to()`` like any other. ``load_gguf`` fills a module from a file written by
``gguf.GGUFWriter`` (or llama.cpp); ``save_gguf`` writes one with the types gguf-py
can quantize.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from typing import TYPE_CHECKING, Any

import torch

from quantdoctor._ggml import BY_ID, BY_NAME, GGML_TYPES
from quantdoctor.engines.base import (
    engine_module,
    layer_progress,
    module_device,
    named_linears,
    set_submodule,
    torch_dtype,
)
from quantdoctor.engines.gguf_dequant import TYPES, dequantize
from quantdoctor.errors import IncompatiblePlanError, InvalidInputError, UnreadableFileError

if TYPE_CHECKING:
    from quantdoctor.rules.models import Environment

#: Types gguf-py (0.19) can quantize to; K-quants and IQ types it only dequantizes.
QUANTIZABLE: tuple[str, ...] = ("F32", "F16", "BF16", "Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0")
#: Types that are plain floating point: loaded as ordinary weights, not kept as blocks.
FLOAT_TYPES: tuple[str, ...] = tuple(t.name for t in GGML_TYPES if t.plain_float)


class GGUFLinear(torch.nn.Module):
    """A linear layer whose weight stays in GGUF blocks and is dequantized per forward."""

    qweight: torch.Tensor

    def __init__(
        self,
        qweight: torch.Tensor,
        qtype: str,
        in_features: int,
        out_features: int,
        bias: torch.Tensor | None,
        compute_dtype: torch.dtype,
    ) -> None:
        super().__init__()
        if qtype not in TYPES:
            raise InvalidInputError(f"GGUF type {qtype}: valid types are {', '.join(TYPES)}")
        self.qtype = qtype
        self.in_features = in_features
        self.out_features = out_features
        self.compute_dtype = compute_dtype
        self.register_buffer("qweight", qweight)
        self.bias: torch.nn.Parameter | None = (
            None if bias is None else torch.nn.Parameter(bias, requires_grad=False)
        )

    @classmethod
    def from_linear(
        cls, linear: torch.nn.Linear, qtype: str, compute_dtype: torch.dtype
    ) -> GGUFLinear:
        """Quantize a linear layer's weight with gguf-py; the blocks go back to its device."""
        gguf = engine_module("gguf")
        weight = linear.weight.detach()
        blocks = gguf.quants.quantize(
            weight.to("cpu", torch.float32).numpy(), gguf.GGMLQuantizationType[qtype]
        )
        raw = torch.from_numpy(blocks.view("uint8").reshape(linear.out_features, -1))
        bias = None if linear.bias is None else linear.bias.detach()
        return cls(
            raw.to(weight.device),
            qtype,
            linear.in_features,
            linear.out_features,
            bias,
            compute_dtype,
        )

    def dequantized_weight(self) -> torch.Tensor:
        return dequantize(
            self.qweight, self.qtype, (self.out_features, self.in_features), self.compute_dtype
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.dequantized_weight()
        bias = None if self.bias is None else self.bias.to(self.compute_dtype)
        out = torch.nn.functional.linear(x.to(self.compute_dtype), weight, bias)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"qtype={self.qtype}, compute_dtype={self.compute_dtype}"
        )


def quantize_linears(
    module: torch.nn.Module, qtype: str, compute_dtype: torch.dtype, progress: Any = None
) -> int:
    """Replace every ``nn.Linear`` whose rows fit the block by a ``GGUFLinear``; the count."""
    if qtype not in QUANTIZABLE:
        raise InvalidInputError(
            f"scheme: gguf-py cannot quantize to {qtype} (it only dequantizes K-quants and IQ "
            f"types); quantize with one of {', '.join(QUANTIZABLE)}, or load a {qtype} file "
            "written by llama.cpp with quantdoctor.engines.load_gguf"
        )
    count = 0
    for name, linear in named_linears(module):
        if linear.in_features % BY_NAME[qtype].block == 0:
            set_submodule(module, name, GGUFLinear.from_linear(linear, qtype, compute_dtype))
            count += 1
        if progress is not None:
            progress.advance()
    return count


# ---- reading ---------------------------------------------------------------------------


class _FileTensor:
    __slots__ = ("data", "name", "qtype", "shape")

    def __init__(self, name: str, qtype: str, shape: tuple[int, ...], data: Any) -> None:
        self.name = name
        self.qtype = qtype
        self.shape = shape
        self.data = data

    def raw(self, device: torch.device) -> torch.Tensor:
        import numpy as np

        array = np.ascontiguousarray(self.data).view(np.uint8).reshape(-1)
        return torch.from_numpy(array.copy()).to(device)


def read_gguf(path: str | os.PathLike[str]) -> list[_FileTensor]:
    """The tensors of a GGUF file: name, GGML type, torch-order shape, raw data (memory-mapped)."""
    gguf = engine_module("gguf")
    try:
        reader = gguf.GGUFReader(os.fspath(path))
    except FileNotFoundError:
        raise UnreadableFileError(f"{os.fspath(path)}: no such file") from None
    except Exception as exc:  # a truncated or hostile file: any parse error means "unreadable"
        raise UnreadableFileError(
            f"{os.fspath(path)}: not a readable GGUF file ({type(exc).__name__}: {exc})"
        ) from exc
    tensors = []
    for t in reader.tensors:
        ggml = BY_ID.get(int(t.tensor_type))
        if ggml is None:
            raise UnreadableFileError(
                f"{os.fspath(path)}: tensor {t.name!r} has unknown GGML type id {t.tensor_type}"
            )
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        tensors.append(_FileTensor(t.name, ggml.name, shape, t.data))
    return tensors


def dominant_type(tensors: list[_FileTensor]) -> str:
    """The file's quantization scheme: the most common non-float type, else the float type."""
    quantized = Counter(t.qtype for t in tensors if t.qtype not in FLOAT_TYPES)
    if quantized:
        return quantized.most_common(1)[0][0]
    floats = Counter(t.qtype for t in tensors)
    return floats.most_common(1)[0][0] if floats else "F32"


def load_gguf(
    path: str | os.PathLike[str],
    module: torch.nn.Module,
    *,
    dtype: str = "bfloat16",
    device: str | torch.device | None = None,
    env: Environment | None = None,
    check: bool = True,
    progress: bool = False,
) -> torch.nn.Module:
    """Fill ``module`` (built from its config, any dtype) from a GGUF file, in place.

    The file's tensor names are the module's ``state_dict`` keys. Linear weights stored
    quantized become ``GGUFLinear`` layers that keep the blocks on ``device`` (default:
    the module's) and dequantize there, in ``dtype``; every other tensor is dequantized
    in torch and copied. With ``check`` the plan ``gguf <type> prequantized`` is
    evaluated first (``env=None`` probes) and a blocked plan raises
    ``IncompatiblePlanError`` before the module is touched. The file is checked against
    the module before anything changes: a missing, extra or misshapen tensor raises
    ``InvalidInputError`` naming it.
    """
    tensors = read_gguf(path)
    compute_dtype = torch_dtype(dtype)
    if check:
        _check_plan(dominant_type(tensors), dtype, env)
    target = torch.device(device) if device is not None else module_device(module)
    plan = _match(path, tensors, module)
    with layer_progress(progress, f"gguf {os.path.basename(os.fspath(path))}", len(plan)) as bar:
        if device is not None:
            module.to(target)
        state = module.state_dict(keep_vars=True)
        for tensor, linear_name in plan:
            if linear_name is not None:
                linear = module.get_submodule(linear_name)
                assert isinstance(linear, torch.nn.Linear)
                bias = None if linear.bias is None else linear.bias.detach()
                raw = tensor.raw(target).reshape(tensor.shape[0], -1)
                new = GGUFLinear(
                    raw, tensor.qtype, linear.in_features, linear.out_features, bias, compute_dtype
                )
                set_submodule(module, linear_name, new)
            else:
                dest = state[tensor.name]
                values = dequantize(tensor.raw(dest.device), tensor.qtype, tensor.shape)
                with torch.no_grad():
                    dest.copy_(values.reshape(dest.shape).to(dest.dtype))
            if bar is not None:
                bar.advance()
    return module


def _check_plan(scheme: str, dtype: str, env: Environment | None) -> None:
    from quantdoctor.gate import _evaluate
    from quantdoctor.rules.models import Plan

    plan = Plan(engine="gguf", scheme=scheme, mode="prequantized", dtype=dtype)
    verdict = _evaluate(plan, env, None)
    if verdict.status == "blocked":
        raise IncompatiblePlanError(verdict)


def _match(
    path: str | os.PathLike[str], tensors: list[_FileTensor], module: torch.nn.Module
) -> list[tuple[_FileTensor, str | None]]:
    """Pair each file tensor with its place in the module; the linear's name for kept blocks."""
    where = os.fspath(path)
    state = module.state_dict()
    linears = dict(named_linears(module))
    names = {t.name for t in tensors}
    extra = sorted(names - set(state))
    missing = sorted(set(state) - names)
    if extra or missing:
        parts = []
        if extra:
            parts.append(f"not in the module: {', '.join(extra[:5])}")
        if missing:
            parts.append(f"missing from the file: {', '.join(missing[:5])}")
        raise InvalidInputError(f"{where}: the file does not match the module; " + "; ".join(parts))
    plan: list[tuple[_FileTensor, str | None]] = []
    for t in tensors:
        if t.qtype not in TYPES:
            raise InvalidInputError(
                f"{where}: tensor {t.name!r} is {t.qtype}, which has no torch dequantizer; "
                f"valid types are {', '.join(TYPES)}"
            )
        expected = tuple(state[t.name].shape)
        if math.prod(t.shape) != math.prod(expected):
            raise InvalidInputError(
                f"{where}: tensor {t.name!r} has shape {t.shape}, the module expects {expected}"
            )
        owner, _, leaf = t.name.rpartition(".")
        keep = leaf == "weight" and owner in linears and t.qtype not in FLOAT_TYPES
        plan.append((t, owner if keep else None))
    return plan


# ---- writing ---------------------------------------------------------------------------


def save_gguf(
    module: torch.nn.Module, path: str | os.PathLike[str], qtype: str, *, arch: str = "flux"
) -> int:
    """Write ``module``'s state_dict as GGUF: linear weights whose rows fit the block in
    ``qtype``, everything else F32. Returns how many tensors were quantized.

    gguf-py quantizes the types it can; K-quants and IQ4 types are packed by
    ``quantdoctor.engines.gguf_pack`` (plain min/max scales: the layout llama.cpp
    writes, with more rounding error than its quantize tool).
    """
    import numpy as np

    from quantdoctor.engines import gguf_pack

    gguf = engine_module("gguf")
    writable = (*QUANTIZABLE, *gguf_pack.TYPES)
    if qtype not in writable:
        raise InvalidInputError(
            f"scheme: cannot write GGUF type {qtype}; valid values are {', '.join(writable)}"
        )
    kind = gguf.GGMLQuantizationType[qtype]
    linear_weights = {f"{n}.weight" for n, _ in named_linears(module)}
    writer = gguf.GGUFWriter(os.fspath(path), arch)
    quantized = 0
    for name, tensor in module.state_dict().items():
        array = tensor.detach().to("cpu", torch.float32).numpy()
        if name in linear_weights and array.shape[-1] % BY_NAME[qtype].block == 0:
            blocks = gguf_pack.quantize(array, qtype)
            if qtype in ("F32", "F16"):  # plain numpy floats: the writer reads their type
                writer.add_tensor(name, blocks)
            else:
                writer.add_tensor(name, blocks, raw_dtype=kind)
            quantized += 1
        else:
            writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return quantized
