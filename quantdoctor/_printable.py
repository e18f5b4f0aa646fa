"""Text from outside made safe to print: the one function every renderer and probe uses.

Strings quantdoctor did not write (a GPU name from a driver or a tool, a GGUF's
architecture, an overlay's message, a key in an env file, a pasted traceback) may carry
terminal control sequences: ``ESC ] 0 ;`` retitles the window, ``ESC [ 2 J`` clears the
screen, C1 ``CSI`` does the same on 8-bit terminals, and the bidirectional overrides make
a line read differently from what it says. ``printable`` shows each such character as a
visible escape (``\\u001b``, ``\\u202e``: the same spelling as JSON's, so JSON output stays
valid JSON) instead, so what the user sees is what the text is.

The command line applies it at the one boundary where text leaves for the terminal:
``SafeStream`` wraps stdout and stderr while a command runs, and ``safe_console`` gives a
rich console (which writes its own colour codes to the real stream) whose every string
passes through ``printable`` before markup is parsed.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from typing import Any


__all__ = ["SafeStream", "printable", "raw_stream", "safe_console"]

#: C0 controls but tab and newline, DEL, the C1 controls, the bidi embeddings/overrides/
#: isolates, and the line/paragraph separators some terminals honour.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def printable(text: object, *, newlines: bool = False, limit: int = 0) -> str:
    """``text`` with every control character shown as an escape; one line unless
    ``newlines``. ``limit`` (characters, 0 for none) cuts it and says how much was cut."""
    s = text if isinstance(text, str) else str(text)
    if limit and len(s) > limit:
        s = f"{s[:limit]}... ({len(s) - limit} more characters)"
    pattern = _UNSAFE if newlines else _UNSAFE_LINE
    if pattern.search(s) is None:
        return s
    return pattern.sub(_escape, s)


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


_CONSOLE: Any = None


def safe_console(**kwargs: Any) -> Any:
    """A ``rich.console.Console`` that makes every string it renders ``printable`` first."""
    global _CONSOLE
    if _CONSOLE is None:
        from rich.console import Console

        class _SafeConsole(Console):
            def render_str(self, text: str, **kw: Any) -> Any:
                return super().render_str(printable(text, newlines=True), **kw)

        _CONSOLE = _SafeConsole
    return _CONSOLE(**kwargs)
