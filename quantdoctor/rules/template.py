"""A rule's message and fix name facts in braces: ``{gpu.name}``, ``{packages.diffusers}``.

Filled by the evaluator (``rules.core.render``) and by ``explain``, each with its own words
for a fact it does not know; read here without ``re`` (half a process's start-up).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

#: A placeholder (the grammar: ``fill`` reads it with ``str`` methods, and
#: ``tests/test_probe_patterns.py`` holds the two to the same answers).
TEMPLATE_PATTERN = r"\{([a-z_]+(?:\.[a-z0-9_\-]+)*)\}"
_KEY_HEAD = frozenset("abcdefghijklmnopqrstuvwxyz_")
_KEY_WORD = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def fill(text: str, sub: Callable[[str], str]) -> str:
    """``re.sub(TEMPLATE_PATTERN, lambda m: sub(m.group(1)), text)``, by hand."""
    out: list[str] = []
    i = 0
    while True:
        start = text.find("{", i)
        end = text.find("}", start + 1) if start >= 0 else -1
        if end < 0:
            out.append(text[i:])
            return "".join(out)
        key = text[start + 1 : end]
        head, *words = key.split(".")
        if head and set(head) <= _KEY_HEAD and all(w and set(w) <= _KEY_WORD for w in words):
            out.append(text[i:start] + sub(key))
            i = end + 1
        else:  # not a placeholder: the text up to the next "{" stays as it is
            out.append(text[i : start + 1])
            i = start + 1
