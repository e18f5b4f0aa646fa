"""Loading matrix.yaml and its overlays, with errors that name ``file:line: field``.

Overlays, applied in this order (later wins): the user config dir's ``matrix.yaml``
(platformdirs; ``QUANTDOCTOR_CONFIG_DIR`` overrides the dir), the files named in
``QUANTDOCTOR_MATRIX`` (``os.pathsep``-separated), ``--matrix FILE`` on the command line,
and ``load_matrix(extra=...)``. A rule whose id exists replaces it (as does one that
names it in ``replaces``); a new id adds a rule.
"""

from __future__ import annotations

import gc
import os

from quantdoctor._dirs import code_digest, digest, read_entry, write_entry
from quantdoctor.errors import MatrixError
from quantdoctor.rules.core import (
    FACETS,
    CompiledRule,
    SchemeView,
    check_in_matrix,
    compile_rule,
)
from quantdoctor.rules.named import BUILTIN_PATH, default_overlays
from quantdoctor.rules.records import EngineRecord, RuleRecord, engine_records, rule_ok
from quantdoctor.rules.records import engine_ok as _engine_ok
from quantdoctor.rules.vocab import canonical_name

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from functools import cached_property, lru_cache
    from typing import Any

    from pydantic import BaseModel

    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.schema import EngineSpec, MatrixFile, Rule
    from quantdoctor.rules.verified import Verified

    Source = str | os.PathLike[str] | Mapping[str, Any]
else:  # collections.abc and functools import collections: ~3 ms of a command
    from _collections_abc import Mapping

    from quantdoctor._memo import cached_property, lru_cache


