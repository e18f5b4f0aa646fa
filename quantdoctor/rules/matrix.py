"""Loading matrix.yaml and its overlays, with errors that name ``file:line: field``.

Overlays, applied in this order (later wins): the user config dir's ``matrix.yaml``
(platformdirs; ``QUANTDOCTOR_CONFIG_DIR`` overrides the dir), the files named in
``QUANTDOCTOR_MATRIX`` (``os.pathsep``-separated), ``--matrix FILE`` on the command line,
and ``load_matrix(extra=...)``. A rule whose id exists replaces it (as does one that
names it in ``replaces``); a new id adds a rule.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from quantdoctor._dirs import cache_dir, write_cache
from quantdoctor.errors import InvalidInputError, MatrixError
from quantdoctor.rules.models import Plan
from quantdoctor.rules.named import BUILTIN, default_overlays
from quantdoctor.rules.schema import EngineSpec, MatrixFile, Rule, Selector, Signature
from quantdoctor.rules.untrusted import OVERLAY_LIMIT, check_yaml_node, read_user_file
from quantdoctor.rules.verified import Verified, verified_rules
from quantdoctor.rules.vocab import suggest

Source = str | os.PathLike[str] | Mapping[str, Any]


@dataclass
class Matrix:
    """The built-in matrix with its overlays applied: the engines and the rules in hand."""

    engines: dict[str, EngineSpec]
    rules: list[Rule]
    costs: dict[str, Any] = field(default_factory=dict)
    verified: dict[str, Verified] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    _by_engine: dict[str, list[Rule]] = field(default_factory=dict, repr=False)

    def rules_for(self, engine: str) -> list[Rule]:
        """Rules that may select a plan of this engine, in matrix order."""
        if engine not in self._by_engine:
            self._by_engine[engine] = [
                r for r in self.rules if not r.select.engine or engine in r.select.engine
            ]
        return self._by_engine[engine]

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    @property
    def engine_names(self) -> tuple[str, ...]:
        """The engines in matrix order (the order the grid, the report and ranking use)."""
        return tuple(self.engines)

    def default_mode(self, engine: str) -> str:
        spec = self.engines.get(engine)
        return spec.default_mode if spec else "post"

    def check_plan(self, plan: Plan) -> Plan:
        """``plan`` checked against these engines, its mode filled in when it names none.

        Raises ``InvalidInputError`` naming the facet: an engine this matrix does not
        have, a scheme that is not the engine's, a mode the engine does not offer."""
        spec = self.engines.get(plan.engine)
        if spec is None or plan.scheme not in spec.schemes:
            from quantdoctor.rules.aliases import resolve

            engine = resolve("engine", plan.engine, self.engines)
            spec = self.engines.get(engine)
            if spec is not None:
                scheme = resolve("scheme", plan.scheme, spec.schemes, engine)
                plan = plan.model_copy(update={"engine": engine, "scheme": scheme})
        if spec is None:
            raise InvalidInputError(
                f"engine: {plan.engine!r} is not valid; {suggest(plan.engine, self.engines)}"
            )
        if plan.scheme not in spec.schemes:
            owner = [e for e, s in self.engines.items() if plan.scheme in s.schemes]
            extra = f" ({plan.scheme} is a {owner[0]} scheme)" if owner else ""
            raise InvalidInputError(
                f"scheme: {plan.scheme!r} is not a {plan.engine} scheme{extra}; "
                f"{suggest(plan.scheme, tuple(spec.schemes))}"
            )
        if not plan.mode:
            return plan.model_copy(update={"mode": spec.default_mode})
        return plan

    def packages(self) -> tuple[str, ...]:
        """Every distribution the engines and rules name: what a probe should read."""
        from packaging.utils import canonicalize_name

        names: dict[str, None] = {}
        for spec in self.engines.values():
            names[canonicalize_name(spec.package)] = None
        for rule in self.rules:
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
                from quantdoctor.rules.vocab import suggest

                valid = re.findall(r"'([^']*)'", str(e.get("ctx", {}).get("expected", "")))
                msg = f"{e.get('input')!r} is not valid; {suggest(str(e.get('input')), valid)}"
            messages.append(f"{name}:{line or 1}: {_where(loc, data)}: {msg}")
        raise MatrixError("\n".join(messages)) from None


