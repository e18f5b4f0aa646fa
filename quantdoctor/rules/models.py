"""The data that flows through quantdoctor: ``Plan``, ``Environment``, ``Finding``, ``Verdict``.

An ``Environment`` keeps the difference between a fact that is *unknown* (its key is
missing) and one that is *known absent* (its value is ``null``): pydantic's
``model_fields_set`` records which keys were given, and ``model_dump(exclude_unset=True)``
gives the same partial JSON back.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from packaging.version import InvalidVersion, Version
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from quantdoctor.rules.core import check_choice, check_name, plan_label
from quantdoctor.rules.records import PASSING, decides
from quantdoctor.rules.vocab import BACKENDS, FACET_VALUES, OS_NAMES

#: the shape of each id a GPU reports, and one such id
_GPU_IDS: dict[str, tuple[re.Pattern[str], str]] = {
    "cuda_cc": (re.compile(r"^\d+\.\d+$"), "8.9"),
    "gfx": (re.compile(r"^gfx[0-9a-f]{3,5}$"), "gfx1100"),
}
#: the Environment keys whose values are the vocabulary's
_ENV_CHOICES: dict[str, tuple[str, ...]] = {"os": OS_NAMES, "backend": BACKENDS}


def check_version(field: str, value: str | None) -> str | None:
    """A PEP 440 version, or ``None``. Raises ``ValueError`` naming the field."""
    if value is None:
        return None
    try:
        Version(value)
    except InvalidVersion:
        raise ValueError(
            f"{field}: {value!r} is not a version; valid values look like 2.5.1 or 0.45.0"
        ) from None
    return value


class _Model(BaseModel):
    """Frozen; a field it does not have (``ofload=``) is an ``unknown_field`` error at that
    key which names the fields it has and the one it likely means (pydantic's own
    ``extra_forbidden`` says only "Extra inputs are not permitted")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _known_fields(cls, data: Any, handler: Any) -> Any:
        try:
            return handler(data)
        except ValidationError as err:
            errors = err.errors()
            if not any(_extra_here(e) for e in errors):
                raise
            rebuilt = [_unknown_field(cls, e) if _extra_here(e) else _again(e) for e in errors]
            raise ValidationError.from_exception_data(err.title, rebuilt) from None


def _extra_here(error: Any) -> bool:
    return bool(error["type"] == "extra_forbidden" and len(error["loc"]) == 1)


#: The ``unknown_field`` error's message (``model``: the model's name, ``valid``: its fields).
_UNKNOWN_FIELD = "not a field of {model}; {valid}"


def _unknown_field(model: type[BaseModel], error: Any) -> Any:
    from quantdoctor.rules.vocab import suggest

    valid = suggest(str(error["loc"][0]), model.model_fields)
    return {
        "type": PydanticCustomError(
            "unknown_field", _UNKNOWN_FIELD, {"model": model.__name__, "valid": valid}
        ),
        "loc": error["loc"],
        "input": error["input"],
    }


def _again(error: Any) -> Any:
    """An error as ``ValidationError.from_exception_data`` takes it back: pydantic's own
    types by name, a nested model's ``unknown_field`` as the custom error it is."""
    kind: Any = error["type"]
    if kind == "unknown_field":
        kind = PydanticCustomError(kind, _UNKNOWN_FIELD, error["ctx"])
    ctx = {"ctx": error["ctx"]} if "ctx" in error else {}
    return {"type": kind, "loc": error["loc"], "input": error["input"], **ctx}


class Plan(_Model):
    """What the user wants to do: an engine, a scheme, and how the model is loaded and run.

    A value: building one checks the vocabulary only, and reads no file. Whether the
    engine and scheme exist is a question for the matrix in hand
    (``Matrix.check_plan``, which ``evaluate`` asks); a plan that names no ``mode``
    gets the engine's default mode there (``mode`` stays ``""`` until then).
    """

    engine: str
    scheme: str
    mode: str = ""
    offload: str = "none"
    component: str = "transformer"
    dtype: str = "bfloat16"

    @field_validator("engine", "scheme")
    @classmethod
    def _name(cls, v: str, info: ValidationInfo) -> str:
        return check_name(str(info.field_name), v)

    @field_validator("mode", "offload", "component", "dtype")
    @classmethod
    def _choice(cls, v: str, info: ValidationInfo) -> str:
        field = str(info.field_name)
        if field == "mode" and not v:  # filled in by the matrix's default mode
            return v
        return check_choice(field, v, FACET_VALUES[field])

    def label(self) -> str:
        """A short one-line name: ``quanto qint8 mode=post offload=balanced``."""
        return plan_label(self)

    def to_diffusers(self) -> Any:
        """The diffusers quantization config for this plan (``BitsAndBytesConfig``, ...)."""
        import importlib

        # rules/ imports no other layer: the engines' registry is found by name, on call
        engines = importlib.import_module("quantdoctor.engines")
        return engines.to_diffusers(self)


