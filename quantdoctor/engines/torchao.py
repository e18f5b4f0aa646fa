"""torchao: ``quantize_(model, <Config>())`` with the config class each scheme names.

diffusers >= 0.38 takes torchao configs only as ``AOBaseConfig`` instances (the string
forms raise ``TypeError``), so its ``TorchAoConfig`` gets the same instance.
"""

from __future__ import annotations

from quantdoctor._fileio import unreadable
from quantdoctor.engines.base import EngineAdapter, Progress, engine_module, scheme_api
from quantdoctor.files.fingerprint import Quantized, TensorView, json_field

TYPE_CHECKING = False  # typing costs `detect` ~3 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    import torch

    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.records import EngineRecord
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
    quantizes_root = True  # quantize_ swaps the weight of the layer it is given

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
        import inspect  # here, not at import: detect loads this module for its fingerprint

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


# ---------------------------------------------------------------- detect


ENGINE = "torchao"
#: torchao tensor subclass -> the family of diffusers' short scheme names.
_TENSOR_TYPES: dict[str, str] = {
    "Int8Tensor": "int8",
    "Float8Tensor": "float8",
    "Int4Tensor": "int4",
    "Int4TilePackedTo4dTensor": "int4",
    "Int4PlainInt32Tensor": "int4",
    "Int4PreshuffledTensor": "int4",
    "Int4MarlinSparseTensor": "int4",
    "IntxUnpackedToInt8Tensor": "intx",
    "MXTensor": "mx",
    "NVFP4Tensor": "nvfp4",
}
#: config classes no scheme of the matrix uses, as diffusers' short names spell them
#: (named by detect, offered as no plan).
_OTHER_CONFIGS: dict[str, str] = {
    "IntxWeightOnlyConfig": "intxwo",
}


def fingerprint(view: TensorView, spec: EngineRecord) -> list[Quantized]:
    """torchao (>= 0.16 safetensors support): metadata ``tensor_names`` and per-tensor JSON
    whose ``_type`` names the tensor subclass; data in ``<m>._weight_qdata``."""

    where, by_name = view.where, view.by_name
    found: dict[str, Quantized] = {}
    for h in view.headers:
        if "tensor_names" not in h.metadata:
            continue
        names = json_field(where, "tensor_names", h.metadata["tensor_names"])
        if not isinstance(names, list):
            raise unreadable(where, "torchao metadata tensor_names is not a list")
        for logical in names:
            if not isinstance(logical, str) or logical not in h.metadata:
                continue
            info = json_field(where, logical, h.metadata[logical])
            kind = info.get("_type") if isinstance(info, dict) else None
            if not isinstance(kind, str) or kind == "Tensor":
                continue
            scheme = _tensor_scheme(kind, info)
            module, _, attr = logical.rpartition(".")
            qdata = f"{module}._{attr}_qdata" if module else f"_{attr}_qdata"
            t = by_name.get(qdata)
            if t is None:
                continue
            q = found.setdefault(scheme, Quantized(ENGINE, scheme))
            q.weights[qdata] = t.nbytes * 2 if scheme.startswith("int4") else t.numel
    return list(found.values())


def _tensor_scheme(kind: str, info: dict[str, Any]) -> str:
    family = _TENSOR_TYPES.get(kind, kind)
    data = info.get("_data")
    dynamic = isinstance(data, dict) and bool(
        data.get("act_quant_kwargs") or data.get("activation_quantization")
    )
    if family in ("int8", "float8", "int4", "intx"):
        return f"{family}{'dq' if dynamic else 'wo'}"
    return family


def scheme_from_config(qc: Mapping[str, Any], spec: EngineRecord) -> str | None:
    """``TorchAoConfig`` as saved: a short name, or a config class (``{"_type": ...}``)
    that is a scheme's ``api`` in the matrix."""
    quant_type = qc.get("quant_type")
    if isinstance(quant_type, str):
        return quant_type
    if isinstance(quant_type, dict):
        inner = quant_type.get("default", quant_type)
        kind = inner.get("_type") if isinstance(inner, dict) else None
        if isinstance(kind, str):
            by_api = {s.api: name for name, s in spec.schemes.items()}
            return by_api.get(kind) or _OTHER_CONFIGS.get(kind, kind)
    return None
