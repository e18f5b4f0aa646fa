"""diffusers' Nunchaku Lite (``nunchaku_lite``): SVDQuant W4A4 and AWQ W4A16 checkpoints.

They are made by diffuse-compressor and loaded by diffusers, which reads the compact
``quantization_config`` of the checkpoint and fetches the CUDA kernels from the Hub through
the ``kernels`` package. quantdoctor applies nothing itself (no adapter): it predicts
whether the load works. The SVDQuant engine of the nunchaku project is a different package
(GitHub wheels), not PyPI's ``nunchaku``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantdoctor.engines.base import EngineAdapter, Progress
from quantdoctor.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

    from quantdoctor.rules.models import Plan

PREQUANTIZED_HINT = (
    "a Nunchaku Lite checkpoint loads with from_pretrained(path, torch_dtype=...), which "
    "reads its compact quantization_config (quant_method nunchaku_lite) from config.json; "
    "set DIFFUSERS_TRUST_REMOTE_KERNELS=true for its Hub kernels"
)


class NunchakuLiteAdapter(EngineAdapter):
    """Applies nothing: the engine's checkpoints come quantized and diffusers loads them."""

    engine = "nunchaku_lite"

    def apply(
        self,
        module: torch.nn.Module,
        plan: Plan,
        *,
        example_input: Any,
        progress: Progress | None,
    ) -> torch.nn.Module:
        raise InvalidInputError(f"mode: {PREQUANTIZED_HINT}")


ADAPTER = NunchakuLiteAdapter
