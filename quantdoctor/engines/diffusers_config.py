"""``Plan.to_diffusers()``: the diffusers quantization config that loads a plan ("pre" mode).

diffusers >= 0.38 takes torchao configs only as ``AOBaseConfig`` instances (the string
forms raise ``TypeError``), so the torchao config class is built here. nncf has no
diffusers config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantdoctor.engines.base import engine_module, torch_dtype
from quantdoctor.errors import InvalidInputError

if TYPE_CHECKING:
    from quantdoctor.rules.models import Plan

#: quanto scheme -> diffusers ``QuantoConfig(weights_dtype=...)``. diffusers maps "float8"
#: to quanto's ``qfloat8`` (e4m3fn); e5m2 has no diffusers spelling.
QUANTO_WEIGHTS: dict[str, str] = {
    "qint8": "int8",
    "qint4": "int4",
    "qint2": "int2",
    "qfloat8_e4m3fn": "float8",
}


def _diffusers() -> Any:
    return engine_module("diffusers")


def to_diffusers(plan: Plan) -> Any:
    """The ``diffusers`` quantization config object for ``plan``.

    bitsandbytes -> ``BitsAndBytesConfig``; quanto -> ``QuantoConfig``; torchao ->
    ``TorchAoConfig(<AOBaseConfig>)``; gguf -> ``GGUFQuantizationConfig`` (for
    ``from_single_file``). Raises ``InvalidInputError`` where diffusers has none.
    """
    if plan.engine == "bitsandbytes":
        return _bitsandbytes(plan)
    if plan.engine == "quanto":
        return _quanto(plan)
    if plan.engine == "torchao":
        from quantdoctor.engines.torchao import make_config

        return _diffusers().TorchAoConfig(make_config(plan))
    if plan.engine == "gguf":
        return _diffusers().GGUFQuantizationConfig(compute_dtype=torch_dtype(plan.dtype))
    raise InvalidInputError(
        f"engine: diffusers has no quantization config for {plan.engine}; load the model "
        "unquantized and apply the plan after load with quantdoctor.quantize(model, plan, "
        "example_input=...) (mode 'post')"
    )


def _bitsandbytes(plan: Plan) -> Any:
    BitsAndBytesConfig = _diffusers().BitsAndBytesConfig
    if plan.scheme == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(  # nf4 or fp4: a Plan holds only bitsandbytes' own schemes
        load_in_4bit=True,
        bnb_4bit_quant_type=plan.scheme,
        bnb_4bit_compute_dtype=torch_dtype(plan.dtype),
    )


def _quanto(plan: Plan) -> Any:
    QuantoConfig = _diffusers().QuantoConfig
    weights = QUANTO_WEIGHTS.get(plan.scheme)
    if weights is None:
        raise InvalidInputError(
            f"scheme: diffusers' QuantoConfig has no {plan.scheme} (its float8 is e4m3fn); "
            f"valid values are {', '.join(QUANTO_WEIGHTS)}, or apply {plan.scheme} after "
            "load with quantdoctor.quantize (mode 'post')"
        )
    return QuantoConfig(weights_dtype=weights)