def __getattr__(name: str) -> Any:
    """``BUILTIN``: the built-in matrix.yaml as a ``Path`` (``rules.named.BUILTIN_PATH`` is
    the string; pathlib is imported only when this is asked for)."""
    if name == "BUILTIN":
        from pathlib import Path

        return Path(BUILTIN_PATH)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Matrix:
    """The built-in matrix with its overlays applied.

    Held as validated plain data, which the evaluator reads (``compiled_for``,
    ``scheme_names``, ``modes``, ``bits``); ``engines`` and ``rules`` give the same as
    pydantic models, built on first use (the public API).
    """

    def __init__(
        self,
        engine_data: dict[str, dict[str, Any]],
        rule_data: list[dict[str, Any]],
        compiled: list[CompiledRule] | None = None,
        cost_overlays: tuple[dict[str, Any], ...] = (),
        verified_data: dict[str, Any] | None = None,
        files: tuple[str, ...] = (),
    ) -> None:
        self.engine_data = engine_data
        self.rule_data = rule_data
        self.compiled = compiled or [compile_rule(i, r) for i, r in enumerate(rule_data)]
        #: the overlays' ``costs:`` sections, in order (``advise`` merges them over costs.yaml)
        self.cost_overlays = cost_overlays
        #: distribution -> {"version", "how"}: the newest version the rules were checked against
        self.verified_data = verified_data or {}
        self.files = files
        self._by_engine: dict[str, list[CompiledRule]] | None = None
        self._by_plan: dict[tuple[str, ...], tuple[CompiledRule, ...]] = {}

    def __repr__(self) -> str:
        return f"Matrix({len(self.engine_data)} engines, {len(self.rule_data)} rules, {self.files})"

    @cached_property
    def engine_names(self) -> tuple[str, ...]:
        """The engines in matrix order (the order the grid, the report and ranking use)."""
        return tuple(self.engine_data)

    def scheme_names(self, engine: str) -> dict[str, Any]:
        """The engine's schemes (plain data, by name); empty for an unknown engine."""
        spec = self.engine_data.get(engine)
        return spec["schemes"] if spec else {}

    def modes(self, engine: str) -> tuple[str, ...]:
        return tuple(self.engine_data[engine]["modes"])

    def scheme(self, engine: str, scheme: str) -> SchemeView:
        """A scheme's storage facts (plain; ``engines[e].schemes[s]`` is the pydantic form)."""
        return SchemeView.of(self.engine_data[engine]["schemes"][scheme])

    def bits(self, engine: str, scheme: str) -> int:
        return int(self.engine_data[engine]["schemes"][scheme]["bits"])

    def compiled_for(self, engine: str) -> list[CompiledRule]:
        """Rules that may select a plan of this engine, in matrix order (plain)."""
        if self._by_engine is None:  # every engine's at once: one pass over the rules
            by_engine: dict[str, list[CompiledRule]] = {name: [] for name in self.engine_data}
            for c in self.compiled:
                if c.select and c.select[0][0] == 0:  # an engine selector: those engines'
                    for name in c.select[0][1]:
                        if name in by_engine:
                            by_engine[name].append(c)
                else:
                    for rules in by_engine.values():
                        rules.append(c)
            self._by_engine = by_engine
        found = self._by_engine.get(engine)
        if found is None:  # not an engine of the matrix (a ``Matrix`` built by hand)
            found = [c for c in self.compiled if not c.select or c.select[0][0] != 0
                     or engine in c.select[0][1]]  # fmt: skip
            self._by_engine[engine] = found
        return found

    def selecting(self, plan: tuple[str, ...]) -> tuple[CompiledRule, ...]:
        """The rules whose selector takes this plan (facets in ``core.FACETS`` order), in
        matrix order; the same on every machine, so worked out once per plan."""
        found = self._by_plan.get(plan)
        if found is None:
            found = tuple(
                r for r in self.compiled_for(plan[0]) if not r.signature_only and r.selects(plan)
            )
            self._by_plan[plan] = found
        return found

    @cached_property
    def records(self) -> dict[str, EngineRecord]:
        """The engines as light records (``rules.records``): the schema's attribute names,
        no pydantic; what detect, explain and the report read."""
        return engine_records(self.engine_data)

    @cached_property
    def rule_records(self) -> list[RuleRecord]:
        """Every rule as a light record (``rules.records``), in matrix order: what
        ``explain`` reads, without pydantic."""
        return [
            RuleRecord(r, c.condition) for r, c in zip(self.rule_data, self.compiled, strict=True)
        ]

    @cached_property
    def engines(self) -> dict[str, EngineSpec]:
        """The engines and their schemes as pydantic models."""
        from quantdoctor.rules.schema import EngineSpec

        return {name: EngineSpec.model_validate(spec) for name, spec in self.engine_data.items()}

    @cached_property
    def rules(self) -> list[Rule]:
        """Every rule as a pydantic model, in matrix order."""
        from quantdoctor.rules.schema import Rule

        return [Rule.model_validate(r) for r in self.rule_data]

    @cached_property
    def verified(self) -> dict[str, Verified]:
        """The ``verified:`` section as pydantic models (``rules/verified.py``)."""
        from quantdoctor.rules.verified import Verified

        return {d: Verified.model_validate(v) for d, v in self.verified_data.items()}

    @property
    def costs(self) -> dict[str, Any]:
        """The overlays' cost sections merged in order (later wins, top-level keys)."""
        merged: dict[str, Any] = {}
        for overlay in self.cost_overlays:
            merged.update(overlay["costs"])
        return merged

    def rules_for(self, engine: str) -> list[Rule]:
        """Rules that may select a plan of this engine, in matrix order."""
        wanted = {c.number for c in self.compiled_for(engine)}
        return [r for i, r in enumerate(self.rules) if i in wanted]

    def rule(self, rule_id: str) -> Rule:
        for i, r in enumerate(self.rule_data):
            if r["id"] == rule_id:
                return self.rules[i]
        raise KeyError(rule_id)

    def default_mode(self, engine: str) -> str:
        spec = self.engine_data.get(engine)
        return str(spec.get("default_mode") or "post") if spec else "post"

    def check_plan(self, plan: Plan) -> Plan:
        """``plan`` checked against these engines, its mode filled in when it names none.

        Raises ``InvalidInputError`` naming the facet: an engine this matrix does not
        have, a scheme that is not the engine's."""
        engine, scheme, mode = check_in_matrix(self, plan.engine, plan.scheme, plan.mode)
        if (engine, scheme, mode) != (plan.engine, plan.scheme, plan.mode):
            return plan.model_copy(update={"engine": engine, "scheme": scheme, "mode": mode})
        return plan

    def packages(self) -> tuple[str, ...]:
        """Every distribution the engines and rules name: what a probe should read."""
        names: dict[str, None] = {}
        for spec in self.engine_data.values():
            names[canonical_name(spec["package"])] = None
        for rule in self.compiled:
            for fact in rule.condition.facts():
                if fact.startswith("packages."):
                    names[fact.removeprefix("packages.")] = None
        return tuple(names)


