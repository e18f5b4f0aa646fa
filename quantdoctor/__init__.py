"""quantdoctor: will this quantization plan work on this machine, why not, and what will?

The public names load lazily, so ``import quantdoctor`` imports no torch, no engine,
no rich and no pydantic until a name is used.
"""

from __future__ import annotations

import sys

__version__ = "0.1.0"

#: module -> the public names it defines, each loaded on first use
_LAZY_FROM: dict[str, tuple[str, ...]] = {
    "quantdoctor.rules.models": ("Plan", "Environment", "Verdict", "Finding"),
    "quantdoctor.advise.ranked": ("evaluate",),
    "quantdoctor.rules.matrix": ("load_matrix",),
    "quantdoctor.doctor.probe": ("probe",),
    "quantdoctor.gate": ("preflight", "guard"),
    "quantdoctor.rules.explain": ("explain",),
    "quantdoctor.files.detect": ("detect",),
    "quantdoctor.engines": ("quantize",),
    "quantdoctor.advise.recommend": ("recommend",),
    "quantdoctor.errors": (
        "QuantDoctorError",
        "InvalidInputError",
        "MatrixError",
        "IncompatiblePlanError",
        "EngineError",
        "QuantDoctorWarning",
    ),
}
_LAZY: dict[str, str] = {name: module for module, names in _LAZY_FROM.items() for name in names}

__all__ = sorted(_LAZY)

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from typing import Any

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


def _module(name: str) -> Any:
    __import__(name)  # not importlib: it costs every command ~1 ms (it imports warnings)
    return sys.modules[name]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'quantdoctor' has no attribute {name!r}")
    value = getattr(_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
