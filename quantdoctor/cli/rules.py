"""``quantdoctor rules``: every rule with its source."""

from __future__ import annotations

from quantdoctor.cli.common import (
    check_choice,
    clean,
    dump_json,
    load_matrix_args,
    painter,
    plain_source,
    plain_template,
    write_lines,
)

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    import argparse
    from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", help="only rules that can select this engine")
    p.add_argument("--matrix", action="append", metavar="FILE", default=[], help="an overlay")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def rule_json(rule: Any) -> dict[str, Any]:
    """A rule as ``rules --json`` gives it: its fields but those left empty (``None``),
    ``source`` always a list, ``select`` only the facets it names. ``rule`` is the
    matrix's plain data (``Matrix.rule_data``) or a ``Rule`` model."""
    if not isinstance(rule, dict):
        rule = rule.model_dump(mode="json")
    data: dict[str, Any] = _without_none(rule)
    source = data["source"]
    data["source"] = [source] if isinstance(source, str) else list(source)
    data["select"] = {k: list(v) for k, v in (data.get("select") or {}).items() if v}
    return data


def _without_none(value: Any) -> Any:
    """``value`` with its ``None`` fields left out, as pydantic's ``exclude_none`` does:
    in the rule and in the models its lists hold (signatures, examples), not in the
    free-form mappings inside them (an example's environment keeps its ``null``)."""
    if isinstance(value, dict):
        return {
            k: [_fields(x) for x in v] if isinstance(v, list) else v
            for k, v in value.items()
            if v is not None
        }
    return value


def _fields(item: Any) -> Any:
    return {k: v for k, v in item.items() if v is not None} if isinstance(item, dict) else item


#: How a rule's severity is shown.
SEVERITY_STYLES = {"block": "red", "warn": "yellow", "info": "cyan"}


def run(args: argparse.Namespace) -> int:
    matrix = load_matrix_args(args)
    engine = check_choice("--engine", args.engine, matrix.engine_names)
    if engine:  # the rules that can select the engine's plans, in matrix order
        wanted = {c.number for c in matrix.compiled_for(engine)}
        rules = [r for i, r in enumerate(matrix.rule_data) if i in wanted]
    else:
        rules = matrix.rule_data
    if args.json:
        dump_json([rule_json(r) for r in rules])
        return 0
    paint = painter()
    lines: list[str] = []
    for r in rules:
        severity = paint(r["severity"], SEVERITY_STYLES[r["severity"]])
        lines.append(f"{paint(clean(r['id']), 'bold')} {severity}")
        lines.append(f"  {clean(plain_template(r['message']))}")
        if r.get("fix"):
            lines.append(f"  fix: {clean(plain_template(r['fix']))}")
        sources = [r["source"]] if isinstance(r["source"], str) else r["source"]
        for s in sources:
            lines.append("  " + paint(f"source: {clean(plain_source(s))}", "dim"))
    lines.append(f"{len(rules)} rules from {clean(', '.join(matrix.files))}")
    write_lines(lines)
    return 0
