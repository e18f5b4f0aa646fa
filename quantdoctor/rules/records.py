"""An engine's matrix section and a rule as light read-only records over the validated plain data.

``Matrix.engines`` gives the same sections as pydantic models (``rules.schema``) for the
public API; the command line's fast paths (``detect``, ``explain``, the report) and the
engines' ``fingerprint``/``scheme_from_config`` read these instead, which cost no
pydantic import and no validation (the data was validated when the matrix was built).
The attribute names are the schema's, so code written against either reads both.
"""

from __future__ import annotations

from quantdoctor.rules.vocab import COMPONENTS, DTYPES, MODES, OFFLOADS, SEVERITIES, is_rule_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from functools import lru_cache
    from typing import Any, TypeGuard

    from quantdoctor.rules.conditions import Node
    from quantdoctor.rules.core import Core, Facets
    from quantdoctor.rules.matrix import Matrix
else:  # functools imports collections: ~3 ms of a command
    from quantdoctor._memo import lru_cache


class SchemeRecord:
    """One scheme of an engine (``SchemeSpec``'s fields)."""

    __slots__ = (
        "api",
        "api_args",
        "bits",
        "block",
        "block_bytes",
        "diffusers",
        "family",
        "note",
        "row_bytes",
    )

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.api: str = data["api"]
        self.family: str = data.get("family", "int")
        self.bits: int = int(data["bits"])
        self.block: int = int(data.get("block") or 1)
        self.block_bytes: float | None = data.get("block_bytes")
        self.row_bytes: float = float(data.get("row_bytes") or 0.0)
        self.api_args: dict[str, str] = dict(data.get("api_args") or {})
        self.diffusers: str | None = data.get("diffusers")
        self.note: str = data.get("note") or ""

    def __repr__(self) -> str:
        return f"SchemeRecord(api={self.api!r}, bits={self.bits})"


class EngineRecord:
    """An engine's section (``EngineSpec``'s fields), schemes by name."""

    __slots__ = (
        "about",
        "default_mode",
        "docs",
        "formats",
        "imports",
        "install",
        "missing",
        "modes",
        "module",
        "package",
        "quant_method",
        "schemes",
        "sources",
        "versions",
    )

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.package: str = data["package"]
        self.install: str = data.get("install") or ""
        self.docs: str = data.get("docs") or ""
        self.imports: str = data.get("imports") or ""
        self.about: str = data.get("about") or ""
        self.missing: tuple[Mapping[str, Any], ...] = tuple(data.get("missing") or ())
        self.sources: tuple[str, ...] = tuple(data.get("sources") or ())
        self.module: str = data.get("module") or ""
        self.quant_method: str = data.get("quant_method") or ""
        self.formats: tuple[str, ...] = tuple(data.get("formats") or ())
        self.modes: tuple[str, ...] = tuple(data["modes"])
        self.default_mode: str = data.get("default_mode") or "post"
        self.versions: tuple[str, ...] = tuple(data.get("versions") or ())
        self.schemes: dict[str, SchemeRecord] = {
            name: SchemeRecord(spec) for name, spec in data["schemes"].items()
        }

    def __repr__(self) -> str:
        return f"EngineRecord(package={self.package!r}, {len(self.schemes)} schemes)"

    def module_name(self, engine: str) -> str:
        return self.module or f"quantdoctor.engines.{engine}"

    def import_name(self) -> str:
        return self.imports or self.package.replace("-", "_")


def engine_records(engine_data: Mapping[str, Mapping[str, Any]]) -> dict[str, EngineRecord]:
    """Every engine's section as a record, in matrix order."""
    return {name: EngineRecord(spec) for name, spec in engine_data.items()}


class SelectRecord:
    """Which plans a rule is about (``Selector``'s fields); an empty facet matches all."""

    __slots__ = ("component", "dtype", "engine", "mode", "offload", "scheme")

    def __init__(self, data: Mapping[str, Any] | None) -> None:
        data = data or {}
        self.engine: tuple[str, ...] = tuple(data.get("engine") or ())
        self.scheme: tuple[str, ...] = tuple(data.get("scheme") or ())
        self.mode: tuple[str, ...] = tuple(data.get("mode") or ())
        self.offload: tuple[str, ...] = tuple(data.get("offload") or ())
        self.component: tuple[str, ...] = tuple(data.get("component") or ())
        self.dtype: tuple[str, ...] = tuple(data.get("dtype") or ())


