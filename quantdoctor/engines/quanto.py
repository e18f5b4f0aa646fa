"""optimum-quanto: ``quantize(model, weights=...)`` then ``freeze(model)``, as quanto documents.

Its diffusers config is ``QuantoConfig(weights_dtype=...)`` with the scheme's
``diffusers`` spelling from the matrix (diffusers' "float8" is quanto's e4m3fn; e5m2
has none).
"""

from __future__ import annotations

import os

from quantdoctor._fileio import unreadable
from quantdoctor.engines.base import EngineAdapter, Progress, engine_module, scheme_api
from quantdoctor.errors import InvalidInputError
from quantdoctor.files.fingerprint import Quantized, TensorView, read_json

TYPE_CHECKING = False  # typing costs `detect` ~3 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    import torch

    from quantdoctor.files._safetensors_header import TensorEntry
    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.records import EngineRecord
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


# ---------------------------------------------------------------- detect


ENGINE = "quanto"
#: the side file quanto's save writes beside the weights: module -> qtypes
QMAP = "quanto_qmap.json"
#: safetensors dtype of an unpacked quanto weight -> its scheme
_DTYPES = {"I8": "qint8", "F8_E4M3": "qfloat8_e4m3fn", "F8_E5M2": "qfloat8_e5m2"}


def fingerprint(view: TensorView, spec: EngineRecord) -> list[Quantized]:
    """``<m>.weight._data`` with ``._scale`` (and ``._shift`` for qint4/qint2, whose data is
    packed in ``._data._data``); a ``quanto_qmap.json`` beside it, if saved, names each
    module's qtype."""
    by_name = view.by_name
    qmap = _read_qmap(view.beside) if view.beside is not None else {}
    found: dict[str | None, Quantized] = {}
    for name, t in by_name.items():
        for suffix in ("._data._data", "._data"):
            if name.endswith(suffix):
                owner = name[: -len(suffix)]
                break
        else:
            continue
        if owner + "._scale" not in by_name and owner + "._scale_shift" not in by_name:
            continue
        module = owner.rsplit(".", 1)[0]
        scheme, params = _scheme(by_name, owner, t, qmap.get(module))
        q = found.setdefault(scheme, Quantized(ENGINE, scheme))
        q.weights[name] = params
    return list(found.values())


def _scheme(
    by_name: dict[str, TensorEntry], owner: str, data: TensorEntry, declared: str | None
) -> tuple[str | None, int]:
    """(scheme, unpacked parameter count) of one quanto weight."""
    if data.dtype in _DTYPES:
        return declared or _DTYPES[data.dtype], data.numel
    if owner + "._scale_shift" in by_name:  # TinyGemm layout: int4 only
        return "qint4", data.numel * 2
    if declared in ("qint4", "qint2"):
        return declared, data.numel * (2 if declared == "qint4" else 4)
    scale = by_name.get(owner + "._scale")
    bits = _packed_bits(data, scale)
    if bits is None or scale is None:
        return None, data.numel
    return ("qint4" if bits == 4 else "qint2"), scale.numel * data.shape[1]


def _packed_bits(data: TensorEntry, scale: TensorEntry | None) -> int | None:
    """4 or 2: the bits of a packed quanto weight, from its data and scale shapes.

    quanto's group size for qint4/qint2 (optimum/quanto/nn/qmodule.py,
    ``QModuleMixin.__init__``) is 128, lowered by 32 until it divides the input features;
    a layer of 128 input features or fewer, or one no size divides, gets one scale per
    output row instead. Either way the weight is cut into rows of ``group`` values, one
    scale each (``_scale`` is ``[rows, 1]``), and 8 // bits rows are packed into each
    uint8 row (``_data._data`` is ``[ceil(rows * bits / 8), group]``). The ratio of the
    two row counts is the bit width whatever the group size, so a layer narrower than
    the group size reads as the same scheme as its neighbours.
    """
    if scale is None or len(data.shape) != 2 or not scale.shape or data.dtype != "U8":
        return None
    rows, group = scale.shape[0], data.shape[1]
    if scale.numel != rows or group == 0:
        return None
    for bits in (4, 2):
        if data.shape[0] == -(-rows * bits // 8):
            return bits
    return None


def _read_qmap(folder: str) -> dict[str, str]:
    """quanto's ``quanto_qmap.json`` (module -> weights qtype), when saved beside the file."""
    path = os.path.join(folder, QMAP)
    if not os.path.isfile(path):
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise unreadable(path, "expected a JSON object of module -> {weights, activations}")
    return {
        str(module): spec["weights"]
        for module, spec in data.items()
        if isinstance(spec, dict) and isinstance(spec.get("weights"), str)
    }


def scheme_from_config(qc: Mapping[str, Any], spec: EngineRecord) -> str | None:
    """``QuantoConfig`` as saved: its ``weights_dtype``, spelled as the matrix's ``diffusers``."""
    weights = qc.get("weights_dtype")
    return next((s for s, v in spec.schemes.items() if v.diffusers == weights), None)
