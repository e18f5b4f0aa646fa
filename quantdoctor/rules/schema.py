"""The schema of matrix.yaml (pydantic, ``extra="forbid"`` everywhere)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from quantdoctor.rules.conditions import Node, parse, rule_condition
from quantdoctor.rules.core import bytes_per_weight
from quantdoctor.rules.verified import Verified
from quantdoctor.rules.vocab import FACET_VALUES, MODES, OFFLOADS, is_rule_id

_STRICT = ConfigDict(extra="forbid", frozen=True)
#: An engine's name: the first part of its rule ids and the ``--engine`` value.
ENGINE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SchemeSpec(BaseModel):
    """One scheme of an engine: its API name, family, bits, and storage layout.

    Where it computes fast and where it is storage-only (dequantized at every forward)
    depends on versions and GPUs: rules say it (``gguf.storage-only``, ...), not lists here."""

    model_config = _STRICT

    api: str
    family: Literal["int", "float"]
    bits: int = Field(ge=1, le=32)
    #: weights per block and bytes per block (exact storage: gguf Q4_K is 256 in 144 bytes)
    block: int = Field(default=1, ge=1)
    block_bytes: float | None = None
    #: extra bytes per output row (per-channel scales)
    row_bytes: float = 0.0
    #: keyword arguments of the API call besides the name (torchao int4dq: weight_dtype)
    api_args: dict[str, str] = Field(default_factory=dict)
    #: how diffusers' quantization config spells the scheme, where it differs ("" if none)
    diffusers: str | None = None
    note: str = ""
    #: a GGML type (the table in ``quantdoctor/_ggml.py``): api, family, bits, block and
    #: block_bytes come from the table; written here as well, they must agree with it
    ggml: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_ggml(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("ggml") is None:
            return data
        from quantdoctor._ggml import BY_NAME

        name = data["ggml"]
        t = BY_NAME.get(name) if isinstance(name, str) else None
        if t is None:
            raise ValueError(
                f"ggml: {name!r} is not a GGML type; valid values are {', '.join(BY_NAME)}"
            )
        facts = {"family": t.family, "bits": t.bits, "block": t.block, "block_bytes": t.block_bytes}
        for key, value in facts.items():
            if key in data and data[key] is not None and data[key] != value:
                raise ValueError(
                    f"{key}: {data[key]!r}, but GGML type {t.name} has {value} "
                    "(quantdoctor/_ggml.py); leave it out"
                )
        return {"api": t.name, **data, **facts}

    def bytes_per_weight(self, in_features: int = 4096) -> float:
        """Exact bytes a weight takes, blocks and scales included."""
        return bytes_per_weight(
            self.bits, self.block, self.block_bytes, self.row_bytes, in_features
        )


class Signature(BaseModel):
    """An error text this rule produces when ignored: a Python regular expression.

    ``generic``: the text is also produced by other causes (a device mismatch, a meta
    tensor, ``KeyError: None``), so explain names this rule only with evidence of its
    engine or plan (traceback frames, the plan or machine given).
    """

    model_config = _STRICT

    pattern: str
    source: str = ""
    versions: str = ""
    generic: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        from quantdoctor.rules.patterns import unsafe

        try:
            re.compile(v)
        except re.error as err:
            raise ValueError(f"bad regular expression: {err}") from None
        why = unsafe(v)
        if why:
            raise ValueError(f"pattern could run slowly on long text: {why}")
        return v


class EngineSpec(BaseModel):
    """Everything quantdoctor knows about an engine besides its rules and its module's code.

    ``module`` is the Python module that holds the engine's adapter, diffusers config
    builder and file fingerprint (default ``quantdoctor.engines.<name>``); an overlay and
    a module of its own add an engine without touching quantdoctor.
    """

    model_config = _STRICT

    package: str
    install: str
    docs: str = ""
    #: the module ``import`` names (``optimum.quanto``): what "No module named" reports
    imports: str = ""
    #: what the package is, where its name does not say (in the not-installed message)
    about: str = ""
    #: error texts the engine's absence produces besides ``No module named``
    missing: tuple[Signature, ...] = ()
    #: further sources of the not-installed rule (the upstream check that refuses without it)
    sources: tuple[str, ...] = ()
    module: str = ""
    #: the ``quant_method`` of a diffusers/transformers ``quantization_config`` that is this
    #: engine's (default: the engine's name)
    quant_method: str = ""
    #: model file formats whose every file is this engine's (gguf: ``.gguf``)
    formats: tuple[str, ...] = ()
    modes: tuple[str, ...] = MODES
    #: the mode a plan gets when it names none (the mode every user of the engine has)
    default_mode: str = "post"
    #: released versions, newest first: what test strategies draw from
    versions: tuple[str, ...] = ()
    schemes: dict[str, SchemeSpec]

    @field_validator("modes")
    @classmethod
    def _modes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for m in v:
            if m not in MODES:
                raise ValueError(f"{m!r} is not a mode; valid values are {', '.join(MODES)}")
        return v

    @model_validator(mode="after")
    def _default_mode(self) -> EngineSpec:
        if self.default_mode not in self.modes:
            raise ValueError(
                f"default_mode: {self.default_mode!r} is not one of the engine's modes "
                f"({', '.join(self.modes)})"
            )
        return self

    def module_name(self, engine: str) -> str:
        return self.module or f"quantdoctor.engines.{engine}"

    def import_name(self) -> str:
        return self.imports or self.package.replace("-", "_")


class Selector(BaseModel):
    """Which plans a rule is about; a facet left out matches every value."""

    model_config = _STRICT

    engine: tuple[str, ...] = ()
    scheme: tuple[str, ...] = ()
    mode: tuple[str, ...] = ()
    offload: tuple[str, ...] = ()
    component: tuple[str, ...] = ()
    dtype: tuple[str, ...] = ()

    @field_validator("engine", "scheme", "mode", "offload", "component", "dtype", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return (v,) if isinstance(v, str) else v

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        # which engines exist is the matrix's business: checked when the matrix loads
        for name in v:
            if not ENGINE_NAME.match(name):
                raise ValueError(f"{name!r} is not an engine name (lower-case letters, digits, _)")
        return v

    @field_validator("mode", "offload", "component", "dtype")
    @classmethod
    def _vocabulary(cls, v: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return _members(str(info.field_name), v, FACET_VALUES[str(info.field_name)])


def _members(field: str, values: tuple[str, ...], valid: tuple[str, ...]) -> tuple[str, ...]:
    from quantdoctor.rules.vocab import suggest

    for value in values:
        if value not in valid:
            raise ValueError(f"{value!r} is not a valid {field}; {suggest(value, valid)}")
    return values


class Example(BaseModel):
    """A rule's own test: on this environment, this plan gets this status, and the rule
    holds, might hold or stays silent (``tests/test_matrix_file.py`` checks each one).

    ``env`` is Environment JSON, partial as any (a missing fact is unknown); ``plan``
    names the facets, the rest from the rule's selector (its first engine, that engine's
    first scheme it selects, ...) or the defaults."""

    model_config = _STRICT

    env: dict[str, Any] = Field(default_factory=dict)
    plan: dict[str, str] = Field(default_factory=dict)
    status: Literal["blocked", "unknown", "warn", "ok"] | None = None
    finding: Literal["holds", "unknown", "none"] | None = None

    @model_validator(mode="after")
    def _expects(self) -> Example:
        if self.status is None and self.finding is None:
            raise ValueError("an example expects a status, a finding, or both")
        return self


class Rule(BaseModel):
    """A sourced, versioned compatibility fact about a set of plans."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    select: Selector = Selector()
    when: Any = None
    #: distribution -> PEP 440 specifier: the versions the rule holds for ("torch" = torch)
    holds_for: dict[str, str] = Field(default_factory=dict)
    severity: Literal["block", "warn", "info"]
    message: str
    fix: str = ""
    source: str | list[str]
    signatures: tuple[Signature, ...] = ()
    #: a rule that only explains error texts: evaluate() never applies it to a plan, since
    #: its cause cannot be told from the facts quantdoctor probes
    signature_only: bool = False
    replaces: str | None = None
    examples: tuple[Example, ...] = ()

    _condition: Node = PrivateAttr()

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not is_rule_id(v):
            raise ValueError(
                f"{v!r} is not a rule id; valid ids are dotted lower-case words "
                "like 'quanto.offload.balanced'"
            )
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str | list[str]) -> str | list[str]:
        items = [v] if isinstance(v, str) else v
        if not items or not all(s.strip() for s in items):
            raise ValueError("every rule needs a source (a document, URL, issue or evidence file)")
        return v

    @field_validator("holds_for")
    @classmethod
    def _holds_for(cls, v: dict[str, str]) -> dict[str, str]:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        for dist, spec in v.items():
            try:
                SpecifierSet(spec)
            except InvalidSpecifier:
                raise ValueError(
                    f"{dist}: {spec!r} is not a version specifier; valid look like '>=0.45,<0.48'"
                ) from None
        return v

    def model_post_init(self, __context: Any) -> None:
        self._condition = rule_condition(self.when, self.holds_for)

    @property
    def condition(self) -> Node:
        return self._condition

    @property
    def sources(self) -> list[str]:
        return [self.source] if isinstance(self.source, str) else list(self.source)

    def selects(self, facets: dict[str, str]) -> bool:
        sel = self.select
        return all(
            not allowed or facets[name] in allowed
            for name, allowed in (
                ("engine", sel.engine),
                ("scheme", sel.scheme),
                ("mode", sel.mode),
                ("offload", sel.offload),
                ("component", sel.component),
                ("dtype", sel.dtype),
            )
        )