class TorchInfo(_Model):
    version: str | None = None
    cuda: str | None = None
    hip: str | None = None
    xpu: bool | None = None

    @field_validator("version", "cuda")
    @classmethod
    def _version(cls, v: str | None, info: ValidationInfo) -> str | None:
        return check_version(f"torch.{info.field_name}", v)

    @field_validator("hip")
    @classmethod
    def _hip(cls, v: str | None) -> str | None:
        # torch.version.hip reads like "6.2.41133-dd7f95766": keep the numeric part.
        if v is None:
            return None
        match = re.match(r"^\d+(\.\d+)*", v)
        if not match:
            raise ValueError(f"torch.hip: {v!r} is not a version; valid values look like 6.2")
        return match.group(0)


class GPU(_Model):
    vendor: Literal["nvidia", "amd", "intel", "apple", "other"] | None = None
    name: str | None = None
    cuda_cc: str | None = None
    gfx: str | None = None
    memory_gb: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    driver: str | None = None

    @field_validator("cuda_cc", mode="before")
    @classmethod
    def _cc_number(cls, v: Any) -> Any:
        """``8.6`` and ``9`` as JSON numbers mean ``"8.6"`` and ``"9.0"``."""
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            return f"{v}.0"
        if isinstance(v, float):
            return f"{v:.1f}"
        return v

    @field_validator("cuda_cc", "gfx")
    @classmethod
    def _id(cls, v: str | None, info: ValidationInfo) -> str | None:
        shape, example = _GPU_IDS[str(info.field_name)]
        if v is not None and not shape.match(v):
            raise ValueError(
                f"gpus.{info.field_name}: {v!r} is not valid; valid values look like {example}"
            )
        return v


class TritonInfo(_Model):
    version: str | None = None
    works: bool | None = None

    @field_validator("version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        return check_version("triton.version", v)


class Environment(_Model):
    """The facts of one machine, as in DESIGN.md's Environment JSON.

    A missing key is unknown; ``None`` is known absent. ``notes`` says why a fact is
    unknown (``{"gpus": "nvidia-smi timed out after 2.0 s"}``).
    """

    os: str | None = None
    wsl: bool | None = None
    arch: str | None = None
    python: str | None = None
    backend: str | None = None
    torch: TorchInfo | None = None
    gpus: tuple[GPU, ...] | None = None
    triton: TritonInfo | None = None
    packages: dict[str, str | None] = Field(default_factory=dict)
    notes: dict[str, str] = Field(default_factory=dict)

    @field_validator("os", "backend")
    @classmethod
    def _choice(cls, v: str | None, info: ValidationInfo) -> str | None:
        field = str(info.field_name)
        return None if v is None else check_choice(field, v, _ENV_CHOICES[field])

    @field_validator("python")
    @classmethod
    def _python(cls, v: str | None) -> str | None:
        return check_version("python", v)

    @field_validator("packages")
    @classmethod
    def _packages(cls, v: dict[str, str | None]) -> dict[str, str | None]:
        from packaging.utils import canonicalize_name

        out: dict[str, str | None] = {}
        for name, version in v.items():
            out[canonicalize_name(name)] = check_version(f"packages.{name}", version)
        return out

    def to_json_dict(self) -> dict[str, Any]:
        """The partial JSON this environment was built from (unknown keys stay missing)."""
        return self.model_dump(mode="json", exclude_unset=True)


class Finding(_Model):
    """One rule that holds (or, with ``state="unknown"``, might hold) for a plan here."""

    rule: str
    severity: Literal["block", "warn", "info"]
    message: str
    fix: str
    source: str
    state: Literal["holds", "unknown"] = "holds"
    missing: tuple[str, ...] = ()

    def decides(self, status: str) -> bool:
        """Whether this finding is one that gives a verdict this ``status``."""
        return decides(self.severity, self.state, status)


class Verdict(_Model):
    """The answer for one plan on one environment."""

    status: Literal["blocked", "unknown", "warn", "ok"]
    plan: Plan
    findings: tuple[Finding, ...] = ()
    alternatives: tuple[Plan, ...] = ()

    @property
    def passes(self) -> bool:
        """``ok`` or ``warn``: the plan runs here."""
        return self.status in PASSING

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(f.rule for f in self.findings)

    @property
    def deciding(self) -> tuple[Finding, ...]:
        """The findings that made the status: the block rules that hold (blocked), those
        that might (unknown), the warnings (warn); none for ok."""
        return tuple(f for f in self.findings if f.decides(self.status))

    def summary(self) -> str:
        """One paragraph: the status, the rules that decided it, their fixes, the alternatives."""
        head = f"{self.plan.label()}: {self.status}"
        lines = [head]
        for f in self.deciding:
            lines.append(f"  [{f.rule}] {f.message}")
            if f.missing:
                lines.append(f"    unknown facts: {', '.join(f.missing)}")
            if f.fix:
                lines.append(f"    fix: {f.fix}")
        if self.alternatives:
            lines.append("  works instead: " + "; ".join(p.label() for p in self.alternatives))
        return "\n".join(lines)
