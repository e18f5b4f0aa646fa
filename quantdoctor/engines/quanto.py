"""optimum-quanto: ``quantize(model, weights=...)`` then ``freeze(model)``, as quanto documents.

Its diffusers config is ``QuantoConfig(weights_dtype=...)`` with the scheme's
``diffusers`` spelling from the matrix (diffusers' "float8" is quanto's e4m3fn; e5m2
has none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantdoctor.engines.base import EngineAdapter, Progress, engine_module, scheme_api
from quantdoctor.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.schema import EngineSpec


class QuantoAdapter(EngineAdapter):
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

        qtype = getattr(oq, scheme_api(self.spec, plan))  # the qtype: optimum.quanto.qint8 ...
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


ADAPTER = QuantoAdapter


def diffusers_config(plan: Plan, spec: EngineSpec) -> Any:
    """``QuantoConfig(weights_dtype=<the scheme's diffusers spelling>)``."""
    weights = spec.schemes[plan.scheme].diffusers
    if weights is None:
        spelled = ", ".join(s for s, v in spec.schemes.items() if v.diffusers)
        raise InvalidInputError(
            f"scheme: diffusers' QuantoConfig has no {plan.scheme} (its float8 is e4m3fn); "
            f"valid values are {spelled}, or apply {plan.scheme} after "
            "load with quantdoctor.quantize (mode 'post')"
        )
    return engine_module("diffusers").QuantoConfig(weights_dtype=weights)
