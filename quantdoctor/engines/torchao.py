"""torchao: ``quantize_(model, <Config>())`` with the config class each scheme names."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from quantdoctor.engines.base import Progress, engine_module, scheme_api

if TYPE_CHECKING:
    import torch

    from quantdoctor.rules.models import Plan

#: scheme -> the torchao config class (``torchao.quantization.<name>``).
SCHEMES: dict[str, str] = {
    "int8wo": "Int8WeightOnlyConfig",
    "int8dq": "Int8DynamicActivationInt8WeightConfig",
    "int4wo": "Int4WeightOnlyConfig",
    "int4dq": "Int8DynamicActivationIntxWeightConfig",
    "float8wo": "Float8WeightOnlyConfig",
    "float8dq": "Float8DynamicActivationFloat8WeightConfig",
}


def make_config(plan: Plan) -> Any:
    """The torchao ``AOBaseConfig`` instance for the plan's scheme, with its defaults
    (int4dq: int8 dynamic activations, int4 weights in groups of 32)."""
    import torch

    quantization = engine_module("torchao.quantization")
    config_class = getattr(quantization, scheme_api(SCHEMES, plan))
    if plan.scheme == "int4dq":
        return config_class(weight_dtype=torch.int4)  # type: ignore[attr-defined]
    return config_class()


class TorchAoAdapter:
    engine = "torchao"

    def apply(
        self,
        module: torch.nn.Module,
        plan: Plan,
        *,
        example_input: Any,
        progress: Progress | None,
    ) -> torch.nn.Module:
        quantize_ = engine_module("torchao.quantization").quantize_
        config = make_config(plan)
        if progress is None:
            quantize_(module, config)
            return module
        # torchao's own default filter, counted: it is asked once per module before the swap
        default_filter = inspect.signature(quantize_).parameters["filter_fn"].default
        bar = progress

        def counted(child: torch.nn.Module, fqn: str) -> bool:
            chosen = bool(default_filter(child, fqn))
            if chosen:
                bar.advance()
            return chosen

        quantize_(module, config, filter_fn=counted)
        return module
