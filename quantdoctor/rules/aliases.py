"""Other spellings of the vocabulary's words (``bnb``, ``fp16``, ``Q4_K_M``,
``int8_weight_only``), read from ``aliases.json`` beside this module: the words are
data, kept next to the vocabulary, not a table in code. Read only when a word is not
already the vocabulary's own."""

from __future__ import annotations

import os

from quantdoctor._json import loads

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from collections.abc import Iterable
    from functools import lru_cache
    from typing import Any
else:  # functools imports collections: ~3 ms of a command
    from quantdoctor._memo import lru_cache

_FILE = os.path.join(os.path.dirname(__file__), "aliases.json")


@lru_cache(maxsize=1)
def _aliases() -> dict[str, Any]:
    with open(_FILE, encoding="utf-8") as f:
        data: dict[str, Any] = loads(f.read())
    return data


def _lookup(table: dict[str, str], value: str) -> str | None:
    if value in table:
        return table[value]
    folded = {k.lower(): v for k, v in table.items()}
    return folded.get(value.lower())


def resolve(facet: str, value: str, valid: Iterable[str], engine: str | None = None) -> str:
    """``value`` as the vocabulary spells it: itself when valid, the valid word that
    matches it but for case, its alias, or (unknown) itself unchanged."""
    options = list(valid)
    if value in options:
        return value
    for option in options:
        if option.lower() == value.lower():
            return option
    table = _aliases().get(facet, {})
    if engine is not None:
        table = table.get(engine, {})
    found = _lookup(table, value) if isinstance(table, dict) else None
    return found if found in options else value