def _yaml_loader() -> type:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster


def _read_yaml(text: str, name: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML keeping the line of every node, so errors can name ``file:line``."""
    import yaml

    from quantdoctor.rules.untrusted import check_yaml_node

    lines: dict[tuple[Any, ...], int] = {}
    loader = _yaml_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, lines
        check_yaml_node(node, name, MatrixError)  # alias bombs, depth, duplicate keys

        def walk(n: Any, path: tuple[Any, ...]) -> None:
            lines[path] = n.start_mark.line + 1
            if isinstance(n, yaml.MappingNode):
                for k, v in n.value:
                    walk(v, (*path, k.value))
            elif isinstance(n, yaml.SequenceNode):
                for i, v in enumerate(n.value):
                    walk(v, (*path, i))

        walk(node, ())
        data = loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(err, "problem", None) or str(err)
        raise MatrixError(f"{where}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    return data, lines


def _line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _where(loc: tuple[Any, ...], data: Any) -> str:
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            if isinstance(node, list) and 0 <= key < len(node):
                node = node[key]
                if isinstance(node, dict) and "id" in node:
                    label = f"[{key}] ({node['id']})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts) or "(top)"


def parse_matrix_text(text: str, name: str) -> MatrixFile:
    """Validate one YAML document; raise ``MatrixError`` as ``file:line: field: problem``."""
    from pydantic import ValidationError

    from quantdoctor.rules.schema import MatrixFile

    data, lines = _read_yaml(text, name)
    if not isinstance(data, dict):
        raise MatrixError(f"{name}:1: (top): expected a mapping with 'rules' (and 'engines')")
    try:
        return MatrixFile.model_validate(data)
    except ValidationError as err:
        messages = []
        for e in err.errors():
            loc = tuple(e["loc"])
            line = _line(lines, loc)
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown field"
                if len(loc) >= 1:
                    model_fields = _fields_at(loc)
                    if model_fields:
                        from quantdoctor.rules.vocab import suggest

                        msg += f"; {suggest(str(loc[-1]), model_fields)}"
            elif e["type"] == "missing":
                msg = "required field is missing"
            elif e["type"] == "literal_error":
                import re

                from quantdoctor.rules.vocab import suggest

                valid = re.findall(r"'([^']*)'", str(e.get("ctx", {}).get("expected", "")))
                msg = f"{e.get('input')!r} is not valid; {suggest(str(e.get('input')), valid)}"
            messages.append(f"{name}:{line or 1}: {_where(loc, data)}: {msg}")
        raise MatrixError("\n".join(messages)) from None


def _fields_at(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The valid field names of the model where an unknown key was found."""
    from quantdoctor.rules.schema import (
        EngineSpec,
        Example,
        MatrixFile,
        Rule,
        SchemeSpec,
        Selector,
        Signature,
    )

    keys = [k for k in loc[:-1] if not isinstance(k, int)]
    if not keys:
        return tuple(MatrixFile.model_fields)
    table: dict[tuple[str, ...], type[BaseModel]] = {
        ("rules",): Rule,
        ("rules", "select"): Selector,
        ("rules", "signatures"): Signature,
        ("rules", "examples"): Example,
        ("engines",): EngineSpec,
    }
    if keys[0] == "engines" and "schemes" in keys:
        return tuple(SchemeSpec.model_fields)
    model: type[BaseModel] | None = table.get(tuple(keys)) or (
        table.get(tuple(keys[:1])) if keys[0] == "engines" else None
    )
    return tuple(model.model_fields) if model else ()


def _read_file(path: str | os.PathLike[str]) -> MatrixFile:
    return parse_matrix_text(_read_text(path), os.fspath(path))


def _plain(parsed: MatrixFile) -> dict[str, Any]:
    """A validated file as plain JSON data (what the cache holds)."""
    data: dict[str, Any] = parsed.model_dump(mode="json", by_alias=True)
    return data


#: A rule's fields in the schema's order (``Rule.model_fields``; a test holds them equal).
_RULE_FIELDS = (
    "id", "select", "when", "holds_for", "severity", "message", "fix", "source",
    "signatures", "signature_only", "replaces", "examples",
)  # fmt: skip
#: The fields a cache entry leaves out where they hold their schema default (most rules
#: select on little and have no signatures or examples): a 10,000-rule overlay's entry is
#: a third of the size and reads that much faster. ``_expanded`` puts them back on read.
_RULE_DEFAULTS: dict[str, Any] = {
    "select": {facet: [] for facet in FACETS},
    "holds_for": {},
    "fix": "",
    "signatures": [],
    "signature_only": False,
    "replaces": None,
    "examples": [],
}


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    """Validated data as the cache holds it: rules without their default fields."""
    rules = [
        {k: v for k, v in rule.items() if k not in _RULE_DEFAULTS or v != _RULE_DEFAULTS[k]}
        for rule in data["rules"]
    ]
    return {**data, "rules": rules}


def _expanded(rule: Any) -> Any:
    """A cached rule as the schema dumps it: the fields ``_compact`` left out back at their
    defaults (fresh ones), in the schema's order. A rule without a required field is
    returned as it is, for the cache's check to turn down."""
    if type(rule) is not dict or len(rule) >= len(_RULE_FIELDS):
        return rule
    get = rule.get
    try:
        out = {
            "id": rule["id"],
            "select": get("select") or {facet: [] for facet in FACETS},
            "when": get("when"),
            "holds_for": get("holds_for") or {},
            "severity": rule["severity"],
            "message": rule["message"],
            "fix": get("fix", ""),
            "source": rule["source"],
            "signatures": get("signatures") or [],
            "signature_only": get("signature_only", False),
            "replaces": get("replaces"),
            "examples": get("examples") or [],
        }
    except KeyError:
        return rule
    if not rule.keys() <= out.keys():
        out.update(rule)  # a key of no field: kept, as a full entry would keep it
    return out


def _checked(
    data: Any, *, cached: bool = False, share: bool = True
) -> tuple[dict[str, Any], list[CompiledRule]] | None:
    """A cache entry's data and its compiled rules, or ``None`` when it is not well formed.

    ``cached``: ``data`` was read back from an entry whose key holds this code's digest
    (``_load_cached``): the conditions' operands passed their checks when this very
    code wrote it, in a folder only this user can write (``quantdoctor._dirs``), and a
    digest of the payload guards it; the shapes are checked again, and the operands'
    types (their values at their first use: ``conditions.parse``)."""
    if not isinstance(data, dict):
        return None
    engines, rules, costs = data.get("engines"), data.get("rules"), data.get("costs")
    if not isinstance(engines, dict) or not isinstance(rules, list):
        return None
    rules = data["rules"] = [_expanded(rule) for rule in rules]
    if costs is not None and not costs_ok(costs):
        return None
    if not all(isinstance(name, str) and _engine_ok(spec) for name, spec in engines.items()):
        return None
    if not all(rule_ok(rule) for rule in rules):
        return None
    verified = data.get("verified", {})
    if not isinstance(verified, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("version"), str) and isinstance(v.get("how"), str)
        for v in verified.values()
    ):
        return None
    try:
        compiled = [
            compile_rule(i, rule, checked=not cached, share=share) for i, rule in enumerate(rules)
        ]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    return data, compiled


