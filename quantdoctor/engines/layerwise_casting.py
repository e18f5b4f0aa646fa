"""diffusers' layerwise casting: weights stored in a float8 dtype, each layer upcast to the
compute dtype for its forward (``enable_layerwise_casting``), as diffusers, SD.Next and
InvokeAI store FP8 weights.

A diffusers model keeps the layers its class lists in ``_skip_layerwise_casting_patterns``
in full precision (``enable_layerwise_casting`` reads them); any other module gets diffusers'
default patterns (embeddings, norms, ``proj_in``/``proj_out``) through ``apply_layerwise_casting``.
``example_input`` is not needed.
"""

from __future__ import annotations

from quantdoctor.engines.base import (
    EngineAdapter,
    Progress,
    engine_module,
    scheme_api,
    torch_dtype,
)

TYPE_CHECKING = False  # typing costs `detect` ~3 ms of imports
if TYPE_CHECKING:
    from typing import Any

    import torch

    from quantdoctor.rules.models import Plan


class LayerwiseCastingAdapter(EngineAdapter):
    engine = "layerwise_casting"

    def apply(
        self,
        module: torch.nn.Module,
        plan: Plan,
        *,
        example_input: Any,
        progress: Progress | None,
    ) -> torch.nn.Module:
        import torch

        storage = getattr(torch, scheme_api(self.spec, plan))
        compute = torch_dtype(plan.dtype)
        enable = getattr(module, "enable_layerwise_casting", None)  # a diffusers ModelMixin
        if enable is not None:
            enable(storage_dtype=storage, compute_dtype=compute)
        else:
            hooks = engine_module("diffusers.hooks.layerwise_casting")
            hooks.apply_layerwise_casting(
                module,
                storage_dtype=storage,
                compute_dtype=compute,
                skip_modules_pattern=hooks.DEFAULT_SKIP_MODULES_PATTERN,
            )
        if progress is not None:
            from quantdoctor.engines.base import named_linears

            progress.advance(len(named_linears(module)))
        return module


ADAPTER = LayerwiseCastingAdapter
