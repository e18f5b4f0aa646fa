"""gguf, "post" mode: linear weights quantized with gguf-py, kept as blocks, dequantized in torch.

"prequantized" GGUF (a file) is loaded with ``quantdoctor.engines.load_gguf``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantdoctor.engines.base import Progress, torch_dtype

if TYPE_CHECKING:
    import torch

    from quantdoctor.rules.models import Plan


class GGUFAdapter:
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
