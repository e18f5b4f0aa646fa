"""Black Forest Labs' fp8r and nvfp4 layouts, through diffusers' own BFL layers.

Mode prequantized: diffusers reads the layout from the checkpoint's tensors
(``from_single_file(..., quantization_config=BFLQuantizationConfig())``). Mode post: each
``nn.Linear`` becomes diffusers' ``BFLFP8RLinear`` / ``BFLNVFP4Linear`` holding its weight
quantized by diffusers' ``quantize_fp8r`` / ``quantize_nvfp4`` (the layout a BFL checkpoint
has), so the same layers and kernels run as for a loaded file. nvfp4's static activation
scale (``input_scale``) is calibrated on ``example_input``, which it therefore needs; layers
whose input width is not a multiple of 16 stay unquantized (nvfp4 blocks are 16 wide).
"""

from __future__ import annotations

from quantdoctor.engines.base import (
    EngineAdapter,
    Progress,
    engine_module,
    named_linears,
    scheme_api,
    swap_linears,
    torch_dtype,
)
from quantdoctor.errors import InvalidInputError

TYPE_CHECKING = False  # typing costs `detect` ~3 ms of imports
if TYPE_CHECKING:
    from typing import Any

    import torch

    from quantdoctor.rules.models import Plan

PREQUANTIZED_HINT = (
    "a BFL checkpoint loads with from_single_file(path, quantization_config="
    "BFLQuantizationConfig(compute_dtype=...)), which reads fp8r/nvfp4 from its tensors"
)


def _input_amax(module: torch.nn.Module, names: list[str], example_input: Any) -> dict[str, float]:
    """The largest absolute input each named layer sees on ``example_input``."""
    import torch

    seen: dict[str, float] = {}
    handles = []
    for name in names:
        layer = module.get_submodule(name)

        def hook(_m: Any, args: tuple[Any, ...], name: str = name) -> None:
            seen[name] = max(seen.get(name, 0.0), float(args[0].detach().abs().amax()))

        handles.append(layer.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            if isinstance(example_input, dict):
                module(**example_input)
            elif isinstance(example_input, tuple):
                module(*example_input)
            else:
                module(example_input)
    finally:
        for h in handles:
            h.remove()
    return seen


class BFLAdapter(EngineAdapter):
    engine = "bfl"

    def apply(
        self,
        module: torch.nn.Module,
        plan: Plan,
        *,
        example_input: Any,
        progress: Progress | None,
    ) -> torch.nn.Module:
        import torch

        bfl = engine_module("diffusers.quantizers.bfl.utils")
        layout = scheme_api(self.spec, plan)
        compute = torch_dtype(plan.dtype)
        linears = [
            (n, m)
            for n, m in named_linears(module)
            if not isinstance(m, tuple(bfl.QUANTIZED_LINEARS.values()))
            and (layout == "fp8r" or m.in_features % bfl.NVFP4_BLOCK == 0)
        ]
        amax: dict[str, float] = {}
        if layout == "nvfp4":
            if example_input is None:
                raise InvalidInputError(
                    "example_input: bfl nvfp4 calibrates each layer's activation scale "
                    "(input_scale) on one input the model accepts; pass example_input=..."
                )
            amax = _input_amax(module, [n for n, _ in linears], example_input)

        def make(name: str, linear: torch.nn.Linear) -> torch.nn.Module:
            new = bfl.QUANTIZED_LINEARS[layout](
                linear.in_features,
                linear.out_features,
                linear.bias is not None,
                compute_dtype=compute,
                device=linear.weight.device,
            )
            with torch.no_grad():
                if layout == "fp8r":
                    weight, scale = bfl.quantize_fp8r(linear.weight)
                else:
                    weight, scale, scale_2 = bfl.quantize_nvfp4(linear.weight)
                    new.weight_scale_2.copy_(scale_2)
                    new.input_scale.fill_(max(amax.get(name, 0.0), 1e-12) / (448.0 * 6.0))
                new.weight = torch.nn.Parameter(weight, requires_grad=False)
                new.weight_scale.copy_(scale)
                if linear.bias is not None:
                    new.bias = torch.nn.Parameter(
                        linear.bias.detach().to(compute), requires_grad=False
                    )
            built: torch.nn.Module = new  # diffusers' layers are untyped here
            return built

        return swap_linears(module, linears, make, progress)


ADAPTER = BFLAdapter
