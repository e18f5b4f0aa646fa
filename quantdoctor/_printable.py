"""Text from outside made safe to print: the one function every renderer and probe uses.

Strings quantdoctor did not write (a GPU name from a driver or a tool, a GGUF's
architecture, an overlay's message, a key in an env file, a pasted traceback) may carry
terminal control sequences: ``ESC ] 0 ;`` retitles the window, ``ESC [ 2 J`` clears the
screen, C1 ``CSI`` does the same on 8-bit terminals, and the bidirectional overrides make
a line read differently from what it says. ``printable`` shows each such character as a
visible escape (``\\x1b``, ``\\u202e``) instead, so what the user sees is what the text is.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

#: C0 controls but tab and newline, DEL, the C1 controls, the bidi embeddings/overrides/
#: isolates, and the line/paragraph separators some terminals honour.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


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