class SignatureRecord:
    """An error text a rule produces (``Signature``'s fields)."""

    __slots__ = ("generic", "pattern", "source", "versions")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.pattern: str = data["pattern"]
        self.source: str = data.get("source") or ""
        self.versions: str = data.get("versions") or ""
        self.generic: bool = bool(data.get("generic"))


class NamedFacts:
    """A rule's condition as ``explain`` reads it without a machine: the facts it names.
    Deciding it on a machine takes the parsed condition, which the matrix holds."""

    __slots__ = ("names",)

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def facts(self) -> tuple[str, ...]:
        return self.names

    def eval(self, facts: Mapping[str, Any], missing: set[str]) -> bool | None:
        raise TypeError("a condition read without the matrix names its facts only")


_FACET_VOCAB: dict[str, frozenset[str] | None] = {
    "engine": None,
    "scheme": None,
    "mode": frozenset(MODES),
    "offload": frozenset(OFFLOADS),
    "component": frozenset(COMPONENTS),
    "dtype": frozenset(DTYPES),
}


def strings(value: Any) -> TypeGuard[list[str]]:
    """A list of ``str`` (exactly those types: data read back from a cache)."""
    return type(value) is list and all(type(v) is str for v in value)


_SEVERITIES = frozenset(SEVERITIES)


def rule_ok(rule: Any) -> bool:
    """Whether a rule read back from a cache has the shape the evaluator and ``explain``
    read (the rest is the schema's)."""
    try:
        if type(rule["id"]) is not str or not is_rule_id(rule["id"]):
            return False
        if rule["severity"] not in _SEVERITIES or type(rule["message"]) is not str:
            return False
        if type(rule.get("fix", "")) is not str:
            return False
        source = rule["source"]
        if type(source) is not str and not (source and strings(source)):
            return False
        for facet, values in (rule.get("select") or {}).items():
            if not values:
                continue
            vocab = _FACET_VOCAB[facet]  # KeyError: not a facet
            if not strings(values) or (vocab is not None and not set(values) <= vocab):
                return False
        for dist, spec in (rule.get("holds_for") or {}).items():
            if type(dist) is not str or type(spec) is not str:
                return False
        replaces = rule.get("replaces")
        if replaces is not None and type(replaces) is not str:
            return False
        for sig in rule.get("signatures") or ():
            if type(sig["pattern"]) is not str:
                return False
    except (KeyError, TypeError, AttributeError):
        return False
    return True


class RuleRecord:
    """A rule as ``explain`` reads it (``Rule``'s fields), its condition already parsed."""

    __slots__ = ("condition", "fix", "id", "message", "select", "severity", "signatures", "source")

    def __init__(self, data: Mapping[str, Any], condition: Node | NamedFacts) -> None:
        self.id: str = data["id"]
        self.severity: str = data["severity"]
        self.message: str = data["message"]
        self.fix: str = data.get("fix") or ""
        self.source: str | list[str] = data["source"]
        self.select = SelectRecord(data.get("select"))
        self.signatures: tuple[SignatureRecord, ...] = tuple(
            SignatureRecord(s) for s in data.get("signatures") or ()
        )
        self.condition = condition

    def __repr__(self) -> str:
        return f"RuleRecord({self.id!r})"


class FindingRecord:
    """One rule that applies (``Finding``'s fields), from the evaluator's plain verdict."""

    __slots__ = ("_data", "fix", "message", "missing", "rule", "severity", "source", "state")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        self.rule: str = data["rule"]
        self.severity: str = data["severity"]
        self.message: str = data["message"]
        self.fix: str = data["fix"]
        self.source: str = data["source"]
        self.state: str = data["state"]
        self.missing: list[str] = list(data["missing"])

    def decides(self, status: str) -> bool:
        """Whether this finding is one that gives a verdict this ``status``."""
        return decides(self.severity, self.state, status)

    def to_json(self) -> dict[str, Any]:
        """The finding as ``Finding.model_dump(mode="json")`` gives it: a copy of the
        evaluator's dict it was read from."""
        return {**self._data, "missing": list(self.missing)}