class Measure(BaseModel):
    """One measured number of the cost model, with where it comes from."""

    model_config = _STRICT

    value: float = Field(ge=0, allow_inf_nan=False)
    source: str = Field(min_length=1)


class CostTable(BaseModel):
    """Every table of the cost model has this shape: measured values and their source.

    ``values`` are keyed ``engine.scheme`` or ``engine.scheme.mode`` (offload tables: by
    offload mode); ``null`` is "not measured" or "failed there", never a guess.
    """

    model_config = _STRICT

    gpu: str | None = None
    workload: Literal["large", "small"] | None = None
    source: str = Field(min_length=1)
    values: dict[str, float | None]

    @field_validator("values")
    @classmethod
    def _values(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        for key, value in v.items():
            if value is not None and not 0 <= value < float("inf"):  # nan fails both
                raise ValueError(f"{key}: {value!r} is not a finite number >= 0")
        return v


class GpuClass(BaseModel):
    """A row of the speed tables a machine reads: the first class whose condition holds."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(alias="class", min_length=1)
    when: Any

    @field_validator("when")
    @classmethod
    def _when(cls, v: Any) -> Any:
        parse(v)  # a malformed condition raises ConditionError (a ValueError) naming where
        return v


class CostsFile(BaseModel):
    """The cost model (``advise/costs.yaml``), or an overlay's ``costs:`` section."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    #: GiB the CUDA context and cuBLAS workspace hold, outside any plan's count
    reserve_gb: Measure | None = None
    activation_fraction: Measure | None = None
    activation_cap_gb: Measure | None = None
    large_model_params: Measure | None = None
    gpu_classes: list[GpuClass] = Field(default_factory=list)
    speed: list[CostTable] = Field(default_factory=list)
    offload_speed: list[CostTable] = Field(default_factory=list)
    error: list[CostTable] = Field(default_factory=list)
    workspace_layers: list[CostTable] = Field(default_factory=list)

    @field_validator("offload_speed")
    @classmethod
    def _offloads(cls, v: list[CostTable]) -> list[CostTable]:
        for table in v:
            _members("offload", tuple(table.values), OFFLOADS)
        return v


class MatrixFile(BaseModel):
    """One YAML document: the built-in matrix, or an overlay (rules only)."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    engines: dict[str, EngineSpec] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    #: an overlay's additions to the cost model (same shape as costs.yaml)
    costs: CostsFile | None = None
    #: distribution -> the newest version the rules were checked against (rules/verified.py)
    verified: dict[str, Verified] = Field(default_factory=dict)
