"""A throwaway engine, defined only by a test overlay and this module: ``toyq``.

It rounds each linear weight to a symmetric 4-bit grid per output row (in torch, for
real), stores nothing new, and recognises its files by a ``<m>.weight.toyq_scale``
tensor beside an int8 ``<m>.weight``. Nothing in quantdoctor names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quantdoctor.engines.base import EngineAdapter, Progress, named_linears, scheme_api
from quantdoctor.files.fingerprint import Quantized, TensorView

ENGINE = "toyq"

OVERLAY = """\
engines:
  toyq:
    package: toyq-lib
    install: pip install toyq-lib
    module: throwaway_engine
    modes: [post, prequantized]
    versions: ["1.5.0"]
    schemes:
      t4: {api: T4, family: int, bits: 4, row_bytes: 2}
rules:
  - id: toyq.offload.sequential
    select: {engine: toyq, offload: sequential}
    when: {fact: packages.toyq-lib, version: "<2"}
    severity: block
    message: toyq-lib {packages.toyq-lib} loses its scales under sequential offload.
    fix: pip install "toyq-lib>=2"
    source: the toyq changelog
"""


class ToyAdapter(EngineAdapter):
    engine = ENGINE

    def apply(
        self, module: Any, plan: Any, *, example_input: Any, progress: Progress | None
    ) -> Any:
        import torch

        assert scheme_api(self.spec, plan) == "T4"
        with torch.no_grad():
            for _, linear in named_linears(module):
                w = linear.weight
                scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 7
                w.copy_((w / scale).round().clamp(-8, 7) * scale)
                if progress is not None:
                    progress.advance()
        return module


ADAPTER = ToyAdapter


def diffusers_config(plan: Any, spec: Any) -> dict[str, str]:
    return {"quant_method": ENGINE, "scheme": spec.schemes[plan.scheme].api}


def fingerprint(view: TensorView, spec: Any) -> list[Quantized]:
    q = Quantized(ENGINE, "t4")
    for name, t in view.by_name.items():
        if name.endswith(".weight.toyq_scale"):
            weight = name.removesuffix(".toyq_scale")
            if weight in view.by_name:
                q.weights[weight] = view.by_name[weight].numel
    return [q] if q.weights else []


def scheme_from_config(qc: Mapping[str, Any], spec: Any) -> str | None:
    return next((s for s, v in spec.schemes.items() if v.api == qc.get("scheme")), None)
