"""SDNQ (SD.Next's quantization engine): ``sdnq_post_load_quant`` after load, diffusers'
``SDNQConfig`` while loading, ``from_pretrained`` for a prequantized SDNQ folder.

The scheme is sdnq's own ``weights_dtype`` spelling (``int8``, ``uint4``,
``float8_e4m3fn``, ...), so the plan's scheme is passed to sdnq as it is. Every other option
stays at sdnq's default, as SD.Next and diffusers use it: automatic group size, fp32 scales,
quantized matmul off, sdnq's per-model skip list. Importing this module imports nothing;
``import sdnq`` (which imports torch, diffusers and transformers) happens on first use.

How SDNQ shows in a file (sdnq 0.2.8 ``common.py:9`` ``sdnq_keys``, ``quantizer.py:537-541``):
every quantized layer ``<m>`` keeps ``<m>.weight`` (int8/uint8/float8 codes; packed codes
are flat uint8), ``<m>.scale`` (fp32, one per group) and for unsigned types
``<m>.zero_point``; SVD adds ``<m>.svd_up``/``<m>.svd_down``. The ``quantization_config`` in
``config.json`` (diffusers and transformers ``save_pretrained``) or ``quantization_config.json``
(``sdnq.save_sdnq_model``) says ``"quant_method": "sdnq"`` and the ``weights_dtype``.
"""

from __future__ import annotations

from quantdoctor.engines.base import EngineAdapter, Progress, engine_module, torch_dtype
from quantdoctor.errors import InvalidInputError

TYPE_CHECKING = False  # typing costs `detect` ~3 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from typing import Any

    import torch

    from quantdoctor.files.fingerprint import Quantized, TensorView
    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.records import EngineRecord
    from quantdoctor.rules.schema import EngineSpec

