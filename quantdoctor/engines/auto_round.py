"""Intel AutoRound (``auto-round``): sign-gradient-descent rounding, W4A16 and W8A16.

diffusers' AutoRound quantizer loads pre-quantized checkpoints only (their
``quantization_config`` says quant_method ``auto-round``); quantizing needs calibration
data and runs in auto-round's own CLI or API. quantdoctor applies nothing itself (no
adapter): auto-round 0.16.1 installs on this project's CPU machines, but its quantize API
needs a tokenizer and a calibration data set from the Hub.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs `detect` ~3 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from quantdoctor.rules.records import EngineRecord

PREQUANTIZED_HINT = (
    "an AutoRound checkpoint loads with from_pretrained(path), which reads its "
    "quantization_config (quant_method auto-round); quantize with auto-round's own CLI first"
)


def scheme_from_config(qc: Mapping[str, Any], spec: EngineRecord) -> str | None:
    """``AutoRoundConfig`` as saved: ``bits`` weights, 16-bit activations (W4A16 ...)."""
    bits = qc.get("bits")
    scheme = f"W{bits}A16" if isinstance(bits, int) else ""
    return scheme if scheme in spec.schemes else None