def _load_cached(
    kind: str, key: str, build: Any, *, share: bool = True
) -> tuple[dict[str, Any], list[CompiledRule]]:
    """Read back ``kind``/``key`` if it is well formed, else ``build()`` and store it
    (``share``: as ``core.compile_rule`` takes it)."""
    found = _checked(read_entry(kind, key), cached=True, share=share)
    if found is not None:
        return found
    data = build()
    checked = _checked(data, share=share)
    if checked is None:  # the schema and the cache check disagree: a bug, not user input
        raise MatrixError(f"{kind}: validated data failed the cache's own check")
    write_entry(kind, key, _compact(data), keep=KEEP.get(kind, 1))
    return checked


#: Entries kept per kind: the built-in matrix of a few installs (two apps' venvs with
#: this version share the cache folder: one entry each, not one evicting the other on
#: every run); a few overlays.
KEEP = {"matrix": 4, "overlay": 8, "engines": 4}


@lru_cache(maxsize=1)
def _builtin_loaded() -> tuple[dict[str, Any], list[CompiledRule]]:
    def build() -> dict[str, Any]:
        parsed = _read_file(BUILTIN_PATH)
        parsed.rules[:] = _with_not_installed(parsed.rules, parsed.engines)
        plain = _plain(parsed)
        schemes = _scheme_sets(plain["engines"])
        for rule in plain["rules"]:  # once per edit of the file, not per load_matrix()
            _check_selector(rule, schemes, BUILTIN_PATH)
        written = {r["id"] for r in plain["rules"]}
        plain["rules"] += [r for r in _verified_rules(plain) if r["id"] not in written]
        return plain

    # Parsing and validating the YAML costs more than the rest of a `check`: the validated
    # matrix is kept as plain data, keyed by a digest of quantdoctor's own files.
    return _load_cached("matrix", code_digest(), build, share=False)


