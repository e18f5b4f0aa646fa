"""Output on a terminal: the same text as piped, in colour, with no rich on the common path.

The styles are written as escape codes directly (rich's import costs more than the cached
report itself); these tests hold that path to what rich wrote and decided: the same
characters in the same styles, the same NO_COLOR / FORCE_COLOR / TERM conventions, and no
escape sequence from outside (a GPU's name, a driver string) reaching the terminal.
"""

from __future__ import annotations

import copy
import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
from envs import RX6800_ZLUDA
from hostile.cases import ESC, GOOD_ENV

from quantdoctor import _printable
from quantdoctor._printable import paint, print_lines, styling
from quantdoctor.doctor.report import build_report, render_env, render_report
from quantdoctor.rules.evaluate import evaluate_grid
from quantdoctor.rules.matrix import load_matrix

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 60

#: What a GPU driver or a lying tool could say: escapes, a bidi override, a tab, and
#: enough words that the line wraps.
HOSTILE_GPU = f"RTX{ESC} 4090\u202e\tx" + " long" * 30
HOSTILE = copy.deepcopy(GOOD_ENV)
HOSTILE["gpus"][0]["name"] = HOSTILE_GPU
HOSTILE["gpus"][0]["driver"] = "550\u202e\x1b[8m"

#: Every variable that changes how a terminal is styled.
STYLE_VARS = ("NO_COLOR", "FORCE_COLOR", "TERM", "COLORTERM", "TTY_COMPATIBLE", "COLUMNS")

SGR = re.compile(r"\x1b\[([0-9;]*)m")


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal (no size: the report wraps at 100)."""

    def isatty(self) -> bool:
        return True


def styled_cells(text: str) -> list[list[tuple[str, frozenset[str]]]]:
    """What a terminal shows: each line's characters with the SGR codes in force on each
    (spaces unstyled: nothing shows), trailing spaces dropped."""
    text = text.replace("\r\n", "\n")
    codes: frozenset[str] = frozenset()
    lines: list[list[tuple[str, frozenset[str]]]] = [[]]
    pos = 0
    for m in [*SGR.finditer(text), None]:
        for char in text[pos : m.start() if m else len(text)]:
            if char == "\n":
                lines.append([])
            else:
                lines[-1].append((char, codes if char != " " else frozenset()))
        if m:
            new = m.group(1).split(";")
            codes = frozenset() if new in (["0"], [""]) else codes | frozenset(new)
            pos = m.end()
    for line in lines:
        while line and line[-1][0] == " ":
            line.pop()
    return lines


def visible(text: str) -> list[str]:
    return ["".join(c for c, _ in line) for line in styled_cells(text)]


def only_sgr_escapes(text: str) -> bool:
    return "\x1b" not in SGR.sub("", text)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in STYLE_VARS}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", **extra)
    return env


def on_terminal(argv: list[str], env: dict[str, str], columns: int) -> str:
    """What ``argv`` writes to a pseudo-terminal ``columns`` wide (stdout and stderr)."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(argv, stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    data, deadline = b"", time.monotonic() + LIMIT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                data += chunk
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(primary)
    return data.decode("utf-8")


@pytest.fixture
def style_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A terminal with colours and nothing else said about it."""
    for name in STYLE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    return monkeypatch


def printed(lines: list[Any], stream: io.StringIO, env: dict[str, str] | None = None) -> str:
    """What ``print_lines`` writes to ``stream`` (under ``env``, when given, for the call)."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        print_lines(lines, stream)
    return stream.getvalue()


@pytest.fixture(scope="module")
def hostile_lines() -> list[Any]:
    matrix = load_matrix()
    lines = []
    for env in (HOSTILE, RX6800_ZLUDA):
        report = build_report(env, evaluate_grid(env, matrix), matrix, source="env.json")
        lines += render_report(report, verbose=True)
    return lines + render_env(HOSTILE)


# ------------------------------------------------------------ the command, on a terminal


