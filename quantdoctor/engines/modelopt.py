"""NVIDIA Model Optimizer (``nvidia-modelopt``): ``mtq.quantize(model, <preset>)`` then
``mtq.compress(model)``, weights only, as diffusers' ``NVIDIAModelOptConfig`` defaults to.

The scheme names are diffusers' ``quant_type`` spellings (FP8, INT8, INT4, NF4, NVFP4); the
matrix's ``api`` is the modelopt preset applied after load. Activation quantizers are
switched off (weight-only); calibration is the presets' ``max`` over the weights, so no data
is needed. ``compress`` stores the weights in their low-bit dtype (int8, float8_e4m3fn,
packed uint8), which is where the memory goes.
"""

from __future__ import annotations

from quantdoctor.engines.base import EngineAdapter, Progress, engine_module, scheme_api
from quantdoctor.errors import InvalidInputError

TYPE_CHECKING = False  # typing costs `detect` ~3 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    import torch

    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.records import EngineRecord
    from quantdoctor.rules.schema import EngineSpec


def weight_only(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a modelopt preset with its activation (input) quantizers disabled."""
    import copy

    config = copy.deepcopy(config)
    entries = config["quant_cfg"]
    if isinstance(entries, list):  # modelopt >= 0.47: later entries override earlier ones
        entries.append({"quantizer_name": "*input_quantizer", "enable": False})
    else:
        entries["*input_quantizer"] = {"enable": False}
    return config


class ModelOptAdapter(EngineAdapter):
    engine = "modelopt"

    def apply(
        self,
        module: torch.nn.Module,
        plan: Plan,
        *,
        example_input: Any,
        progress: Progress | None,
    ) -> torch.nn.Module:
        mtq = engine_module("modelopt.torch.quantization")
        preset = getattr(mtq, scheme_api(self.spec, plan), None)
        if preset is None:
            known = ", ".join(s for s, v in self.spec.schemes.items() if hasattr(mtq, v.api))
            raise InvalidInputError(
                f"scheme: nvidia-modelopt has no preset for {plan.scheme} (apply it while "
                f"loading, mode 'pre'); valid values after load are {known}"
            )
        mtq.quantize(module, weight_only(preset), None)
        mtq.compress(module)
        if progress is not None:
            from quantdoctor.engines.base import named_linears

            progress.advance(len(named_linears(module)))
        return module


ADAPTER = ModelOptAdapter


def diffusers_config(plan: Plan, spec: EngineSpec) -> Any:
    """``NVIDIAModelOptConfig(quant_type=<the scheme's diffusers spelling>)``."""
    quant_type = spec.schemes[plan.scheme].diffusers or plan.scheme
    return engine_module("diffusers").NVIDIAModelOptConfig(quant_type=quant_type)


def scheme_from_config(qc: Mapping[str, Any], spec: EngineRecord) -> str | None:
    """``NVIDIAModelOptConfig`` as saved: the weight part of ``quant_type`` (FP8 of FP8_INT8)."""
    quant_type = qc.get("quant_type")
    if not isinstance(quant_type, str):
        return None
    weights = quant_type.split("_")[0]
    return next((s for s, v in spec.schemes.items() if v.diffusers == weights), None)