def builtin() -> MatrixFile:
    """The built-in matrix file as pydantic models (validated again from the cached data)."""
    from quantdoctor.rules.schema import MatrixFile

    return MatrixFile.model_validate(_builtin_loaded()[0])


def engine_schemes(engine: str) -> dict[str, Any]:
    """The schemes of an engine in the built-in matrix (plain data; for validating plans)."""
    spec = _builtin_loaded()[0]["engines"].get(engine)
    return spec["schemes"] if spec else {}


def _read_text(path: str | os.PathLike[str]) -> str:
    # A regular file of bounded size, opened without blocking (a FIFO, /dev/zero, ...).
    from quantdoctor.rules.untrusted import OVERLAY_LIMIT, read_user_file

    return read_user_file(path, "", MatrixError, OVERLAY_LIMIT)


def _overlay(source: Source, index: int) -> tuple[dict[str, Any], list[CompiledRule], str]:
    if isinstance(source, Mapping):
        import yaml

        name = f"<extra {index}>"
        parsed = parse_matrix_text(yaml.safe_dump(dict(source)), name)
        data = _plain(parsed)
        checked = _checked(data)
        if checked is None:
            raise MatrixError(f"{name}: validated data failed the cache's own check")
        return (*checked, name)
    name = str(source)
    text = _read_text(source)
    key = digest(code_digest(), text)
    data, compiled = _load_cached("overlay", key, lambda: _plain(parse_matrix_text(text, name)))
    return data, compiled, name


def load_matrix(extra: Source | Sequence[Source] | None = None, *, defaults: bool = True) -> Matrix:
    """The built-in matrix plus overlays (``defaults`` adds user config and ``QUANTDOCTOR_MATRIX``).

    ``extra`` is a path, a parsed mapping, or a list of them, applied last.
    """
    # Loading allocates many small objects that all live on and form no cycles: the
    # collector's passes over them free nothing and cost a large overlay (10,000 rules)
    # half its load. Paused for the load only, as it was found.
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _load_matrix(extra, defaults)
    finally:
        if paused:
            gc.enable()


