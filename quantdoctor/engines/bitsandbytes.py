"""bitsandbytes: every ``nn.Linear`` becomes ``Linear4bit`` (nf4, fp4) or ``Linear8bitLt`` (int8).

bitsandbytes quantizes a layer's weight when the layer moves to a device, so each new
layer is moved to the device the module already lives on (CPU works with bnb >= 0.47).
``Int8Params`` quantizes only on a move *from the CPU*: built from a weight already on
the GPU it would stay bf16 (quantized again at every forward, and broken by model or
sequential offload, as the ground truth on an H100 showed), so int8 weights start from
a CPU copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantdoctor.engines.base import (
    EngineAdapter,
    Progress,
    engine_module,
    module_device,
    named_linears,
    scheme_api,
    set_submodule,
    torch_dtype,
)

if TYPE_CHECKING:
    import torch

    from quantdoctor.rules.models import Plan
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
        done = (bnb_nn.Linear4bit, bnb_nn.Linear8bitLt)
        for name, linear in named_linears(module):
            if isinstance(linear, done):
                continue
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
            set_submodule(module, name, new.to(device))  # the move quantizes the weight
            if progress is not None:
                progress.advance()
        return module


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
