"""``quantdoctor rules``: every rule with its source."""

from __future__ import annotations

import argparse
from typing import Any

from quantdoctor.cli.common import (
    check_choice,
    console,
    dump_json,
    load_matrix_args,
    plain_source,
    plain_template,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", help="only rules that can select this engine")
    p.add_argument("--matrix", action="append", metavar="FILE", default=[], help="an overlay")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def rule_json(rule: Any) -> dict[str, Any]:
    data: dict[str, Any] = rule.model_dump(mode="json", exclude_none=True)
    data["source"] = rule.sources
    data["select"] = {k: list(v) for k, v in data["select"].items() if v}
    return data


def run(args: argparse.Namespace) -> int:
    matrix = load_matrix_args(args)
    check_choice("--engine", args.engine, matrix.engine_names)
    rules = matrix.rules_for(args.engine) if args.engine else matrix.rules
    if args.json:
        dump_json([rule_json(r) for r in rules])
        return 0
    from rich.markup import escape

    out = console()
    for r in rules:
        style = {"block": "red", "warn": "yellow", "info": "cyan"}[r.severity]
        out.print(f"[bold]{r.id}[/] [{style}]{r.severity}[/]")
        out.print(f"  {escape(plain_template(r.message))}")
        if r.fix:
            out.print(f"  fix: {escape(plain_template(r.fix))}")
        for s in r.sources:
            out.print(f"  [dim]source: {escape(plain_source(s))}[/]")
    out.print(f"{len(rules)} rules from {escape(', '.join(matrix.files))}")
    return 0