def _load_matrix(extra: Source | Sequence[Source] | None, defaults: bool) -> Matrix:
    base, base_compiled = _builtin_loaded()
    engines: dict[str, dict[str, Any]] = dict(base["engines"])
    schemes = _scheme_sets(engines)
    rules: dict[str, tuple[dict[str, Any], CompiledRule]] = {
        r["id"]: (r, c) for r, c in zip(base["rules"], base_compiled, strict=True)
    }
    sources: list[Source] = list(default_overlays()) if defaults else []
    if extra is not None:
        if isinstance(extra, (str, os.PathLike, Mapping)):
            sources.append(extra)
        else:
            sources.extend(extra)
    files = [BUILTIN_PATH]
    costs: list[dict[str, Any]] = []
    verified: dict[str, Any] = dict(base.get("verified", {}))
    written: set[str] = set()
    newer: list[str] = []
    for i, source in enumerate(sources):
        overlay, compiled, name = _overlay(source, i)
        if overlay.get("engines"):
            # an overlay adds engines (or replaces one whole): every rule is checked again
            engines.update(overlay["engines"])
            schemes = _scheme_sets(engines)
            for rule in _not_installed_plain(overlay["engines"]):
                if rule["id"] not in rules:
                    rules[rule["id"]] = (rule, compile_rule(0, rule))
            for rule, _ in rules.values():
                _check_selector(rule, schemes, name)
        for rule, rule_compiled in zip(overlay["rules"], compiled, strict=True):
            replaces = rule.get("replaces")
            if replaces is not None:
                if replaces not in rules:
                    raise MatrixError(
                        f"{name}: rules ({rule['id']}).replaces: {replaces!r} is not a rule id"
                    )
                del rules[replaces]
            _check_selector(rule, schemes, name)
            rules[rule["id"]] = (rule, rule_compiled)
            written.add(rule["id"])
        if overlay.get("verified"):
            verified.update(overlay["verified"])
            newer.extend(overlay["verified"])
        if overlay.get("costs"):
            check_cost_keys(overlay["costs"], engines, f"{name}: costs")
            costs.append({"file": name, "costs": overlay["costs"]})
        files.append(name)
    if newer:  # an overlay's verified: versions regenerate their rules (a written rule wins)
        made = _verified_rules({"engines": engines, "verified": verified}, newer)
        for rule in made:
            if rule["id"] not in written:
                rules[rule["id"]] = (rule, compile_rule(0, rule))
    ordered = list(rules.values())
    return Matrix(
        engine_data=engines,
        rule_data=[r for r, _ in ordered],
        compiled=[
            c if c.number == i else CompiledRule(i, *c[1:]) for i, (_, c) in enumerate(ordered)
        ],
        cost_overlays=tuple(costs),
        verified_data=verified,
        files=tuple(files),
    )


def _verified_rules(
    plain: Mapping[str, Any], only: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The ``verified.<name>`` info rules of a matrix's ``verified:`` section (validated)."""
    from quantdoctor.rules.schema import Rule
    from quantdoctor.rules.verified import Verified, verified_rules

    section = {
        d: Verified.model_validate(v)
        for d, v in plain.get("verified", {}).items()
        if only is None or d in only
    }
    packages = {name: spec["package"] for name, spec in plain["engines"].items()}
    return [
        Rule.model_validate(data).model_dump(mode="json")
        for data in verified_rules(section, packages)
    ]


_COST_TABLES = ("speed", "offload_speed", "error", "workspace_layers")
_COST_VALUES = ("reserve_gb", "activation_fraction", "activation_cap_gb", "large_model_params")


def costs_ok(costs: Any) -> bool:
    """Whether cached cost-model data has the shape ``CostsFile`` gives (plain data)."""
    if not isinstance(costs, dict):
        return False
    for key in _COST_VALUES:
        value = costs.get(key)
        if value is not None and not (
            isinstance(value, dict) and isinstance(value.get("value"), (int, float))
        ):
            return False
    for key in _COST_TABLES:
        tables = costs.get(key, [])
        if not isinstance(tables, list):
            return False
        for table in tables:
            if not isinstance(table, dict) or not isinstance(table.get("source"), str):
                return False
            values = table.get("values")
            if not isinstance(values, dict) or not all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                for v in values.values()
            ):
                return False
    classes = costs.get("gpu_classes", [])
    return isinstance(classes, list) and all(
        isinstance(c, dict) and isinstance(c.get("class"), str) for c in classes
    )


