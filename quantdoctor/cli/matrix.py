"""``quantdoctor matrix``: the grid of engine x scheme x offload (in each engine's default mode,
or the ``--mode`` asked for), one column per environment."""

from __future__ import annotations

import sys
from pathlib import Path

from quantdoctor._dirs import prune_entries
from quantdoctor.cli.common import (
    KEEP_ENVS,
    MARKS,
    STYLES,
    add_env_args,
    check_choice,
    clean,
    load_env_data,
    load_matrix_args,
    painter,
    write_lines,
)

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    from quantdoctor.rules.vocab import MODES

    p.add_argument("--engine", action="append", default=[], help="only this engine (repeatable)")
    p.add_argument(
        "--mode",
        action="append",
        default=[],
        help=" | ".join(MODES) + " (repeatable; default: each engine's default mode)",
    )
    add_env_args(p, many=True)


def run(args: argparse.Namespace) -> int:
    from quantdoctor.rules.core import Core, check_device, grid, grid_index
    from quantdoctor.rules.facts import facts_from_json
    from quantdoctor.rules.vocab import MODES

    matrix = load_matrix_args(args)
    engines = [str(check_choice("--engine", e, matrix.engine_names)) for e in args.engine]
    modes = list(dict.fromkeys(str(check_choice("--mode", m, MODES)) for m in args.mode))
    names = column_names(args.env) or ["here"]
    envs = [load_env_data(f, prune=False) for f in args.env]
    if envs:
        prune_entries("env", KEEP_ENVS)
    else:
        envs = [load_env_data(None, args.python, matrix.packages())]
    plans = grid(matrix, engines or None, modes or None)
    if modes:
        _left_out(matrix, list(dict.fromkeys(engines)) or matrix.engine_names, modes, plans)
    index = grid_index(matrix, plans)
    columns = []
    # a column is a function of the rules that can make a verdict there (Core.active):
    # machines that share them share it, and each is worked out once
    seen: dict[tuple[tuple[int, ...], ...], list[tuple[str, list[str]]]] = {}
    for env in envs:
        check_device(args.device, env.get("gpus"))
        core = Core(facts_from_json(env, device=args.device), matrix)
        key = tuple(tuple(r.number for r in group) for group in core.active())
        column = seen.get(key)
        if column is None:
            column = seen[key] = core.decide_grid(plans, index)
        columns.append(column)
    if args.json:
        # through the command's SafeStream, as every JSON output (dump_json)
        sys.stdout.write(grid_json(names, [p.to_json() for p in plans], columns) + "\n")
        return 0
    rows: list[dict[str, Any]] = []
    for i, plan in enumerate(plans):
        cells = [col[i] for col in columns]
        rows.append(
            {
                "plan": plan.to_json(),
                "status": {n: c[0] for n, c in zip(names, cells, strict=True)},
                "rules": {n: c[1] for n, c in zip(names, cells, strict=True)},
            }
        )
    render(names, rows)
    return 0


def _left_out(matrix: Any, engines: Sequence[str], modes: list[str], plans: list[Any]) -> None:
    """One line on stderr per engine that has none of the modes asked for, with its own;
    ``InvalidInputError`` (exit 2) when that leaves no plan at all."""
    own_modes = {e: matrix.modes(e) for e in engines}
    left = {e: own for e, own in own_modes.items() if not set(modes) & set(own)}
    asked = " or ".join(modes)
    if not plans:
        from quantdoctor.errors import InvalidInputError

        has = "; ".join(f"{e} has {', '.join(own)}" for e, own in left.items())
        raise InvalidInputError(f"--mode {asked}: none of the engines asked for has it ({has})")
    for engine, own in left.items():
        its = ", ".join(own)
        sys.stderr.write(
            f"quantdoctor: {engine} left out: it has no mode {asked} (its modes: {its})\n"
        )


