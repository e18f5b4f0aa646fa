"""``quantdoctor`` alone: the doctor report (what works here, what does not, the fix).

Exit 0 when every installed engine has a plan that works here, 1 when an installed
engine has none that can, 3 when facts are unknown, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="every fact and rule id")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    parser.add_argument(
        "--env", metavar="FILE", help="report for another machine's Environment JSON"
    )
    parser.add_argument(
        "--device", type=int, default=0, metavar="N", help="the GPU that will run the model"
    )
    parser.add_argument(
        "--deep", action="store_true", help="also test that Triton compiles and runs a kernel"
    )
    parser.add_argument(
        "--matrix", metavar="FILE", action="append", help="an overlay of rules (repeatable)"
    )


def run(args: argparse.Namespace) -> int:
    from quantdoctor.doctor.cmd_env import check_device, collect
    from quantdoctor.doctor.report import build_report, print_lines, render_report
    from quantdoctor.errors import InvalidInputError
    from quantdoctor.rules.evaluate import evaluate_grid
    from quantdoctor.rules.matrix import load_matrix

    if args.device < 0:
        raise InvalidInputError(f"--device {args.device}: must be 0 or more")
    matrix = load_matrix(extra=args.matrix) if args.matrix else load_matrix()
    env: dict[str, Any]
    if args.env:
        from quantdoctor.rules.envfile import load_env_file

        env = load_env_file(args.env).to_json_dict()
        source = args.env
    else:
        env = collect(args.deep, args.device)
        source = "probed"
    check_device(env, args.device)
    verdicts = evaluate_grid(env, matrix, device=args.device)
    report = build_report(
        env, verdicts, matrix, device=args.device, verbose=args.verbose, source=source
    )
    if args.json:
        import json

        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        print_lines(render_report(report, verbose=args.verbose))
    code: int = report["summary"]["exit_code"]
    return code