def check_cost_keys(costs: Mapping[str, Any], engines: Mapping[str, Any], where: str) -> None:
    """Every ``engine.scheme[.mode]`` a cost table names is one of the matrix's."""
    for key in ("speed", "error", "workspace_layers"):
        for i, table in enumerate(costs.get(key) or []):
            for name in table["values"]:
                engine, _, rest = name.partition(".")
                scheme, _, mode = rest.partition(".")
                spec = engines.get(engine)
                ok = spec is not None and scheme in spec["schemes"]
                if spec is not None and ok and mode:
                    ok = mode in spec["modes"]
                if not ok:
                    raise MatrixError(
                        f"{where}.{key}[{i}].values.{name}: not an engine.scheme[.mode] of "
                        "the matrix (quantdoctor matrix lists the engines' schemes)"
                    )


def _scheme_sets(engines: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    return {name: frozenset(spec["schemes"]) for name, spec in engines.items()}


def _check_selector(
    rule: Mapping[str, Any], schemes: Mapping[str, frozenset[str]], name: str
) -> None:
    """The engines and schemes a rule selects are ones the matrix in hand has."""
    select = rule.get("select") or {}
    for engine in select.get("engine") or ():
        if engine not in schemes:
            from quantdoctor.rules.vocab import suggest

            raise MatrixError(
                f"{name}: rules ({rule['id']}).select.engine: {engine!r} is not an engine; "
                f"{suggest(engine, schemes)}"
            )
    wanted = select.get("scheme") or ()
    if not wanted:
        return
    allowed = select.get("engine") or tuple(schemes)
    for scheme in wanted:
        if not any(scheme in schemes.get(e, ()) for e in allowed):
            from quantdoctor.rules.vocab import suggest

            valid = sorted({s for e in allowed for s in schemes.get(e, ())})
            raise MatrixError(
                f"{name}: rules ({rule['id']}).select.scheme: {scheme!r} is not a scheme of "
                f"{', '.join(allowed)}; {suggest(scheme, valid)}"
            )


def _not_installed_plain(engines: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The not-installed rules of an overlay's engines, as plain data."""
    from quantdoctor.rules.schema import EngineSpec

    specs = {name: EngineSpec.model_validate(spec) for name, spec in engines.items()}
    return [r.model_dump(mode="json") for r in _with_not_installed([], specs)]


def not_installed_rule(engine: str, spec: EngineSpec) -> Rule:
    """``<engine>.not-installed``, made from the engine's section: its package absent blocks."""
    import re

    from quantdoctor.rules.schema import Rule, Selector, Signature

    package = canonical_name(spec.package)
    top, _, rest = spec.import_name().partition(".")
    module = re.escape(top) + (f"(\\.{re.escape(rest)})?" if rest else "")
    about = f" ({spec.about})" if spec.about else ""
    return Rule(
        id=f"{engine}.not-installed",
        select=Selector(engine=(engine,)),
        when={"fact": f"packages.{package}", "absent": True},
        severity="block",
        message=f"{spec.package}{about} is not installed.",
        fix=spec.install,
        signatures=(
            Signature(
                pattern=f"No module named '{module}'",
                source="CPython's ModuleNotFoundError when the package is absent",
            ),
            *spec.missing,
        ),
        source=[f"https://pypi.org/project/{spec.package}/", *spec.sources],
    )


def _with_not_installed(rules: list[Rule], engines: Mapping[str, EngineSpec]) -> list[Rule]:
    """The rules with each engine's not-installed rule added (after ``torch.not-installed``)
    where the matrix does not write one itself."""
    ids = {r.id for r in rules}
    made = [
        not_installed_rule(engine, spec)
        for engine, spec in engines.items()
        if f"{engine}.not-installed" not in ids
    ]
    at = next((i + 1 for i, r in enumerate(rules) if r.id == "torch.not-installed"), 0)
    return [*rules[:at], *made, *rules[at:]]