#: the quant_method SDNQ writes into a quantization_config (``sdnq_training`` while training)
QUANT_METHODS: tuple[str, ...] = ("sdnq", "sdnq_training")
#: tensor names beside ``<m>.weight`` that only SDNQ writes together (sdnq 0.2.8 common.py:9)
SIDE_TENSORS: tuple[str, ...] = ("scale", "zero_point", "svd_up", "svd_down")
#: safetensors dtype of an unpacked weight -> the scheme it is (packed codes are U8, 1-D)
UNPACKED: dict[str, str] = {"I8": "int8", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def _sdnq() -> Any:
    return engine_module("sdnq")


class SdnqAdapter(EngineAdapter):
    engine = "sdnq"

    def apply(
        self,
        module: torch.nn.Module,
        plan: Plan,
        *,
        example_input: Any,
        progress: Progress | None,
    ) -> torch.nn.Module:
        sdnq = _sdnq()
        weights_dtype = self.spec.schemes[plan.scheme].api
        quantized: torch.nn.Module = sdnq.sdnq_post_load_quant(module, weights_dtype=weights_dtype)
        if progress is not None:
            progress.advance(sum(1 for m in quantized.modules() if hasattr(m, "sdnq_dequantizer")))
        return quantized


ADAPTER = SdnqAdapter

#: how a prequantized SDNQ folder is loaded (``quantize`` applies mode post)
PREQUANTIZED_HINT = (
    "a 'prequantized' SDNQ folder is loaded by from_pretrained, which reads its "
    "quantization_config; import sdnq first for text encoders, or use "
    "quantdoctor.engines.sdnq.load_prequantized(path)"
)


def diffusers_config(plan: Plan, spec: EngineSpec) -> Any:
    """diffusers' ``SDNQConfig(weights_dtype=<scheme>)`` (an ``sdnq.SDNQConfig``) for mode pre;
    every other option at sdnq's default (quantized matmul off)."""
    return engine_module("diffusers").SDNQConfig(weights_dtype=spec.schemes[plan.scheme].api)


def load_prequantized(
    path: str | Path, *, dtype: str = "bfloat16", model_class: Any = None
) -> torch.nn.Module:
    """Load a folder saved by ``save_pretrained`` of an SDNQ-quantized model.

    sdnq is imported first: diffusers (>= 0.40) would import it for a diffusers model, but
    transformers learns about SDNQ only from that import, and without it loads a text
    encoder's quantized weights as plain ones (rule ``sdnq.text-encoder.import-first``).
    The class comes from ``config.json`` (``_class_name`` for diffusers, ``architectures``
    for transformers) unless ``model_class`` is given.
    """
    from pathlib import Path  # here, not at import: detect imports this module

    folder = Path(path)
    config = read_config(folder)
    if quantization_of(config) is None:
        raise InvalidInputError(
            f"{folder}: config.json has no SDNQ quantization_config "
            '("quant_method": "sdnq"); quantize it first (mode pre or post)'
        )
    _sdnq()  # registers SDNQ with transformers (and with diffusers < 0.40)
    cls = model_class if model_class is not None else _model_class(folder, config)
    model: torch.nn.Module = cls.from_pretrained(str(folder), torch_dtype=torch_dtype(dtype))
    return model


def read_config(folder: Path) -> dict[str, Any]:
    import json

    path = folder / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InvalidInputError(f"{path}: not a readable config.json ({err})") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: expected a JSON object")
    return data


def quantization_of(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The SDNQ ``quantization_config`` of a config.json (or a quantization_config.json)."""
    qc = config.get("quantization_config", config)
    if isinstance(qc, dict) and qc.get("quant_method") in QUANT_METHODS:
        return qc
    return None


def scheme_of(quantization_config: Mapping[str, Any]) -> str | None:
    """The scheme a saved SDNQ config names (its ``weights_dtype``)."""
    value = quantization_config.get("weights_dtype")
    return value if isinstance(value, str) and value else None


def scheme_from_config(qc: Mapping[str, Any], spec: EngineRecord) -> str | None:
    """The ``weights_dtype`` of a saved SDNQ ``quantization_config`` (any sdnq type: detect
    names it, and says so where the matrix does not list it)."""
    return scheme_of(qc)


def _model_class(folder: Path, config: Mapping[str, Any]) -> Any:
    name = config.get("_class_name")
    if isinstance(name, str):
        cls = getattr(engine_module("diffusers"), name, None)
        if cls is not None:
            return cls
    archs = config.get("architectures")
    if isinstance(archs, list) and archs and isinstance(archs[0], str):
        cls = getattr(engine_module("transformers"), archs[0], None)
        if cls is not None:
            return cls
    raise InvalidInputError(
        f"{folder}: config.json names no diffusers or transformers class "
        "(_class_name or architectures); pass model_class="
    )


def fingerprint(view: TensorView, spec: EngineRecord) -> list[Quantized]:
    """SDNQ's quantized weights in a safetensors header (``sdnq_weights``); packed codes
    count one parameter per byte here, the config's ``weights_dtype`` names their type."""
    from quantdoctor.files.fingerprint import Quantized

    by_name = view.by_name
    found = sdnq_weights({n: (t.dtype, t.shape) for n, t in by_name.items()})
    out = []
    for scheme, weights in found.items():
        q = Quantized("sdnq", scheme)
        for name in weights:
            q.weights[name] = by_name[name].numel
        out.append(q)
    return out


def sdnq_weights(
    tensors: Mapping[str, tuple[str, Sequence[int]]],
) -> dict[str | None, list[str]]:
    """SDNQ-quantized weights among ``tensors`` (name -> (safetensors dtype, shape)).

    Returns scheme -> the ``<m>.weight`` names quantized with it; ``None`` where the header
    alone cannot tell (packed codes below 8 bits are flat uint8: the config names them).
    A weight counts when a float ``<m>.scale`` sits beside it and its own dtype is a code
    (int8, uint8, float8); a ``<m>.scale`` alone (a norm's parameter) does not.
    """
    found: dict[str | None, list[str]] = {}
    for name, (dtype, _shape) in tensors.items():
        if not name.endswith(".scale"):
            continue
        base = name[: -len("scale")]
        weight = tensors.get(base + "weight")
        if weight is None or dtype not in ("F32", "F16", "BF16", "F64"):
            continue
        wdtype, wshape = weight
        if wdtype in UNPACKED:
            scheme: str | None = UNPACKED[wdtype]
        elif wdtype == "U8":
            unsigned8 = len(wshape) == 2 and base + "zero_point" in tensors
            scheme = "uint8" if unsigned8 else None
        else:
            continue
        found.setdefault(scheme, []).append(base + "weight")
    return found
