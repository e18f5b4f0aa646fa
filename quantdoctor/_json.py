"""JSON read and written by the interpreter's own C scanner and encoder (``_json``),
without importing the ``json`` package.

``import json`` compiles regular expressions, which imports ``re`` and ``enum``: about
as much time as the interpreter's whole start-up on a small machine, on paths (``env
--json``, the cached report) that need nothing else of them. ``json`` itself drives the
same C functions, so these answers are its answers: :func:`loads` is ``json.loads``
(the C scanner with json's defaults) and :func:`dumps` is ``json.dumps`` (its C encoder
without ``indent``, and json's own layout rules with it, for the types JSON has).
Whatever these do not decide alone (malformed text, a type JSON has not, a circular
reference, a float JSON cannot hold under ``allow_nan=False``) goes to ``json`` itself,
so errors and their messages are json's, word for word. ``tests/test_json_fast.py``
checks the two agree.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # an interpreter without CPython's accelerator module: json decides
    _json = None  # type: ignore[assignment]

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

_WHITESPACE = " \t\n\r"  # json.decoder.WHITESPACE
_INF = float("inf")
_CONSTANTS = {"-Infinity": -_INF, "Infinity": _INF, "NaN": _INF - _INF}
#: Deeper than this, json's own encoder decides (it finds circular references).
_MAX_DEPTH = 200


class _Decoder:
    """The attributes ``_json.make_scanner`` reads, as ``json.JSONDecoder(...)`` sets them."""

    strict = True
    object_hook = None
    parse_float = float
    parse_constant = _CONSTANTS.__getitem__

    def __init__(self, object_pairs_hook: Any, parse_int: Any) -> None:
        self.object_pairs_hook = object_pairs_hook
        self.parse_int = parse_int or int


#: Scanners by their hooks (a few: the plain one, the untrusted readers').
_SCANNERS: dict[tuple[Any, Any], Any] = {}


def loads(
    text: str,
    *,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
    parse_int: Callable[[str], Any] | None = None,
) -> Any:
    """``json.loads(text, ...)`` for a str, with these keyword arguments (none else)."""
    if _json is not None:  # else an interpreter without CPython's accelerator: json reads
        hooks = (object_pairs_hook, parse_int)
        scan = _SCANNERS.get(hooks)
        if scan is None:
            scan = _SCANNERS[hooks] = _json.make_scanner(_Decoder(*hooks))  # type: ignore[arg-type]
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = scan(text, start)
        except Exception:  # StopIteration, a decode error, a hook's refusal: json says which
            end = -1
        if end >= 0 and len(text) - len(text.rstrip(_WHITESPACE)) == len(text) - end:
            return value
    import json

    return json.loads(text, object_pairs_hook=object_pairs_hook, parse_int=parse_int)


class _Unusual(Exception):
    """Something ``json.dumps`` decides better: a type, a key, a float, a depth."""


def dumps(
    data: Any,
    *,
    indent: int | None = None,
    ensure_ascii: bool = True,
    allow_nan: bool = True,
    sort_keys: bool = False,
    separators: tuple[str, str] | None = None,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """``json.dumps(data, ...)`` with these keyword arguments (none else)."""
    if _json is not None:  # else an interpreter without CPython's accelerator: json writes
        item_sep, key_sep = separators or ((",", ": ") if indent is not None else (", ", ": "))
        string = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
        try:
            if indent is None:
                encode = _json.make_encoder(
                    {},
                    default or _unusual,
                    string,
                    None,
                    key_sep,
                    item_sep,
                    sort_keys,
                    False,
                    allow_nan,
                )
                return "".join(encode(data, 0))
            return "".join(
                _layout(data, " " * indent, 0, string, allow_nan, sort_keys, item_sep, key_sep)
            )
        except _Unusual:
            pass
    import json

    return json.dumps(
        data,
        indent=indent,
        ensure_ascii=ensure_ascii,
        allow_nan=allow_nan,
        sort_keys=sort_keys,
        separators=separators,
        default=default,
    )


def _unusual(value: object) -> Any:
    raise _Unusual


def _scalar(value: Any, string: Callable[[str], str], allow_nan: bool) -> str | None:
    """JSON for a value that is no container (json's order of tests), else ``None``."""
    if isinstance(value, str):
        return string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value or value in (_INF, -_INF):
            if not allow_nan:
                raise _Unusual
            return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
        return float.__repr__(value)
    return None


def _layout(
    value: Any,
    indent: str,
    level: int,
    string: Callable[[str], str],
    allow_nan: bool,
    sort_keys: bool,
    item_sep: str,
    key_sep: str,
) -> Iterator[str]:
    """``json.encoder._make_iterencode`` with an indent, for JSON's own types."""
    text = _scalar(value, string, allow_nan)
    if text is not None:
        yield text
        return
    if level > _MAX_DEPTH:
        raise _Unusual
    if isinstance(value, (list, tuple)):
        if not value:
            yield "[]"
            return
        inner = "\n" + indent * (level + 1)
        yield "[" + inner
        for i, item in enumerate(value):
            if i:
                yield item_sep + inner
            yield from _layout(
                item, indent, level + 1, string, allow_nan, sort_keys, item_sep, key_sep
            )
        yield "\n" + indent * level + "]"
        return
    if isinstance(value, dict):
        if not value:
            yield "{}"
            return
        inner = "\n" + indent * (level + 1)
        yield "{" + inner
        items = sorted(value.items()) if sort_keys else value.items()
        for i, (key, item) in enumerate(items):
            if not isinstance(key, str):
                raise _Unusual  # json turns numbers, booleans and None into keys
            if i:
                yield item_sep + inner
            yield string(key) + key_sep
            yield from _layout(
                item, indent, level + 1, string, allow_nan, sort_keys, item_sep, key_sep
            )
        yield "\n" + indent * level + "}"
        return
    raise _Unusual
