"""The ``quantdoctor`` command: a thin dispatcher.

Each subcommand lives beside the part of the architecture it belongs to and is imported
only when it runs, so ``quantdoctor env --json`` never pays for pydantic or rich unless it
needs them. A command module offers ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import sys

from quantdoctor.errors import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_OK, InvalidInputError

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

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


def _load(module: str) -> object:
    __import__(module)  # importlib itself costs a process ~1 ms (it imports warnings)
    return sys.modules[module]


def _plain_args(argv: list[str]) -> Any:
    """``argv`` read by ``cli._args`` from the command's own ``add_arguments``, without
    argparse; ``None`` where argparse must read it."""
    from quantdoctor.cli import _args

    command = argv[0] if argv and argv[0] in COMMANDS else None
    recorder = _args.Recorder()
    module = COMMANDS[command][0] if command else REPORT_MODULE
    _load(module).add_arguments(recorder)  # type: ignore[attr-defined]
    values = _args.parse(recorder, argv[1:] if command else argv)
    return None if values is None else _args.Args(command=command, **values)


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
    args = _plain_args(args_list)
    if args is None:  # help, --version, a rarer form or a mistake: argparse's words
        from quantdoctor.cli._parser import build_parser

        args = build_parser(args_list).parse_args(args_list)
    module = COMMANDS[args.command][0] if args.command else REPORT_MODULE
    try:
        code: int = _load(module).run(args)  # type: ignore[attr-defined]
    except InvalidInputError as err:
        sys.stderr.write(f"quantdoctor: error: {err}\n")
        return EXIT_BAD_INPUT
    return code


def command() -> NoReturn:
    """The ``quantdoctor`` program (the console script, and ``python -m quantdoctor``):
    ``main()`` on ``sys.argv``, then the process ends (``end``). Code that runs quantdoctor
    inside a process of its own calls ``main``, which returns the exit code."""
    import gc

    # A command's objects live until it ends and form no cycles worth a collector's pass:
    # the passes cost an uncached report a tenth of its time and free nothing.
    gc.disable()
    try:
        code = main()
    except BaseException:
        gc.enable()  # the process goes on (an embedding program, a debugger): as it was
        raise
    end(code)


def end(code: int) -> NoReturn:
    """End the process with ``code``, as ``sys.exit`` would. Once the output is flushed and
    nothing is left to run at exit (no ``atexit`` callback, no other thread, no ``-i``),
    the interpreter's teardown, which frees every module and object one by one and costs
    a short command a tenth of its time, is skipped (``os._exit``)."""
    import gc
    import os

    try:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
        idle = _idle_at_exit()
    except (OSError, ValueError):
        idle = False  # the interpreter's own exit says or silences it
    if not idle:
        gc.enable()  # what runs at exit (or after, in a program that catches it) collects
        raise SystemExit(code)
    os._exit(code)


def _idle_at_exit() -> bool:
    """Nothing would run at the interpreter's exit but its teardown."""
    import atexit
    import os

    callbacks = getattr(atexit, "_ncallbacks", None)  # CPython's
    if callbacks is None or callbacks() or sys.flags.inspect or os.environ.get("PYTHONINSPECT"):
        return False
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


if __name__ == "__main__":
    command()
