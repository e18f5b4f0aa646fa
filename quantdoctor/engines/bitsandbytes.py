"""bitsandbytes: every ``nn.Linear`` becomes ``Linear4bit`` (nf4, fp4) or ``Linear8bitLt`` (int8).

bitsandbytes quantizes a layer's weight when the layer moves to a device, so each new
layer is moved to the device the module already lives on (CPU works with bnb >= 0.47).
``Int8Params`` quantizes only on a move *from the CPU*: built from a weight already on
the GPU it would stay bf16 (quantized again at every forward, and broken by model or
sequential offload, as the ground truth on an H100 showed), so int8 weights start from
a CPU copy.
"""

from __future__ import annotations

from quantdoctor.engines.base import (
    EngineAdapter,
    Progress,
    engine_module,
    module_device,
    named_linears,
    scheme_api,
    swap_linears,
    torch_dtype,
)
from quantdoctor.files.fingerprint import Quantized, TensorView

TYPE_CHECKING = False  # typing costs `detect` ~3 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    import torch

    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.records import EngineRecord
    from quantdoctor.rules.schema import EngineSpec


class BitsAndBytesAdapter(EngineAdapter):
    engine = "bitsandbytes"

    def apply(
        self,
        module: torch.nn.Module,
        plan: Plan,
        *,
        example_input: Any,
        progress: Progress | None,
    ) -> torch.nn.Module:
        import torch

        bnb_nn = engine_module("bitsandbytes.nn")

        quant_type = scheme_api(self.spec, plan)  # nf4, fp4, or int8 (LLM.int8, Linear8bitLt)
        device = module_device(module)
        compute_dtype = torch_dtype(plan.dtype)

        def make(_name: str, linear: torch.nn.Linear) -> torch.nn.Module:
            has_bias = linear.bias is not None
            new: torch.nn.Module
            if quant_type == "int8":
                new = bnb_nn.Linear8bitLt(
                    linear.in_features,
                    linear.out_features,
                    bias=has_bias,
                    has_fp16_weights=False,
                    threshold=6.0,
                    device="meta",
                )
                new.weight = bnb_nn.Int8Params(
                    linear.weight.data.cpu(), requires_grad=False, has_fp16_weights=False
                )
            else:
                new = bnb_nn.Linear4bit(
                    linear.in_features,
                    linear.out_features,
                    bias=has_bias,
                    compute_dtype=compute_dtype,
                    compress_statistics=False,
                    quant_type=quant_type,
                    device="meta",
                )
                # no double quantization of the absmax: diffusers' BitsAndBytesConfig default
                # (bnb_4bit_use_double_quant=False), and the layout matrix.yaml sizes
                new.weight = bnb_nn.Params4bit(
                    linear.weight.data,
                    requires_grad=False,
                    compress_statistics=False,
                    quant_type=quant_type,
                )
            if has_bias:
                new.bias = torch.nn.Parameter(linear.bias.data, requires_grad=False)
            return new.to(device)  # the move quantizes the weight

        done = (bnb_nn.Linear4bit, bnb_nn.Linear8bitLt)
        linears = [(n, m) for n, m in named_linears(module) if not isinstance(m, done)]
        return swap_linears(module, linears, make, progress)


ADAPTER = BitsAndBytesAdapter


def diffusers_config(plan: Plan, spec: EngineSpec) -> Any:
    """``BitsAndBytesConfig``: ``load_in_8bit`` for int8, else 4-bit with the quant type."""
    config = engine_module("diffusers").BitsAndBytesConfig
    quant_type = scheme_api(spec, plan)
    if quant_type == "int8":
        return config(load_in_8bit=True)
    return config(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_compute_dtype=torch_dtype(plan.dtype),
    )


# ---------------------------------------------------------------- detect


ENGINE = "bitsandbytes"


def fingerprint(view: TensorView, spec: EngineRecord) -> list[Quantized]:
    """4-bit: ``<m>.weight`` uint8 plus ``<m>.weight.quant_state.bitsandbytes__nf4`` (or
    ``__fp4``, with ``absmax``/``quant_map``); 8-bit: int8 ``<m>.weight`` plus ``<m>.SCB``."""
    by_name = view.by_name
    found: dict[str, Quantized] = {}
    for name in by_name:
        weight, sep, kind = name.partition(".quant_state.bitsandbytes__")
        if sep and weight in by_name:
            q = found.setdefault(kind, Quantized(ENGINE, kind))
            q.weights[weight] = by_name[weight].numel * 2  # two 4-bit values per byte
        elif name.endswith(".SCB"):
            weight = name[: -len("SCB")] + "weight"
            if weight in by_name and by_name[weight].dtype == "I8":
                q = found.setdefault("int8", Quantized(ENGINE, "int8"))
                q.weights[weight] = by_name[weight].numel
    if not found and any(n.endswith(".weight.absmax") for n in by_name):
        # absmax/quant_map without the serialized quant_state: 4-bit, type unknown.
        q = Quantized(ENGINE, None)
        for n in by_name:
            if n.endswith(".weight.absmax") and n[: -len(".absmax")] in by_name:
                q.weights[n[: -len(".absmax")]] = by_name[n[: -len(".absmax")]].numel * 2
        return [q]
    return list(found.values())


def scheme_from_config(qc: Mapping[str, Any], spec: EngineRecord) -> str | None:
    """``BitsAndBytesConfig`` as saved: ``load_in_8bit``, else ``bnb_4bit_quant_type``."""
    if qc.get("load_in_8bit"):
        return "int8"
    kind = qc.get("bnb_4bit_quant_type")
    return kind if isinstance(kind, str) and kind in spec.schemes else None