def grid_json(
    names: list[str],
    plans: list[dict[str, str]],
    columns: list[list[tuple[str, list[str]]]],
) -> str:
    """The grid as ``json.dumps({"envs": names, "rows": [{"plan", "status", "rules"}]},
    indent=2, ensure_ascii=False)`` writes it, byte for byte, without the generic
    encoder: with an indent it runs in pure Python, seconds for 1,000 machines. Machines
    that share a column (the same list) share its cells' text."""
    from json.encoder import encode_basestring as s

    keys = [s(n) + ": " for n in names]
    cells: dict[int, tuple[list[str], list[str]]] = {}
    lists: dict[tuple[str, ...], str] = {}
    for column in columns:
        if id(column) not in cells:
            for _, ids in column:
                if tuple(ids) not in lists:
                    lists[tuple(ids)] = _block([s(i) for i in ids], 8, "[]")
            statuses = [s(status) for status, _ in column]
            cells[id(column)] = (statuses, [lists[tuple(ids)] for _, ids in column])
    by_env = [cells[id(column)] for column in columns]
    rows = []
    for i, plan in enumerate(plans):
        fields = {
            "plan": [f"{s(k)}: {s(v)}" for k, v in plan.items()],
            "status": [k + c[0][i] for k, c in zip(keys, by_env, strict=True)],
            "rules": [k + c[1][i] for k, c in zip(keys, by_env, strict=True)],
        }
        rows.append(_block([f'"{k}": {_block(v, 6, "{}")}' for k, v in fields.items()], 4, "{}"))
    top = {"envs": _block([s(n) for n in names], 2, "[]"), "rows": _block(rows, 2, "[]")}
    return _block([f'"{k}": {v}' for k, v in top.items()], 0, "{}")


def _block(items: list[str], indent: int, brackets: str) -> str:
    """Items already written, in ``brackets`` as ``json.dumps(indent=2)`` lays them out at
    this indent (``[]`` or ``{}`` when empty)."""
    if not items:
        return brackets
    inner = "\n" + " " * (indent + 2)
    return f"{brackets[0]}{inner}{(',' + inner).join(items)}\n{' ' * indent}{brackets[1]}"


def column_names(paths: list[str]) -> list[str]:
    """One distinct column per env file: its stem, or its path where stems repeat
    (``a/env.json`` and ``b/env.json`` are two machines), numbered if even paths do."""
    from collections import Counter

    stems = [Path(f).stem for f in paths]
    repeated = Counter(stems)
    names = [s if repeated[s] == 1 else f for s, f in zip(stems, paths, strict=True)]
    repeated = Counter(names)
    return [n if repeated[n] == 1 else f"{n} #{i + 1}" for i, n in enumerate(names)]


def render(names: list[str], rows: list[dict[str, Any]]) -> None:
    """The grid as aligned columns (colour on a terminal), the rule ids last."""
    paint = painter()
    head = ["engine", "scheme", "mode", "offload", *(clean(n) for n in names), "why (rule ids)"]
    table = [head]
    styles: list[list[str | None]] = [[None] * len(head)]
    for row in rows:
        plan = row["plan"]
        statuses = [row["status"][n] for n in names]
        why = sorted({r for n in names if row["status"][n] != "ok" for r in row["rules"][n]})
        table.append(
            [plan["engine"], plan["scheme"], plan["mode"], plan["offload"]]
            + [f"{MARKS[s]} {s}" for s in statuses]
            + [", ".join(why)]
        )
        styles.append([None, None, None, None, *(STYLES[s] for s in statuses), None])
    widths = [max(len(r[c]) for r in table) for c in range(len(head) - 1)]
    lines = []
    for cells, style in zip(table, styles, strict=True):
        parts = []
        for c, text in enumerate(cells[:-1]):
            pad = " " * (widths[c] - len(text))
            parts.append((paint(text, style[c]) if style[c] else text) + pad)
        parts.append(cells[-1])
        lines.append(" ".join(parts).rstrip())
    write_lines(lines)
