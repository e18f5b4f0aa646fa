"""The command line read by argparse: help, ``--version``, errors, and every form that
``cli._args`` leaves to it. Each command's ``add_arguments`` declares its options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from quantdoctor.cli import COMMANDS, EXIT_CODES, REPORT_MODULE, _load
from quantdoctor.errors import EXIT_BAD_INPUT


class _Help(argparse.RawDescriptionHelpFormatter):
    """Help that states every option's default, where it has one worth saying."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        # argparse builds a formatter for every option it adds, and without a width each
        # one imports shutil (a few ms with its compression modules) for the terminal's
        super().__init__(prog, indent_increment, max_help_position, width or _width())

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, [], argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: {default})"


def _width() -> int:
    """``shutil.get_terminal_size().columns - 2``, as argparse computes it, without shutil."""
    import os

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


class _Parser(argparse.ArgumentParser):
    """argparse, but bad input is one line and exit 2, in the house format."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="quantdoctor",
        description="Will this quantization plan work on this machine, why not, and what will?",
        epilog=EXIT_CODES,
    )
    from quantdoctor import __version__

    parser.add_argument("--version", action="version", version=f"quantdoctor {__version__}")
    # the first word that names a command (an option's value never does in practice)
    wanted = next((a for a in argv if a in COMMANDS), None)
    helping = wanted is None and any(a in ("-h", "--help") for a in argv)
    if wanted is not None or helping:
        sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
        for name, (module, help_text) in COMMANDS.items():
            # only the command that runs is built (each parser costs ~1 ms); --help lists all
            if name == wanted or helping:
                p = sub.add_parser(name, help=help_text, description=help_text)
            if name == wanted:  # only the command that runs pays for its imports
                _load(module).add_arguments(p)  # type: ignore[attr-defined]
    else:
        parser.set_defaults(command=None)
    if wanted is None:
        _load(REPORT_MODULE).add_arguments(parser)  # type: ignore[attr-defined]
    return parser
