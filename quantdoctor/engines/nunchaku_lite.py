"""diffusers' Nunchaku Lite (``nunchaku_lite``): SVDQuant W4A4 and AWQ W4A16 checkpoints.

They are made by diffuse-compressor and loaded by diffusers, which reads the compact
``quantization_config`` of the checkpoint and fetches the CUDA kernels from the Hub through
the ``kernels`` package. quantdoctor applies nothing itself (no adapter): it predicts
whether the load works. The SVDQuant engine of the nunchaku project is a different package
(GitHub wheels), not PyPI's ``nunchaku``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs `detect` ~3 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from quantdoctor.rules.records import EngineRecord

PREQUANTIZED_HINT = (
    "a Nunchaku Lite checkpoint loads with from_pretrained(path, torch_dtype=...), which "
    "reads its compact quantization_config (quant_method nunchaku_lite) from config.json; "
    "set DIFFUSERS_TRUST_REMOTE_KERNELS=true for its Hub kernels"
)


def scheme_from_config(qc: Mapping[str, Any], spec: EngineRecord) -> str | None:
    """The compact config's W4A4 section (``svdq_w4a4`` with its ``precision``), else its
    W4A16 one: ``svdq_w4a4_nvfp4``, ``svdq_w4a4_int4`` or ``awq_w4a16_int4``."""
    for section in ("svdq_w4a4", "awq_w4a16"):
        raw = qc.get(section)
        if isinstance(raw, dict) and isinstance(raw.get("precision"), str):
            scheme = f"{section}_{raw['precision']}"
            return scheme if scheme in spec.schemes else None
    return None
