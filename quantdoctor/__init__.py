"""quantdoctor: will this quantization plan work on this machine, why not, and what will?

The public names load lazily, so ``import quantdoctor`` imports no torch, no engine,
no rich and no pydantic until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "Plan": "quantdoctor.rules.models",
    "Environment": "quantdoctor.rules.models",
    "Verdict": "quantdoctor.rules.models",
    "Finding": "quantdoctor.rules.models",
    "evaluate": "quantdoctor.advise.ranked",
    "load_matrix": "quantdoctor.rules.matrix",
    "probe": "quantdoctor.doctor.probe",
    "preflight": "quantdoctor.gate",
    "guard": "quantdoctor.gate",
    "explain": "quantdoctor.rules.explain",
    "detect": "quantdoctor.files.detect",
    "quantize": "quantdoctor.engines",
    "recommend": "quantdoctor.advise.recommend",
    "QuantDoctorError": "quantdoctor.errors",
    "InvalidInputError": "quantdoctor.errors",
    "MatrixError": "quantdoctor.errors",
    "IncompatiblePlanError": "quantdoctor.errors",
    "EngineError": "quantdoctor.errors",
    "QuantDoctorWarning": "quantdoctor.errors",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:
    from quantdoctor.advise.ranked import evaluate as evaluate
    from quantdoctor.errors import EngineError as EngineError
    from quantdoctor.errors import IncompatiblePlanError as IncompatiblePlanError
    from quantdoctor.errors import InvalidInputError as InvalidInputError
    from quantdoctor.errors import MatrixError as MatrixError
    from quantdoctor.errors import QuantDoctorError as QuantDoctorError
    from quantdoctor.errors import QuantDoctorWarning as QuantDoctorWarning
    from quantdoctor.rules.matrix import load_matrix as load_matrix
    from quantdoctor.rules.models import Environment as Environment
    from quantdoctor.rules.models import Finding as Finding
    from quantdoctor.rules.models import Plan as Plan
    from quantdoctor.rules.models import Verdict as Verdict


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'quantdoctor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
