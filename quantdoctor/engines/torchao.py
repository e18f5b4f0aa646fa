"""torchao: ``quantize_(model, <Config>())`` with the config class each scheme names.

diffusers >= 0.38 takes torchao configs only as ``AOBaseConfig`` instances (the string
forms raise ``TypeError``), so its ``TorchAoConfig`` gets the same instance.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from quantdoctor.engines.base import EngineAdapter, Progress, engine_module, scheme_api

if TYPE_CHECKING:
    import torch

    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.schema import EngineSpec


def make_config(plan: Plan, spec: EngineSpec) -> Any:
    """The torchao ``AOBaseConfig`` instance for the plan's scheme: the class its ``api``
    names with its ``api_args`` (int4dq: ``weight_dtype: int4``, a torch dtype), else
    torchao's defaults."""
    import torch

    quantization = engine_module("torchao.quantization")
    config_class = getattr(quantization, scheme_api(spec, plan))
    args = spec.schemes[plan.scheme].api_args
    return config_class(**{k: getattr(torch, v) for k, v in args.items()})


class TorchAoAdapter(EngineAdapter):
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
        config = make_config(plan, self.spec)
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


ADAPTER = TorchAoAdapter


def diffusers_config(plan: Plan, spec: EngineSpec) -> Any:
    """``TorchAoConfig(<the scheme's AOBaseConfig instance>)``."""
    return engine_module("diffusers").TorchAoConfig(make_config(plan, spec))
