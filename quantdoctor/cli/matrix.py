"""``quantdoctor matrix``: the grid of engine x scheme x offload, one column per environment."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from quantdoctor.cli.common import (
    MARKS,
    STYLES,
    add_env_args,
    check_choice,
    console,
    dump_json,
    load_env,
    load_matrix_args,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", action="append", default=[], help="only this engine (repeatable)")
    add_env_args(p, many=True)


def run(args: argparse.Namespace) -> int:
    from quantdoctor.rules.evaluate import evaluate_grid

    matrix = load_matrix_args(args)
    for e in args.engine:
        check_choice("--engine", e, matrix.engine_names)
    names = column_names(args.env) or ["here"]
    envs = [load_env(f) for f in args.env] or [load_env(None, args.python, matrix.packages())]
    engines = args.engine or None
    columns = [evaluate_grid(env, matrix, engines=engines, device=args.device) for env in envs]
    rows: list[dict[str, Any]] = []
    for i, verdict in enumerate(columns[0]):
        cells = [col[i] for col in columns]
        rows.append(
            {
                "plan": verdict.plan.model_dump(mode="json"),
                "status": {n: c.status for n, c in zip(names, cells, strict=True)},
                "rules": {
                    n: [f.rule for f in c.findings if f.severity != "info"]
                    for n, c in zip(names, cells, strict=True)
                },
            }
        )
    if args.json:
        dump_json({"envs": names, "rows": rows})
        return 0
    render(names, rows)
    return 0


def column_names(paths: list[str]) -> list[str]:
    """One distinct column per env file: its stem, or its path where stems repeat
    (``a/env.json`` and ``b/env.json`` are two machines), numbered if even paths do."""
    stems = [Path(f).stem for f in paths]
    names = [s if stems.count(s) == 1 else f for s, f in zip(stems, paths, strict=True)]
    return [n if names.count(n) == 1 else f"{n} #{i + 1}" for i, n in enumerate(names)]


def render(names: list[str], rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False)
    from rich.markup import escape

    for head in ("engine", "scheme", "offload", *names):
        table.add_column(escape(head), no_wrap=True)
    table.add_column("why (rule ids)", overflow="fold")
    for row in rows:
        plan = row["plan"]
        cells = [f"[{STYLES[s]}]{MARKS[s]} {s}[/]" for s in (row["status"][n] for n in names)]
        why = sorted({r for n in names if row["status"][n] != "ok" for r in row["rules"][n]})
        table.add_row(plan["engine"], plan["scheme"], plan["offload"], *cells, ", ".join(why))
    out = console()
    if not out.is_terminal:
        out.width = 10_000  # piped: one row a line, rule ids whole, for grep and cut
    out.print(table)
