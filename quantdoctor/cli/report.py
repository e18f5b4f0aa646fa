"""``quantdoctor`` alone: the doctor report (what works here, what does not, the fix).

Exit 0 when every installed engine has a plan that works here, 1 when an installed
engine has none that can, 3 when facts are unknown, 2 on bad input.

The report is a pure function of the probed facts, the rules (the matrix, its overlays,
the costs) and this package's code. Building it costs pydantic, the matrix and the
whole grid of verdicts, ten times what probing costs, so the report of a probe is kept
in quantdoctor's cache folder (``quantdoctor._dirs``: plain JSON, checked on read) under
a key of all those inputs (facts as probed, flags, and the size and mtime of every file
of the package and of every overlay) and read back while none of them changes: as JSON
(``report``) and as the lines and exit code text output prints (``printed``, a tenth of
its size). Each entry repeats the facts and flags it was built from, and is used only
when they equal this run's. ``--env FILE`` reports are not cached, nor anything when the cache dir
is not writable.
"""

from __future__ import annotations

import sys

from quantdoctor._dirs import digest, read_entry, write_entry
from quantdoctor.cli.common import (
    add_cache_arg,
    add_device_arg,
    add_matrix_arg,
    add_python_arg,
    rules_inputs,
)

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    import argparse
    from typing import Any

#: Bump when the report's JSON shape changes in a way the key would not see.
CACHE_FORMAT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="every fact and rule id")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    parser.add_argument(
        "--env", metavar="FILE", help="report for another machine's Environment JSON"
    )
    add_device_arg(parser)
    add_python_arg(parser)
    parser.add_argument(
        "--deep", action="store_true", help="also test that Triton compiles and runs a kernel"
    )
    add_matrix_arg(parser)
    add_cache_arg(parser, "report")


def run(args: argparse.Namespace) -> int:
    from quantdoctor.cli.common import check_device, collect
    from quantdoctor.errors import InvalidInputError

    if args.device < 0:
        raise InvalidInputError(f"--device {args.device}: must be 0 or more")
    report: dict[str, Any] | None = None
    if args.env:
        from quantdoctor.rules.envfile import load_env_file

        env = load_env_file(args.env).to_json_dict()
        check_device(env, args.device)
        report = build(env, args, source=args.env)
    else:
        from quantdoctor.rules.named import named_packages

        # the packages --matrix overlays name, read from their text: no matrix loaded yet
        named = named_packages(getattr(args, "matrix", None) or ())
        env = collect(args.deep, args.device, getattr(args, "python", None), named)
        check_device(env, args.device)
        key = None if args.no_cache else cache_key(env, args)
        if key and not args.json:
            printed = read_printed(key, env, args)
            if printed is not None:  # a kept report's lines and exit code: all text needs
                from quantdoctor._printable import print_lines

                print_lines(printed[1])
                return printed[0]
        report = read_cached(key, env, args) if key else None
        if report is None:
            report = build(env, args, source="probed")
            if getattr(args, "python", None):
                from quantdoctor.doctor._probe_python import resolve_python
                from quantdoctor.doctor.report import for_interpreter

                report["interpreter"] = args.python
                for_interpreter(report, resolve_python(args.python))
            if key:
                write_cached(key, report, env, args)
    if args.json:
        from quantdoctor._json import dumps

        sys.stdout.write(dumps(report, indent=2) + "\n")
    else:
        from quantdoctor._printable import print_lines
        from quantdoctor.doctor.report import render_report

        print_lines(render_report(report, verbose=args.verbose))
    code: int = report["summary"]["exit_code"]
    return code


