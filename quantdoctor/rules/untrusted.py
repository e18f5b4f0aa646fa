"""Reading what the user hands over (an env file, an overlay) without hanging, crashing
or guessing: regular files only, opened without blocking, bounded in size, depth and
expansion, and every duplicate key refused rather than silently resolved.

A FIFO named as ``--env`` or in ``QUANTDOCTOR_MATRIX`` would block ``open`` forever,
``/dev/zero`` never ends, a YAML alias bomb expands to billions of nodes from a few
lines, a 5000-digit number or 100k-deep nesting makes the parsers raise what no caller
expects (#18). Each becomes one error that names the file and what is wrong with it.
"""

from __future__ import annotations

import os
import stat

from quantdoctor.errors import InvalidInputError

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from typing import Any

#: The largest overlay read: the built-in matrix is ~70 KB; an overlay of 48 MB took a
#: minute and 2.5 GB to load (#18).
OVERLAY_LIMIT = 1 << 20
#: The largest Environment JSON read: a real one is a few KB.
ENV_LIMIT = 1 << 20
#: Nesting deeper than any real overlay or env file (conditions nest a few levels).
MAX_DEPTH = 64
#: Nodes an overlay may expand to, aliases counted each time they are used: a YAML alias
#: bomb of nine lines is a billion.
MAX_NODES = 200_000
#: Digits of an integer: past 4300 ``int()`` itself refuses, far earlier it is nonsense.
MAX_DIGITS = 100


def read_user_file(
    path: str | os.PathLike[str], label: str, error: type[InvalidInputError], limit: int
) -> str:
    """The UTF-8 text of the regular file ``path``, or ``error("{label}{path}: why")``."""
    name = f"{label}{os.fspath(path)}"
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{name}: no such file") from None
    except IsADirectoryError:
        raise error(f"{name}: is a directory, not a file") from None
    except OSError as err:
        raise error(f"{name}: cannot open: {err.strerror or err}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{name}: {_kind(info.st_mode)}")
        if info.st_size > limit:
            raise error(f"{name}: is {_size(info.st_size)}; the limit is {_size(limit)}")
        data = os.read(fd, limit + 1)
    except OSError as err:
        raise error(f"{name}: cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{name}: is larger than {_size(limit)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{name}: not UTF-8 text (byte {err.start})") from None


def problem(path: str | os.PathLike[str], limit: int) -> str | None:
    """What is wrong with ``path`` as an input file, found without opening it (so a FIFO
    cannot block), or ``None`` where it looks readable."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as err:
        return f"cannot open: {err.strerror or err}"
    if not stat.S_ISREG(info.st_mode):
        return _kind(info.st_mode)
    if info.st_size > limit:
        return f"is {_size(info.st_size)}; the limit is {_size(limit)}"
    return None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (a named pipe), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n} bytes"


# ---------------------------------------------------------------------------- JSON


class _Refused(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"duplicate key {key!r}")
        out[key] = value
    return out


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _Refused(f"a number of {len(text)} digits")
    return int(text)


def load_json(text: str, name: str, error: type[InvalidInputError]) -> Any:
    """Parse JSON refusing duplicate keys, absurd numbers and deep nesting, as one
    ``error("{name}: ...")``. ``NaN`` and ``Infinity`` parse (Python writes them); the
    models refuse them where a finite number is needed."""
    from quantdoctor._json import loads

    try:
        data = loads(text, object_pairs_hook=_pairs, parse_int=_int)
    except _Refused as err:
        raise error(f"{name}: {err}") from None
    except RecursionError:
        raise error(f"{name}: nested too deeply (more than {MAX_DEPTH} levels)") from None
    except ValueError as err:
        import json  # what went wrong, in json's words (only here: json costs re and enum)

        if isinstance(err, json.JSONDecodeError):
            raise error(f"{name}:{err.lineno}: not valid JSON: {err.msg}") from None
        # a float or int Python cannot convert
        raise error(f"{name}: not valid JSON: {str(err)[:100]}") from None
    depth = _depth(data)
    if depth > MAX_DEPTH:
        raise error(f"{name}: nested too deeply (more than {MAX_DEPTH} levels)")
    return data


def _depth(data: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


# ---------------------------------------------------------------------------- YAML

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


def check_yaml_node(
    node: Any, name: str, error: type[InvalidInputError], max_nodes: int = MAX_NODES
) -> None:
    """Refuse a composed YAML document that would expand past ``max_nodes`` (aliases
    counted each time they are used), nest past ``MAX_DEPTH``, repeat a key in a mapping,
    key a mapping by a list or a mapping (no file quantdoctor reads has such keys, and
    nothing that walks a document can hold them), or hold an integer of more than
    ``MAX_DIGITS`` digits. Runs before anything walks or constructs the document, in time
    proportional to what it allows."""
    import yaml

    seen = 0
    stack: list[tuple[Any, int]] = [(node, 1)]
    while stack:
        n, depth = stack.pop()
        seen += 1
        line = n.start_mark.line + 1
        if seen > max_nodes:
            raise error(
                f"{name}:{line}: expands to more than {max_nodes} values "
                "(aliases counted each time they are used)"
            )
        if depth > MAX_DEPTH:
            raise error(f"{name}:{line}: nested too deeply (the limit is {MAX_DEPTH} levels)")
        if isinstance(n, yaml.MappingNode):
            keys: set[Any] = set()
            for k, v in n.value:
                if not isinstance(k, yaml.ScalarNode):  # `? - a` makes a list a key
                    raise error(
                        f"{name}:{k.start_mark.line + 1}: a key must be a plain value, "
                        f"not a {'list' if isinstance(k, yaml.SequenceNode) else 'mapping'}"
                    )
                key = k.value
                if key in keys:
                    raise error(f"{name}:{k.start_mark.line + 1}: duplicate key {repr(key)[:80]}")
                keys.add(key)
                stack.append((k, depth + 1))
                stack.append((v, depth + 1))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((v, depth + 1) for v in n.value)
        elif n.tag in (_INT_TAG, _FLOAT_TAG) and len(n.value) > MAX_DIGITS:
            raise error(f"{name}:{line}: a number of {len(n.value)} characters")
