"""gguf, "post" mode: linear weights quantized with gguf-py, kept as blocks, dequantized in torch.

"prequantized" GGUF (a file) is loaded with ``quantdoctor.engines.load_gguf``.
"""

from __future__ import annotations

from quantdoctor.engines.base import EngineAdapter, Progress, engine_module, torch_dtype

TYPE_CHECKING = False  # typing costs `detect` ~3 ms of imports
if TYPE_CHECKING:
    from typing import Any

    import torch

    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.schema import EngineSpec


class GGUFAdapter(EngineAdapter):
    engine = "gguf"

    def apply(
        self,
        module: torch.nn.Module,
        plan: Plan,
        *,
        example_input: Any,
        progress: Progress | None,
    ) -> torch.nn.Module:
        from quantdoctor.engines.gguf_loader import quantize_linears

        quantize_linears(module, plan.scheme, torch_dtype(plan.dtype), progress)
        return module


ADAPTER = GGUFAdapter

PREQUANTIZED_HINT = (
    "'prequantized' GGUF comes from a file: load it with "
    "quantdoctor.engines.load_gguf(path, module)"
)


def diffusers_config(plan: Plan, spec: EngineSpec) -> Any:
    """``GGUFQuantizationConfig(compute_dtype=...)``, for ``from_single_file``."""
    return engine_module("diffusers").GGUFQuantizationConfig(compute_dtype=torch_dtype(plan.dtype))