def build(env: dict[str, Any], args: argparse.Namespace, *, source: str) -> dict[str, Any]:
    """Every verdict of the grid on ``env``, grouped into the report's data."""
    from quantdoctor.advise.section import recommendation_section
    from quantdoctor.doctor.infer import infer
    from quantdoctor.doctor.report import app_from_path, build_report
    from quantdoctor.rules.core import Core
    from quantdoctor.rules.facts import facts_from_json
    from quantdoctor.rules.matrix import load_matrix
    from quantdoctor.rules.records import grid_records

    matrix = load_matrix(extra=args.matrix) if args.matrix else load_matrix()
    env, assumed = infer(env)
    # the grid on plain data (the env is the probe's, or a file already validated):
    # pydantic, ten times the rest of the report's cost, is never imported
    facts = facts_from_json(env, device=args.device)
    core = Core(dict(facts), matrix)  # the grid's and the recommendation's
    verdicts = grid_records(facts, matrix, core)
    section = recommendation_section(env, verdicts, matrix, args.device, facts=facts, core=core)
    return build_report(
        env,
        verdicts,
        matrix,
        device=args.device,
        verbose=args.verbose,
        source=source,
        extra=[section] if section else [],
        assumed=assumed,
        app=app_from_path(getattr(args, "python", None)),
    )


# --------------------------------------------------------------------------- cache


def cache_key(env: dict[str, Any], args: argparse.Namespace) -> str:
    """A digest of every input the report depends on: quantdoctor's own files, the
    overlays (path, size, mtime), the probed facts and the flags."""
    return digest(
        CACHE_FORMAT,
        *rules_inputs(args.matrix),
        env,
        args.device,
        getattr(args, "python", None),
        bool(args.verbose),
    )


def _inputs(env: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    return {
        "env": env,
        "device": args.device,
        "python": getattr(args, "python", None),
        "verbose": bool(args.verbose),
    }


def read_cached(key: str, env: dict[str, Any], args: argparse.Namespace) -> dict[str, Any] | None:
    """The report stored for ``key``, if it was made from these very facts and flags."""
    entry = read_entry("report", key)
    if not isinstance(entry, dict) or entry.get("inputs") != _inputs(env, args):
        return None  # none, torn, foreign, or forged for another machine: rebuild
    report = entry.get("report")
    if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
        return None
    code = report["summary"].get("exit_code")
    if code not in (0, 1, 3) or isinstance(code, bool):
        return None
    return report


def read_printed(
    key: str, env: dict[str, Any], args: argparse.Namespace
) -> tuple[int, list[list[tuple[str, str]]]] | None:
    """The exit code and rendered lines kept for ``key`` (``write_cached``'s ``printed``
    entry: a tenth of the report's JSON, which text output never reads), if made from
    these very facts and flags."""
    entry = read_entry("printed", key)
    if not isinstance(entry, dict) or entry.get("inputs") != _inputs(env, args):
        return None
    code, lines = entry.get("exit_code"), _lines(entry.get("lines"))
    if code not in (0, 1, 3) or isinstance(code, bool) or lines is None:
        return None
    return code, lines


def _lines(data: Any) -> list[list[tuple[str, str]]] | None:
    """Lines of styled segments read back (lists of [text, style] pairs), or None."""
    if not isinstance(data, list):
        return None
    lines: list[list[tuple[str, str]]] = []
    for line in data:
        if not isinstance(line, list):
            return None
        pairs = [tuple(seg) for seg in line if isinstance(seg, list) and len(seg) == 2]
        if len(pairs) != len(line) or not all(type(t) is str and type(s) is str for t, s in pairs):
            return None
        lines.append(pairs)
    return lines


#: Reports kept: one per recent set of inputs (a few GPUs, with and without -v).
KEEP = 8


def write_cached(
    key: str, report: dict[str, Any], env: dict[str, Any], args: argparse.Namespace
) -> None:
    from quantdoctor.doctor.report import render_report

    lines = render_report(report, verbose=bool(args.verbose))
    inputs = _inputs(env, args)
    write_entry("report", key, {"inputs": inputs, "report": report}, keep=KEEP)
    code = report["summary"]["exit_code"]
    write_entry("printed", key, {"inputs": inputs, "exit_code": code, "lines": lines}, keep=KEEP)
