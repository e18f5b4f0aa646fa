"""Error-signature patterns that finish in linear time on any text.

Signatures run on text pasted from anywhere, so every pattern (built-in or from an overlay)
is checked when the matrix loads: no back-references, every repetition bounded (``{0,200}``,
never ``*``, ``+`` or ``{n,}``), no repetition inside another, and at most
``MAX_PATHS`` ways for one match attempt to proceed (the product of the choices its
repetitions and alternations allow). Each attempt then costs a bounded number of steps,
so a search costs at most that bound times the length of the text. Text is also cut per
line (``cap_lines``) before it is searched.
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from typing import Any

# the regular-expression parser CPython's re uses (its private home moved in 3.11)
_NEW = sys.version_info >= (3, 11)
_p: Any = importlib.import_module("re._parser" if _NEW else "sre_parse")
_c: Any = importlib.import_module("re._constants" if _NEW else "sre_constants")

__all__ = ["MAX_LINE", "MAX_PATHS", "MAX_PATTERN", "cap_lines", "literals", "unsafe"]

#: A signature longer than this is refused (a pattern, not a document).
MAX_PATTERN = 2000
#: The most ways one match attempt may branch (product of repeat and alternation choices).
MAX_PATHS = 100_000
#: Lines longer than this are searched as their head and tail (an error message is short;
#: a 1 MB line is a log or an attack).
MAX_LINE = 4096
_HEAD = 3072

_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT)}
_REFS = {_c.GROUPREF, _c.GROUPREF_EXISTS, getattr(_c, "GROUPREF_IGNORE", _c.GROUPREF)}


class _Unsafe(Exception):
    pass


def _paths(items: Any, in_repeat: bool) -> int:
    """Ways one attempt at ``items`` (a parsed sequence) can proceed; raises ``_Unsafe``."""
    total = 1
    for op, arg in items:
        if op in _REFS:
            raise _Unsafe("back-references are not allowed")
        if op in _REPEATS:
            low, high, body = arg
            if high == _c.MAXREPEAT:
                raise _Unsafe(
                    "unbounded repetition (*, + or {n,}); bound it, e.g. [^\\n]{0,200} or \\d{1,10}"
                )
            if high > 1 and in_repeat:
                raise _Unsafe("a repetition inside another repetition")
            inner = _paths(body, in_repeat or high > 1)
            if inner == 1:
                total *= high - low + 1
            else:  # each iteration chooses again: inner ** k ways for k iterations
                total *= sum(min(inner**k, MAX_PATHS + 1) for k in range(low, min(high, 64) + 1))
        elif op is _c.BRANCH:
            total *= sum(_paths(branch, in_repeat) for branch in arg[1])
        elif op is _c.SUBPATTERN:
            total *= _paths(arg[-1], in_repeat)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            total *= _paths(arg[1], in_repeat)
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            total *= _paths(arg, in_repeat)
        if total > MAX_PATHS:
            raise _Unsafe(f"more than {MAX_PATHS} ways to try one match; simplify it")
    return total


def unsafe(pattern: str) -> str | None:
    """Why ``pattern`` could take more than linear time, or None when it cannot."""
    if len(pattern) > MAX_PATTERN:
        return f"longer than {MAX_PATTERN} characters"
    try:
        parsed = _p.parse(pattern)
        _paths(parsed, False)
    except _Unsafe as err:
        return str(err)
    except Exception as err:  # a pattern re.compile accepted but the parser cannot read
        return f"cannot be checked ({err})"
    return None


def cap_lines(text: str) -> str:
    """``text`` with every line longer than ``MAX_LINE`` cut to its head and tail."""
    if all(len(line) <= MAX_LINE for line in text.split("\n")):
        return text
    out = []
    for line in text.split("\n"):
        if len(line) > MAX_LINE:
            line = f"{line[:_HEAD]} … {line[-(MAX_LINE - _HEAD) :]}"
        out.append(line)
    return "\n".join(out)


#: Escapes that stand for one character class or position, not the character after them.
_CLASS_ESCAPES = frozenset("dDwWsSbBAZzGnrtfvax0123456789")


def literals(pattern: str) -> tuple[str, ...]:
    """Text every match of ``pattern`` contains: the runs of plain characters outside any
    group, class or repetition. A text that lacks one cannot match, so ``explain`` skips
    compiling and searching that pattern (compiling every signature costs more than the
    rest of a run). Conservative: a pattern with flags or a top-level ``|`` gives none,
    and a character a quantifier follows is left out of its run."""
    if "(?" in pattern.replace("(?:", "") or "|" in _top_level(pattern):
        return ()
    if any(e in pattern for e in ("\\x", "\\u", "\\U", "\\N", "\\0")):
        return ()  # escapes with arguments: left to the regular expression itself
    runs: list[str] = []
    run: list[str] = []
    depth = i = 0
    n = len(pattern)

    def cut() -> None:
        if len(run) >= 3 and depth == 0:
            runs.append("".join(run))
        run.clear()

    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            i += 2
            if nxt in _CLASS_ESCAPES or nxt.isalpha():
                cut()
            elif depth == 0:
                run.append(nxt)
            continue
        if ch == "[":
            cut()
            i = _class_end(pattern, i)
            continue
        if ch in "*?{":  # the atom before is optional (or counted): not required text
            if run:
                run.pop()
            cut()
            if ch == "{":  # skip the count; a "{" that is no count is text, left out
                close = pattern.find("}", i)
                i = n if close < 0 else close
        elif ch in "(":
            cut()
            depth += 1
        elif ch == ")":
            cut()
            depth = max(depth - 1, 0)
        elif ch in ".^$+|":
            if ch == "+":  # the atom before is there once at least, but not twice in a row
                cut()
            cut()
        elif depth == 0:
            run.append(ch)
        i += 1
    cut()
    return tuple(runs)


def _top_level(pattern: str) -> str:
    """``pattern`` with escapes, classes and groups taken out (what ``|`` splits)."""
    out: list[str] = []
    depth = i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            i = _class_end(pattern, i)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(ch)
        i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """The index after the ``]`` closing the class that opens at ``start``."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1  # a "]" first is a member
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i + 1
        i += 1
    return i
