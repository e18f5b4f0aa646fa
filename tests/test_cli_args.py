"""The command line read without argparse (``cli._args``) reads what argparse reads.

For every command, command lines built from its own declarations (each option alone,
with a value in both forms, repeated, with the positionals, all together) and a set of
awkward ones are read both ways: where ``cli._args`` accepts a line, argparse reads it
to the same values; where argparse refuses a line, ``cli._args`` has declined it.
"""

from __future__ import annotations

import contextlib
import io
import itertools

import pytest

from quantdoctor.cli import COMMANDS, REPORT_MODULE, _load, _plain_args
from quantdoctor.cli._args import Recorder, parse
from quantdoctor.cli._parser import build_parser

#: A value each option's type accepts (the rest take any text).
SAMPLE = {"device": "1", "params": "12B", "vram": "23.5", "top": "3", "shell": "bash"}


def _argparse(argv: list[str]) -> dict[str, object] | None:
    """argparse's values, or None where it refuses the line (exit 2) or prints help."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return vars(build_parser(argv).parse_args(argv))
    except SystemExit:
        return None


def _recorder(command: str | None) -> Recorder:
    recorder = Recorder()
    _load(COMMANDS[command][0] if command else REPORT_MODULE).add_arguments(recorder)  # type: ignore[attr-defined]
    return recorder


def _lines(command: str | None) -> list[list[str]]:
    """Command lines from the command's declarations, plain and awkward."""
    recorder = _recorder(command)
    head = [command] if command else []
    required: list[str] = []
    singles: list[list[str]] = []
    seen: set[int] = set()
    for flag, option in recorder.options.items():
        value = SAMPLE.get(option.dest, "x")
        if option.action in ("store_true", "store_false"):
            forms = [[flag], [flag, flag], [f"{flag}=1"]]
        else:
            forms = [[flag, value], [f"{flag}={value}"], [flag, value, flag, "y"], [flag]]
            forms += [[flag, "-x"], [flag, ""]]
            if option.dest == "device":
                forms += [[flag, "-1"], [flag, "one"]]
        singles += forms
        if option.required and id(option) not in seen:
            required += [flag, value]
        seen.add(id(option))
    positionals = [[SAMPLE.get(p.dest, "some text")] for p in recorder.positionals]
    lines = [[*head, *required]]
    for form in singles:
        lines.append([*head, *required, *form])
        lines.append([*head, *form])  # without the required options
    for pos in positionals:
        lines.append([*head, *required, *pos])
        lines.append([*head, *pos, *required])
        lines.append([*head, *required, *pos, *pos])  # one positional too many
    for a, b in itertools.combinations(singles[:12], 2):
        lines.append([*head, *required, *a, *b])
    awkward = [["-h"], ["--help"], ["--version"], ["--"], ["-"], ["--nosuch"], ["-vv"], ["--js"]]
    awkward += [["--matrix", "a", "--matrix=b"], ["--engine", "-"], ["--params", "12B", "--model", "m"]]
    lines += [[*head, *required, *a] for a in awkward]
    return lines


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_what_the_plain_reader_accepts_argparse_reads_the_same(command: str | None) -> None:
    recorder = _recorder(command)
    accepted = 0
    for argv in _lines(command):
        tail = argv[1:] if command else argv
        plain = parse(recorder, tail)
        expected = _argparse(argv)
        if plain is None:
            continue
        accepted += 1
        assert expected is not None, f"argparse refuses {argv}, the plain reader accepted it"
        expected.pop("command", None)
        assert plain == expected, argv
    assert accepted or not recorder.plain, f"the plain reader declined every line of {command}"


def test_the_common_lines_are_read_without_argparse() -> None:
    # what people type every time: none of these may fall back to argparse
    for argv in (
        [],
        ["--json"],
        ["env", "--json"],
        ["--no-cache", "-v"],
        ["check", "--engine", "quanto", "--scheme", "qint8", "--offload=balanced", "--json"],
        ["explain", "QBytesTensor.__new__() missing 5 required positional arguments"],
        ["explain", "-", "--engine", "quanto"],
        ["detect", "model.gguf", "--json"],
        ["recommend", "--params", "12B", "--top", "3"],
        ["matrix", "--env", "a.json", "--env", "b.json"],
        ["completion", "bash"],
    ):
        assert _plain_args(argv) is not None, argv


def test_help_errors_and_rarer_forms_stay_argparse_s() -> None:
    for argv in (
        ["-h"],
        ["check", "--help"],
        ["--version"],
        ["check", "--engine", "quanto"],  # --scheme is required
        ["check", "--eng", "quanto", "--scheme", "qint8"],  # abbreviated
        ["env", "--device", "one"],
        ["env", "--device", "-1"],
        ["recommend", "--params", "12B", "--model", "m.gguf"],  # exclusive
        ["recommend", "--params", "twelve"],
        ["completion", "fish"],
        ["explain", "--", "--x"],
    ):
        assert _plain_args(argv) is None, argv
