"""``quantdoctor env [--json] [--deep] [--device N]``: the probed Environment.

``--json`` prints DESIGN.md's Environment JSON straight from ``probe_dict`` (no pydantic,
no rich: this path is the one with a speed budget). The human form is a short table.
"""

from __future__ import annotations

import sys

from quantdoctor.cli.common import add_device_arg, add_python_arg, check_device, collect
from quantdoctor.errors import InvalidInputError

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the Environment JSON")
    parser.add_argument(
        "--deep",
        action="store_true",
        help="also compile and run a Triton kernel (a subprocess; takes seconds)",
    )
    add_device_arg(parser)
    add_python_arg(parser)


def run(args: argparse.Namespace) -> int:
    if args.device < 0:
        raise InvalidInputError(f"--device {args.device}: must be 0 or more")
    env = collect(args.deep, args.device, args.python)
    check_device(env, args.device)
    if args.json:
        from quantdoctor._json import dumps

        sys.stdout.write(dumps(env, indent=2) + "\n")
        return 0
    from quantdoctor._printable import print_lines
    from quantdoctor.doctor.report import render_env

    print_lines(render_env(env, device=args.device))
    return 0
