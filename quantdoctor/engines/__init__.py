"""Engine adapters: apply a plan that ``rules/`` allows, through the engine itself.

Import-light: nothing here imports torch or an engine until ``quantize`` is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from quantdoctor.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

    from quantdoctor.engines.base import Adapter
    from quantdoctor.rules.models import Environment, Plan

__all__ = ["get_adapter", "load_gguf", "quantize", "save_gguf"]

#: engine -> "module:class" of its adapter.
_ADAPTERS: dict[str, str] = {
    "bitsandbytes": "quantdoctor.engines.bitsandbytes:BitsAndBytesAdapter",
    "quanto": "quantdoctor.engines.quanto:QuantoAdapter",
    "torchao": "quantdoctor.engines.torchao:TorchAoAdapter",
    "gguf": "quantdoctor.engines.gguf:GGUFAdapter",
    "nncf": "quantdoctor.engines.nncf:NncfAdapter",
}


def get_adapter(engine: str) -> Adapter:
    """The adapter for ``engine`` (its module is imported now, its engine on ``apply``)."""
    target = _ADAPTERS.get(engine)
    if target is None:
        raise InvalidInputError(
            f"engine: {engine!r} has no adapter; valid values are {', '.join(_ADAPTERS)}"
        )
    module_name, _, class_name = target.partition(":")
    adapter: Adapter = getattr(importlib.import_module(module_name), class_name)()
    return adapter


def _check_mode(plan: Plan) -> None:
    if plan.mode == "post":
        return
    if plan.mode == "pre":
        raise InvalidInputError(
            "mode: 'pre' quantizes while the weights load: pass plan.to_diffusers() as "
            "quantization_config to from_pretrained; quantize() applies mode 'post' to a "
            "loaded module"
        )
    if plan.engine == "gguf":
        raise InvalidInputError(
            "mode: 'prequantized' GGUF comes from a file: load it with "
            "quantdoctor.engines.load_gguf(path, module); quantize() applies mode 'post'"
        )
    raise InvalidInputError(
        f"mode: a 'prequantized' {plan.engine} checkpoint is loaded by from_pretrained, which "
        "reads its quantization_config; quantize() applies mode 'post' to a loaded module"
    )


def quantize(
    module: torch.nn.Module,
    plan: Plan | Mapping[str, Any],
    *,
    env: Environment | None = None,
    example_input: Any = None,
    progress: bool = False,
) -> torch.nn.Module:
    """Quantize ``module`` with ``plan`` through the plan's engine; return the module to run.

    The plan is evaluated first (``env=None`` probes this machine): a blocked plan raises
    ``IncompatiblePlanError`` before the module is touched; an unknown or warn verdict
    warns (``QuantDoctorWarning``). Most engines quantize in place and return ``module``;
    nncf may return a wrapper around an ``nn.Sequential`` root. nncf needs
    ``example_input`` (one input the model accepts). ``progress=True`` shows a progress
    bar over the layers.
    """
    from quantdoctor.gate import _as_plan, _check, _evaluate

    plan = _as_plan(plan)
    _check(_evaluate(plan, env, None), strict=False, stacklevel=2)
    _check_mode(plan)
    import torch

    if not isinstance(module, torch.nn.Module):
        raise InvalidInputError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    from quantdoctor.engines.base import layer_progress, named_linears

    adapter = get_adapter(plan.engine)
    total = len(named_linears(module)) if progress else 0
    with layer_progress(progress, f"{plan.engine} {plan.scheme}", total) as bar:
        return adapter.apply(module, plan, example_input=example_input, progress=bar)


def load_gguf(*args: Any, **kwargs: Any) -> torch.nn.Module:
    """``quantdoctor.engines.gguf_loader.load_gguf`` (imported on first call)."""
    from quantdoctor.engines.gguf_loader import load_gguf as _load

    return _load(*args, **kwargs)


def save_gguf(*args: Any, **kwargs: Any) -> int:
    """``quantdoctor.engines.gguf_loader.save_gguf`` (imported on first call)."""
    from quantdoctor.engines.gguf_loader import save_gguf as _save

    return _save(*args, **kwargs)
