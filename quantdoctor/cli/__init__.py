"""The ``quantdoctor`` command: a thin dispatcher.

Each subcommand lives beside the part of the architecture it belongs to and is imported
only when it runs, so ``quantdoctor env --json`` never pays for pydantic or rich unless it
needs them. A command module offers ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from quantdoctor._outcome import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_OK
from quantdoctor.errors import InvalidInputError

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from typing import Any

#: subcommand -> (module, one-line help). ``None`` is the bare doctor report.
COMMANDS: dict[str, tuple[str, str]] = {
    "env": ("quantdoctor.cli.env", "show the probed environment"),
    "check": ("quantdoctor.cli.check", "evaluate one plan"),
    "matrix": ("quantdoctor.cli.matrix", "the grid of engine x scheme x offload"),
    "rules": ("quantdoctor.cli.rules", "every rule with its source"),
    "explain": ("quantdoctor.cli.explain", "explain an engine error or traceback"),
    "detect": ("quantdoctor.cli.detect", "what a model file is, from its header"),
    "recommend": ("quantdoctor.cli.recommend", "the best plans for this machine and model"),
    "completion": ("quantdoctor.cli.completion", "print a shell completion script"),
}
REPORT_MODULE = "quantdoctor.cli.report"

EXIT_CODES = (
    "exit codes: 0 nothing marked ✗ or ?, 1 something marked ✗ (blocked), "
    "3 something marked ? (a fact is unknown) and nothing ✗, 2 bad input"
)


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


def _load(module: str) -> object:
    __import__(module)  # importlib itself costs a process ~1 ms (it imports warnings)
    return sys.modules[module]


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


def _command_first(argv: list[str]) -> list[str]:
    """``quantdoctor --json check ...`` reads as ``quantdoctor check --json ...``."""
    for i, arg in enumerate(argv):
        if arg in COMMANDS:
            return [arg, *argv[:i], *argv[i + 1 :]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every string it prints passes through ``printable`` on its way
    to the terminal (``SafeStream``), and a failure to print is one line and exit 1."""
    from quantdoctor._printable import SafeStream

    if sys.stdout is None or sys.stderr is None:
        return _closed_stream()
    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(real[0]), SafeStream(real[1])
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _silence(real[0])
        return EXIT_OK
    except OSError as err:
        if err.filename is not None or err.errno not in _WRITE_ERRORS:
            raise
        _silence(real[0])
        sys.stderr.write(f"quantdoctor: error: cannot write the output: {err.strerror or err}\n")
        return EXIT_BLOCKED
    finally:
        sys.stdout, sys.stderr = real


#: errno values of a write to stdout that cannot succeed: a full disk or /dev/full, a
#: closed descriptor, an I/O error.
_WRITE_ERRORS = (28, 9, 5, 122)


def _closed_stream() -> int:
    # Run with stdout (or stderr) closed: Python sets it to None. Say so where we can.
    if sys.stderr is not None:
        sys.stderr.write("quantdoctor: error: stdout is closed; nothing can be printed\n")
    return EXIT_BLOCKED


def _silence(stream: object) -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())  # type: ignore[attr-defined]
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass


def _main(argv: Sequence[str] | None) -> int:
    args_list = _command_first(list(sys.argv[1:] if argv is None else argv))
    if args_list and not args_list[0].startswith("-") and args_list[0] not in COMMANDS:
        from quantdoctor.rules.vocab import suggest

        word = args_list[0]
        sys.stderr.write(
            f"quantdoctor: error: {word[:100]!r} is not a command; {suggest(word, COMMANDS)}\n"
        )
        return EXIT_BAD_INPUT
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    module = COMMANDS[args.command][0] if args.command else REPORT_MODULE
    try:
        code: int = _load(module).run(args)  # type: ignore[attr-defined]
    except InvalidInputError as err:
        sys.stderr.write(f"quantdoctor: error: {err}\n")
        return EXIT_BAD_INPUT
    return code


if __name__ == "__main__":
    raise SystemExit(main())