def _fields_at(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The valid field names of the model where an unknown key was found."""
    from quantdoctor.rules.schema import EngineSpec, SchemeSpec, Selector, Signature

    keys = [k for k in loc[:-1] if not isinstance(k, int)]
    if not keys:
        return tuple(MatrixFile.model_fields)
    table: dict[tuple[str, ...], type[BaseModel]] = {
        ("rules",): Rule,
        ("rules", "select"): Selector,
        ("rules", "signatures"): Signature,
        ("engines",): EngineSpec,
    }
    if keys[0] == "engines" and "schemes" in keys:
        return tuple(SchemeSpec.model_fields)
    model: type[BaseModel] | None = table.get(tuple(keys)) or (
        table.get(tuple(keys[:1])) if keys[0] == "engines" else None
    )
    return tuple(model.model_fields) if model else ()


def _read_file(path: str | os.PathLike[str]) -> MatrixFile:
    # A regular file of bounded size, opened without blocking (a FIFO, /dev/zero, ...).
    text = read_user_file(path, "", MatrixError, OVERLAY_LIMIT)
    return parse_matrix_text(text, os.fspath(path))


@lru_cache(maxsize=4)
def _builtin(mtime_ns: int, size: int) -> MatrixFile:
    # Parsing and validating the YAML costs more than the rest of a `check`; a pickle of
    # the validated file, keyed by the file's mtime and size, is read back instead.
    cache = cache_dir() / f"matrix-{mtime_ns}-{size}.pickle"
    try:
        with cache.open("rb") as f:
            loaded = pickle.load(f)
        if isinstance(loaded, MatrixFile):
            return loaded
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        pass  # no cache yet, or one from another version: rebuild it below
    parsed = _read_file(BUILTIN)
    engines = dict(parsed.engines)
    parsed.rules[:] = _with_not_installed(parsed.rules, engines)
    for rule in parsed.rules:  # once per edit of the file, not per load_matrix()
        _check_selector(rule, engines, str(BUILTIN))
    write_cache(cache, pickle.dumps(parsed, pickle.HIGHEST_PROTOCOL), siblings="matrix-*.pickle")
    return parsed


def builtin() -> MatrixFile:
    stat = BUILTIN.stat()
    return _builtin(stat.st_mtime_ns, stat.st_size)


def _overlay(source: Source, index: int) -> tuple[MatrixFile, str]:
    if isinstance(source, Mapping):
        import yaml

        name = f"<extra {index}>"
        return parse_matrix_text(yaml.safe_dump(dict(source)), name), name
    return _read_file(source), str(source)


def load_matrix(extra: Source | Sequence[Source] | None = None, *, defaults: bool = True) -> Matrix:
    """The built-in matrix plus overlays (``defaults`` adds user config and ``QUANTDOCTOR_MATRIX``).

    ``extra`` is a path, a parsed mapping, or a list of them, applied last.
    """
    base = builtin()
    engines = dict(base.engines)
    rules: dict[str, Rule] = {r.id: r for r in base.rules}
    costs = dict(base.costs)
    verified = dict(base.verified)
    sources: list[Source] = list(default_overlays()) if defaults else []
    if extra is not None:
        if isinstance(extra, (str, os.PathLike, Mapping)):
            sources.append(extra)
        else:
            sources.extend(extra)
    files = [str(BUILTIN)]
    for i, source in enumerate(sources):
        overlay, name = _overlay(source, i)
        if overlay.engines:
            # an overlay adds engines (or replaces one whole): every rule is checked again
            engines.update(overlay.engines)
            added = _with_not_installed([], overlay.engines)
            rules.update((r.id, r) for r in added if r.id not in rules)
            for rule in rules.values():
                _check_selector(rule, engines, name)
        for rule in overlay.rules:
            if rule.replaces is not None:
                if rule.replaces not in rules:
                    raise MatrixError(
                        f"{name}: rules ({rule.id}).replaces: {rule.replaces!r} is not a rule id"
                    )
                del rules[rule.replaces]
            _check_selector(rule, engines, name)
            rules[rule.id] = rule
        costs.update(overlay.costs)
        verified.update(overlay.verified)
        files.append(name)
    packages = {name: spec.package for name, spec in engines.items()}
    for data in verified_rules(verified, packages):
        rules.setdefault(str(data["id"]), Rule.model_validate(data))  # a written rule wins
    return Matrix(
        engines=engines,
        rules=list(rules.values()),
        costs=costs,
        verified=verified,
        files=tuple(files),
    )


def _check_selector(rule: Rule, engines: Mapping[str, EngineSpec], name: str) -> None:
    """The engines and schemes a rule selects are ones the matrix in hand has."""
    for engine in rule.select.engine:
        if engine not in engines:
            raise MatrixError(
                f"{name}: rules ({rule.id}).select.engine: {engine!r} is not an engine; "
                f"{suggest(engine, engines)}"
            )
    allowed = rule.select.engine or tuple(engines)
    valid = sorted({s for e in allowed if e in engines for s in engines[e].schemes})
    for scheme in rule.select.scheme:
        if scheme not in valid:
            raise MatrixError(
                f"{name}: rules ({rule.id}).select.scheme: {scheme!r} is not a scheme of "
                f"{', '.join(allowed)}; {suggest(scheme, valid)}"
            )


def not_installed_rule(engine: str, spec: EngineSpec) -> Rule:
    """``<engine>.not-installed``, made from the engine's section: its package absent blocks."""
    from packaging.utils import canonicalize_name

    package = canonicalize_name(spec.package)
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
