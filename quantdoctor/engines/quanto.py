"""optimum-quanto: ``quantize(model, weights=...)`` then ``freeze(model)``, as quanto documents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantdoctor.engines.base import Progress, engine_module, scheme_api

if TYPE_CHECKING:
    import torch

    from quantdoctor.rules.models import Plan

#: scheme -> the quanto qtype's name (``optimum.quanto.qint8`` ...).
SCHEMES: dict[str, str] = {
    "qint8": "qint8",
    "qint4": "qint4",
    "qint2": "qint2",
    "qfloat8_e4m3fn": "qfloat8_e4m3fn",
    "qfloat8_e5m2": "qfloat8_e5m2",
}


class QuantoAdapter:
    engine = "quanto"

    def apply(
        self,
        module: torch.nn.Module,
        plan: Plan,
        *,
        example_input: Any,
        progress: Progress | None,
    ) -> torch.nn.Module:
        import torch

        oq = engine_module("optimum.quanto")

        qtype = getattr(oq, scheme_api(SCHEMES, plan))
        if progress is None:
            oq.quantize(module, weights=qtype)
        else:
            # the layers quanto quantizes weights-only: Linear and Conv2d (QLayerNorm needs
            # activations); the same call, one layer at a time, to show progress
            names = [
                n
                for n, m in module.named_modules()
                if n
                and isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
                and not isinstance(m, oq.QModuleMixin)
            ]
            for name in names:
                oq.quantize(module, weights=qtype, include=[name])
                progress.advance()
        oq.freeze(module)
        return module
