"""Text from outside made safe to print: the one function every renderer and probe uses.

Strings quantdoctor did not write (a GPU name from a driver or a tool, a GGUF's
architecture, an overlay's message, a key in an env file, a pasted traceback) may carry
terminal control sequences: ``ESC ] 0 ;`` retitles the window, ``ESC [ 2 J`` clears the
screen, C1 ``CSI`` does the same on 8-bit terminals, and the bidirectional overrides make
a line read differently from what it says. ``printable`` shows each such character as a
visible escape (``\\u001b``, ``\\u202e``: the same spelling as JSON's, so JSON output stays
valid JSON) instead, so what the user sees is what the text is.

The command line applies it at the one boundary where text leaves for the terminal:
``SafeStream`` wraps stdout and stderr while a command runs; writers that add their own
colour codes write text already made printable to the stream under it (``raw_stream``).

No command needs rich to print (importing it costs more than a whole cached report):
``styling`` decides whether a stream gets styles as rich's console decides it, and
``paint`` writes a style with the escape codes rich writes for it. Only text already made
``printable`` is painted, so the only escapes that reach the terminal are these.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    import re
    from collections.abc import Sequence
    from typing import Any


__all__ = ["Line", "SafeStream", "paint", "print_lines", "printable", "raw_stream", "styling"]

#: C0 controls but tab and newline, DEL, the C1 controls, the bidi embeddings/overrides/
#: isolates, and the line/paragraph separators some terminals honour. Every one of them
#: is outside what ``str.isprintable`` calls printable, so text that is printable but
#: for its tabs (and newlines, where they stay) has none, and needs no ``re`` (whose
#: import costs a process about half its start-up).
_UNSAFE = "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
_UNSAFE_LINE = "[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"


def _escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def printable(text: object, *, newlines: bool = False, limit: int = 0) -> str:
    """``text`` with every control character shown as an escape; one line unless
    ``newlines``. ``limit`` (characters, 0 for none) cuts it and says how much was cut."""
    s = text if isinstance(text, str) else str(text)
    if limit and len(s) > limit:
        s = f"{s[:limit]}... ({len(s) - limit} more characters)"
    plain = s.replace("\t", " ")
    if (plain.replace("\n", " ") if newlines else plain).isprintable():
        return s
    import re  # re caches what it compiles

    return re.sub(_UNSAFE if newlines else _UNSAFE_LINE, _escape, s)


class SafeStream:
    """A text stream whose writes are made ``printable`` (newlines kept)."""

    def __init__(self, stream: Any) -> None:
        self.raw_stream = stream

    def write(self, text: str) -> int:
        self.raw_stream.write(printable(text, newlines=True))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding, ...
        return getattr(self.raw_stream, name)


def raw_stream(stream: Any) -> Any:
    """The stream under a ``SafeStream`` (for writers that emit their own escape codes)."""
    return getattr(stream, "raw_stream", stream)


#: Select Graphic Rendition codes of the style names the renderers use (rich's names).
SGR = {
    "bold": "1", "dim": "2", "italic": "3", "underline": "4", "black": "30", "red": "31",
    "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36", "white": "37",
}  # fmt: skip
_ATTRIBUTES = frozenset(("bold", "dim", "italic", "underline"))


def styling(stream: Any) -> str:
    """The styles ``stream`` gets, decided as rich's console decides them: ``"colour"``;
    ``"attributes"`` under ``NO_COLOR`` (bold and dim stay, colours go); ``""`` (plain)
    when it is no terminal or ``TERM`` is ``dumb`` or ``unknown``. ``TTY_COMPATIBLE=1|0``
    and then ``FORCE_COLOR`` (set and not empty: a terminal; set and empty: none) override
    what ``isatty`` says."""
    import os
    import sys

    env = os.environ
    compatible = env.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        terminal = compatible == "1"
    elif "FORCE_COLOR" in env:  # https://force-color.org/
        terminal = env["FORCE_COLOR"] != ""
    else:
        isatty = getattr(stream, "isatty", None)
        try:
            terminal = bool(isatty and isatty())
        except ValueError:  # a closed stream
            terminal = False
    if getattr(sys.stdin, "__module__", "").startswith("idlelib"):
        terminal = False  # IDLE's shell says it is a terminal and shows escapes as text
    if not terminal or env.get("TERM", "").lower() in ("dumb", "unknown"):
        return ""
    return "attributes" if env.get("NO_COLOR", "") != "" else "colour"


def paint(text: str, style: str, styling: str = "colour") -> str:
    """``text`` in ``style`` (rich's names, ``"bold red"`` too) as escape codes, the codes
    in rich's order; every line of it on its own, so no style runs past a newline.
    ``styling`` is :func:`styling`'s answer: ``""`` gives the text alone."""
    if not (text and style and styling):
        return text
    words = style.split()
    if styling != "colour":
        words = [w for w in words if w in _ATTRIBUTES]
    if not words:
        return text
    on = "\x1b[" + ";".join(sorted((SGR[w] for w in words), key=int)) + "m"
    if "\n" not in text:
        return f"{on}{text}\x1b[0m"
    return "\n".join(f"{on}{part}\x1b[0m" if part else "" for part in text.split("\n"))


# ------------------------------------------------------------------ printing lines

#: One output line: (text, style) segments; the styles are rich's names.
Line = list[tuple[str, str]]


def wrap(line: Line, width: int) -> list[Line]:
    """One styled line as several of at most ``width`` columns, continued under the text
    (past the mark or the ``fix:`` label), words kept whole."""
    text = "".join(t for t, _ in line)
    if len(text) <= width or not line:
        return [line]
    lead = len(line[0][0]) if len(line) > 1 else len(text) - len(text.lstrip())
    indent = " " * min(lead, width // 2)
    out: list[Line] = []
    current: Line = []
    used = 0
    for i, (seg, style) in enumerate(line):
        # each word with the spaces after it: re.split(r"(?<= )", seg)
        words = [seg] if i == 0 and len(line) > 1 else _after_spaces(seg)
        for word in words:
            if used + len(word.rstrip()) > width and used > len(indent):
                out.append(current)
                current, used = [(indent, "")], len(indent)
                word = word.lstrip()
            current.append((word, style))
            used += len(word)
    out.append(current)
    return out


def _after_spaces(text: str) -> list[str]:
    """``text`` cut after every space (``re.split(r"(?<= )", text)``)."""
    parts = text.split(" ")
    return [part + " " for part in parts[:-1]] + parts[-1:]


def terminal_width(stream: Any) -> int:
    """The terminal's width, or ``COLUMNS``, or 100 when output goes to a file or pipe."""
    import os

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 20:
        return int(columns)
    try:
        return max(os.get_terminal_size(stream.fileno()).columns, 40)
    except (OSError, ValueError, AttributeError):
        return 100


def print_lines(lines: Sequence[Line], stream: Any = None) -> None:
    """Styled on a terminal, plain text everywhere else; wrapped to the terminal's width
    either way. Text from outside (GPU names, notes, overlay messages) is made printable
    first, so the only escape codes written are the styles' own."""
    out = raw_stream(stream or sys.stdout)  # the styles' codes go to the real stream
    width = terminal_width(out)
    safe = [[(printable(t, newlines=True), style) for t, style in line] for line in lines]
    wrapped = [piece for line in safe for piece in wrap(line, width)]
    if not out.isatty():
        out.write("".join("".join(t for t, _ in line).rstrip() + "\n" for line in wrapped))
    elif _WINDOWS:
        _print_rich(wrapped, out)
    else:
        out.write(styled_text(wrapped, out))


#: A Windows console may take no escape codes (before Windows 10, or with virtual terminal
#: processing off): rich then styles through the console's own calls, so it earns its cost.
_WINDOWS = sys.platform == "win32"


def styled_text(lines: Sequence[Line], stream: Any) -> str:
    """``lines`` as a terminal shows them, as rich wrote them (``styling`` decides as rich
    does; tabs to the next stop of 8) without importing rich: the text's own characters,
    with the styles' escape codes between them."""
    mode = styling(stream)
    out: list[str] = []
    for line in lines:
        if any("\t" in text for text, _ in line):
            line = _expand_tabs(line)
        runs: Line = []  # neighbours of one style written as one run
        for text, style in line:
            if runs and runs[-1][1] == style:
                runs[-1] = (runs[-1][0] + text, style)
            elif text:
                runs.append((text, style))
        out.append("".join(paint(text, style, mode) for text, style in runs) + "\n")
    return "".join(out)


def _expand_tabs(line: Line, size: int = 8) -> Line:
    column, out = 0, []
    for text, style in line:
        chars: list[str] = []
        for char in text:
            if char == "\t":
                chars.append(" " * (size - column % size))
                column += size - column % size
            else:
                chars.append(char)
                column = 0 if char == "\n" else column + 1
        out.append(("".join(chars), style))
    return out


def _print_rich(lines: Sequence[Line], out: Any) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out, highlight=False, soft_wrap=True)
    for line in lines:
        console.print(Text.assemble(*line) if line else "")