class VerdictRecord:
    """A verdict (``Verdict``'s fields) over the evaluator's plain data: what the doctor
    report and its recommendation read, without building pydantic models. ``data`` is
    the JSON ``Verdict.model_dump(mode="json")`` gives."""

    __slots__ = ("_data", "alternatives", "findings", "plan", "status")

    def __init__(self, data: Mapping[str, Any], plan: Facets) -> None:
        self._data: Mapping[str, Any] | None = data
        self.status: str = data["status"]
        self.plan = plan
        self.findings = [FindingRecord(f) for f in data["findings"]]
        self.alternatives: list[Mapping[str, str]] = list(data["alternatives"])

    @classmethod
    def of(cls, plan: Facets, status: str, findings: list[FindingRecord]) -> VerdictRecord:
        """A verdict with no alternatives from its findings (which it may share with
        other verdicts: none of them changes one); ``data`` is made when first read."""
        record = cls.__new__(cls)
        record._data = None
        record.status = status
        record.plan = plan
        record.findings = findings
        record.alternatives = []
        return record

    @property
    def data(self) -> Mapping[str, Any]:
        if self._data is None:
            self._data = {
                "status": self.status,
                "plan": self.plan.to_json(),
                "findings": [f.to_json() for f in self.findings],
                "alternatives": [dict(a) for a in self.alternatives],
            }
        return self._data

    @property
    def passes(self) -> bool:
        """``ok`` or ``warn``: the plan runs here."""
        return self.status in PASSING

    def __repr__(self) -> str:
        return f"VerdictRecord({self.plan.label()!r}, {self.status!r})"


def decides(severity: str, state: str, status: str) -> bool:
    """Whether a finding (``severity``, ``state``) is one that gives a verdict ``status``."""
    if status == "blocked":
        return severity == "block" and state == "holds"
    if status == "unknown":
        return state == "unknown"
    return status == "warn" and severity == "warn" and state == "holds"


#: The statuses of a plan that runs here.
PASSING: tuple[str, ...] = ("ok", "warn")


def engine_ok(spec: Any) -> bool:
    """Whether a cached engine section has the shape the records and evaluator read."""
    if not isinstance(spec, dict) or not isinstance(spec.get("schemes"), dict):
        return False
    modes = spec.get("modes")
    if not isinstance(modes, list) or not all(type(m) is str for m in modes):
        return False
    if not set(modes) <= set(MODES):
        return False
    if spec.get("default_mode", "post") not in modes or not isinstance(spec.get("package"), str):
        return False
    return all(
        isinstance(s, dict)
        and isinstance(s.get("bits"), int)
        and not isinstance(s.get("bits"), bool)
        for s in spec["schemes"].values()
    )


def engine_sections() -> dict[str, EngineRecord]:
    """The engines of the default matrix (built-in plus default overlays) as records.

    Without overlays this reads the engines alone (a cache entry of their own, a few
    KiB), not the rules: what ``detect`` needs to name a file's plan."""
    from quantdoctor.rules.named import default_overlays

    if default_overlays():
        from quantdoctor.rules.matrix import load_matrix

        return load_matrix().records
    return _builtin_engines()


@lru_cache(maxsize=1)
def _builtin_engines() -> dict[str, EngineRecord]:
    from quantdoctor._dirs import code_digest, read_entry, write_entry

    key = code_digest()
    data = read_entry("engines", key)
    if isinstance(data, dict) and all(
        isinstance(name, str) and engine_ok(spec) for name, spec in data.items()
    ):
        try:
            return engine_records(data)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # a forged entry: rebuilt below
    from quantdoctor.rules.matrix import KEEP, _builtin_loaded  # the whole matrix: a miss

    data = _builtin_loaded()[0]["engines"]
    write_entry("engines", key, data, keep=KEEP["engines"])
    return engine_records(data)


def grid_records(
    facts: Mapping[str, Any], matrix: Matrix, core: Core | None = None
) -> list[VerdictRecord]:
    """Every engine x scheme x offload of ``matrix`` judged on ``facts`` (``facts_from_json``
    of an environment already checked), as records: the doctor report's grid, no pydantic.

    The same verdicts as ``Core.verdict(plan, alternatives=0)`` of each plan, found
    column by column (``Core.grid_findings``): a finding the same for many plans is one
    ``FindingRecord`` they share. ``core``: an evaluator on these facts and matrix to
    use (and keep what it evaluates, for the recommendation), else a new one."""
    from quantdoctor.rules.core import Core, grid, status_of

    if core is None:
        core = Core(dict(facts), matrix)
    plans = grid(matrix)
    return [
        VerdictRecord.of(plan, status_of(found), found)
        for plan, found in zip(plans, core.grid_findings(plans, FindingRecord), strict=True)
    ]
