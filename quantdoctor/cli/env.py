"""``quantdoctor env [--json] [--deep] [--device N]``: the probed Environment.

``--json`` prints DESIGN.md's Environment JSON straight from ``probe_dict`` (no pydantic,
no rich: this path is the one with a speed budget). The human form is a short table.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from quantdoctor.cli.common import add_device_arg, add_python_arg, probe_context
from quantdoctor.errors import InvalidInputError

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    import argparse
    from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the Environment JSON")
    parser.add_argument(
        "--deep",
        action="store_true",
        help="also compile and run a Triton kernel (a subprocess; takes seconds)",
    )
    add_device_arg(parser)
    add_python_arg(parser)


def check_device(env: dict[str, Any], device: int) -> None:
    """Bad input if ``--device N`` names a GPU this machine does not have."""
    gpus = env.get("gpus")
    if device and isinstance(gpus, list) and device >= len(gpus):
        have = f"GPUs 0..{len(gpus) - 1}" if gpus else "no GPU"
        raise InvalidInputError(f"--device {device}: this machine has {have}")


def collect(
    deep: bool, device: int, python: str | None = None, packages: Sequence[str] = ()
) -> dict[str, Any]:
    """Probe (``python``: another interpreter's packages; ``packages``: more to read), with
    a spinner on a terminal while the deep (slow) part runs."""
    from quantdoctor.doctor.probe import probe_dict

    ctx = probe_context(python)
    if deep and sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status("compiling and running a Triton test kernel ..."):
            return probe_dict(ctx, deep=True, device=device, packages=packages)
    return probe_dict(ctx, deep=deep, device=device, packages=packages)


def run(args: argparse.Namespace) -> int:
    if args.device < 0:
        raise InvalidInputError(f"--device {args.device}: must be 0 or more")
    env = collect(args.deep, args.device, args.python)
    check_device(env, args.device)
    if args.json:
        from quantdoctor._json import dumps

        sys.stdout.write(dumps(env, indent=2) + "\n")
        return 0
    from quantdoctor.doctor.report import print_lines, render_env

    print_lines(render_env(env, device=args.device))
    return 0