@pytest.mark.parametrize("columns", [80, 120])
def test_the_report_on_a_terminal_says_what_it_says_piped_in_colour(
    tmp_path: Path, columns: int
) -> None:
    path = tmp_path / "env.json"
    path.write_text(json.dumps(HOSTILE), encoding="utf-8")
    argv = [sys.executable, "-m", "quantdoctor", "--env", str(path)]
    tty = on_terminal(argv, clean_env(), columns)
    piped = subprocess.run(
        argv, capture_output=True, text=True, env=clean_env(COLUMNS=str(columns)), timeout=LIMIT_S
    )
    assert piped.returncode == 1, piped.stderr
    assert "\x1b" not in piped.stdout
    assert visible(tty) == visible(piped.stdout.expandtabs(8))
    assert SGR.search(tty) and only_sgr_escapes(tty)  # colour, and no escape from outside
    assert "RTX\\u001b]0;owned\\u0007\\u001b[2J\\u001b[31m 4090\\u202e" in tty
    assert "\u202e" not in tty
    # wrapped to the terminal's width (the tab, counted as one column, as rich counted it)
    assert max(len(line) for line in visible(tty) if "4090" not in line) <= columns


def test_the_report_on_a_terminal_imports_no_rich(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_text(json.dumps(HOSTILE), encoding="utf-8")
    run_then_say = (
        "import runpy, sys\n"
        "sys.argv = ['quantdoctor', '--env', sys.argv[1]]\n"
        "try:\n"
        "    runpy.run_module('quantdoctor', run_name='__main__', alter_sys=True)\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.__stdout__.write('rich imported: %s\\n' % ('rich' in sys.modules))\n"
    )
    out = on_terminal([sys.executable, "-c", run_then_say, str(path)], clean_env(), 100)
    assert SGR.search(out), out  # the terminal path ran
    assert "rich imported: False" in out


# ------------------------------------------------- the escape-code path, against rich's


@pytest.mark.parametrize(
    "env",
    [{}, {"NO_COLOR": "1"}, {"TERM": "dumb"}, {"FORCE_COLOR": ""}, {"COLORTERM": "truecolor"}],
    ids=["colour", "NO_COLOR", "TERM=dumb", "FORCE_COLOR=", "truecolor"],
)
def test_the_report_in_escape_codes_shows_what_rich_showed(
    style_env: pytest.MonkeyPatch, hostile_lines: list[Any], env: dict[str, str]
) -> None:
    ours = printed(hostile_lines, FakeTerminal(), env)
    style_env.setattr(_printable, "_WINDOWS", True)  # the path rich still takes
    theirs = printed(hostile_lines, FakeTerminal(), env)
    assert styled_cells(ours) == styled_cells(theirs)
    assert only_sgr_escapes(ours)
    assert "\u202e" not in ours


@pytest.mark.parametrize(
    ("env", "isatty"),
    [
        ({}, True),
        ({}, False),
        ({"NO_COLOR": "1"}, True),
        ({"NO_COLOR": ""}, True),
        ({"FORCE_COLOR": "1"}, False),
        ({"FORCE_COLOR": ""}, True),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
        ({"TERM": "dumb"}, True),
        ({"TERM": "UNKNOWN"}, True),
        ({"TERM": "dumb", "FORCE_COLOR": "1"}, True),
        ({"TERM": "vt100"}, True),
        ({"COLORTERM": "truecolor"}, True),
        ({"TTY_COMPATIBLE": "0"}, True),
        ({"TTY_COMPATIBLE": "1"}, False),
        ({"TTY_COMPATIBLE": "1", "FORCE_COLOR": ""}, False),
    ],
)
def test_styling_is_decided_as_rich_decides_it(
    style_env: pytest.MonkeyPatch, env: dict[str, str], isatty: bool
) -> None:
    from rich.console import Console

    for name, value in env.items():
        style_env.setenv(name, value)
    stream = FakeTerminal() if isatty else io.StringIO()
    console = Console(file=stream)
    rich_says = (
        "" if console.color_system is None else "attributes" if console.no_color else "colour"
    )
    assert styling(stream) == rich_says


# ----------------------------------------------------------------- the conventions


def test_no_color_keeps_bold_and_dim_and_drops_the_colours(
    style_env: pytest.MonkeyPatch, hostile_lines: list[Any]
) -> None:
    out = printed(hostile_lines, FakeTerminal(), {"NO_COLOR": "1"})
    codes = {code for m in SGR.finditer(out) for code in m.group(1).split(";")}
    assert codes == {"0", "1", "2"}


@pytest.mark.parametrize(
    "env", [{"TERM": "dumb"}, {"FORCE_COLOR": ""}, {"TTY_COMPATIBLE": "0"}], ids=str
)
def test_a_terminal_said_to_take_no_styles_gets_the_text_alone(
    style_env: pytest.MonkeyPatch, hostile_lines: list[Any], env: dict[str, str]
) -> None:
    out = printed(hostile_lines, FakeTerminal(), env)
    assert "\x1b" not in out
    assert visible(out) == visible(printed(hostile_lines, io.StringIO()).expandtabs(8))


def test_the_report_is_never_coloured_off_a_terminal_even_forced(
    style_env: pytest.MonkeyPatch, hostile_lines: list[Any]
) -> None:
    assert "\x1b" not in printed(hostile_lines, io.StringIO(), {"FORCE_COLOR": "1"})


def test_paint_writes_rich_s_codes_line_by_line() -> None:
    assert paint("✓", "green") == "\x1b[32m✓\x1b[0m"
    assert paint("fix", "red bold") == "\x1b[1;31mfix\x1b[0m"
    assert paint("a\n\nb", "dim") == "\x1b[2ma\x1b[0m\n\n\x1b[2mb\x1b[0m"
    assert paint("x", "green", "attributes") == "x"
    assert paint("x", "bold cyan", "attributes") == "\x1b[1mx\x1b[0m"
    assert paint("x", "bold", "") == paint("x", "", "colour") == "x"


def test_every_style_the_renderers_use_has_codes() -> None:
    from quantdoctor.errors import STYLES

    for style in (*STYLES.values(), "bold", "cyan", "dim"):
        assert paint("x", style).startswith("\x1b[")


def test_check_and_matrix_colour_codes_are_unchanged(style_env: pytest.MonkeyPatch) -> None:
    from quantdoctor.cli.common import painter

    paint_here = painter(FakeTerminal())
    assert paint_here("✗", "red") == "\x1b[31m✗\x1b[0m"
    assert painter(io.StringIO())("✗", "red") == "✗"


# ------------------------------------ every command styles a terminal as the report does


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        ({}, "colour"),
        ({"NO_COLOR": "1"}, "attributes"),
        ({"TERM": "dumb"}, ""),
        ({"FORCE_COLOR": ""}, ""),
        ({"TTY_COMPATIBLE": "0"}, ""),
    ],
    ids=["colour", "NO_COLOR", "TERM=dumb", "FORCE_COLOR=", "TTY_COMPATIBLE=0"],
)
def test_check_styles_a_terminal_as_the_report_does(
    tmp_path: Path, extra: dict[str, str], want: str
) -> None:
    path = tmp_path / "env.json"
    path.write_text(json.dumps(HOSTILE), encoding="utf-8")
    argv = [sys.executable, "-m", "quantdoctor", "check", "--engine", "quanto"]
    argv += ["--scheme", "qint8", "--env", str(path), "--no-cache"]
    env = {**clean_env(), **extra}
    check, report = on_terminal(argv, env, 120), on_terminal(argv[:3] + argv[-3:], env, 120)
    for out in (check, report):
        words = {w for codes in SGR.findall(out) for w in codes.split(";")} - {"0", ""}
        if want == "colour":
            assert words - {"1", "2", "3", "4"}, out  # a colour, not only attributes
        elif want == "attributes":  # bold and dim stay (the report has some), colours go
            assert words <= {"1", "2", "3", "4"} and (words or out is check), out
        else:
            assert not words, out
        assert only_sgr_escapes(out)


def test_a_non_empty_force_color_styles_a_pipe(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_text(json.dumps(HOSTILE), encoding="utf-8")
    argv = [sys.executable, "-m", "quantdoctor", "check", "--engine", "quanto"]
    argv += ["--scheme", "qint8", "--env", str(path), "--no-cache"]
    piped = subprocess.run(
        argv, capture_output=True, text=True, env=clean_env(FORCE_COLOR="1"), timeout=LIMIT_S
    )
    assert SGR.search(piped.stdout), piped.stdout
    plain = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=LIMIT_S)
    assert not SGR.search(plain.stdout)
