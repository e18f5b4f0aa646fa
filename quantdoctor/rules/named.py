"""The distributions a matrix names, read from its YAML text: what the probe should read.

``Matrix.packages()`` gives them exactly, from the parsed rules and engines; this module
gives the same names (or more) from the text alone, with ``re`` and nothing else, for
the path that has a speed budget (``env --json`` loads neither pydantic nor PyYAML). A
name is taken from:

- a fact ``packages.<name>`` (in a condition, or a message that shows it);
- an engine's ``package: <name>``;
- a key of a ``holds_for`` mapping or of the ``verified`` section, flow or block style.

Reading more names than the rules use costs one metadata lookup each and reports the
package; reading fewer would leave an overlay's rule unknown where it could be decided.
"""

from __future__ import annotations

import os

from quantdoctor.rules.vocab import canonical_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

#: The built-in matrix file (a string: pathlib costs the probe's fast path ~3 ms of imports).
BUILTIN_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "matrix.yaml"
)

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
#: What a name is found by (compiled on the first scan: the names are usually cached).
_FACT = rf"packages\.({_NAME})"
_PACKAGE = rf"(?:^|[{{,])[ \t]*-?[ \t]*package:[ \t]*[\"']?({_NAME})"
_MAPPING_KEY = r"^([ \t]*)(?:holds_for|verified):[ \t]*([^\n#]*)"
_FLOW_KEY = rf"(?:^|[{{,])\s*[\"']?({_NAME})[\"']?\s*:"
_BLOCK_KEY = rf"^(\s*)[\"']?({_NAME})[\"']?\s*:"
#: Keys of those mappings that are not distributions the probe reads by name.
_NOT_PACKAGES = frozenset({"torch"})


def _lines_after(text: str, pos: int) -> Iterator[str]:
    while pos < len(text):
        start = pos + 1
        pos = text.find("\n", start)
        if pos < 0:
            pos = len(text)
        yield text[start:pos]


def packages_in_text(text: str) -> list[str]:
    """Every distribution ``text`` (one matrix or overlay file) names, engines' first."""
    import re  # only when the names are not cached: re costs a process half its start-up

    found: dict[str, None] = {}
    for m in re.finditer(_PACKAGE, text, re.M):
        found[canonical_name(m.group(1))] = None
    for head in re.finditer(_MAPPING_KEY, text, re.M):
        indent, rest = len(head.group(1)), head.group(2)
        if rest.strip():  # flow style: holds_for: {bitsandbytes: "<0.46"}
            for m in re.finditer(_FLOW_KEY, rest):
                found[canonical_name(m.group(1))] = None
            continue
        for below in _lines_after(text, head.end()):  # block style: the keys under it
            if not below.strip() or below.lstrip().startswith("#"):
                continue
            if len(below) - len(below.lstrip()) <= indent:
                break
            key = re.match(_BLOCK_KEY, below)
            if key is not None and len(key.group(1)) > indent:
                found[canonical_name(key.group(2))] = None
    for m in re.finditer(_FACT, text):
        found[canonical_name(m.group(1))] = None
    return [n for n in found if n not in _NOT_PACKAGES]


def default_overlays() -> list[str]:
    """The overlay files that apply without being asked for: user config, then env."""
    from quantdoctor._dirs import config_dir

    found: list[str] = []
    user = os.path.join(config_dir(), "matrix.yaml")
    if os.path.isfile(user):
        found.append(user)
    env = os.environ.get("QUANTDOCTOR_MATRIX", "")
    found.extend(p for p in env.split(os.pathsep) if p.strip())
    return found


def named_packages(extra: Iterable[str | os.PathLike[str]] = ()) -> list[str]:
    """The distributions the built-in matrix, the default overlays and ``extra`` files name.

    A file that cannot be read is skipped: loading the matrix names it properly. Scanning
    the built-in matrix's text costs more than the rest of a probe, so the names are kept
    in quantdoctor's cache folder (``quantdoctor._dirs``) under a key of every file's
    path, size and mtime (this module's among them), and once per process."""
    return list(_named(tuple(os.fspath(p) for p in (BUILTIN_PATH, *default_overlays(), *extra))))


def _named(paths: tuple[str, ...]) -> tuple[str, ...]:
    from quantdoctor._dirs import digest, file_digest, read_entry, write_entry

    stats = [file_digest(p) for p in (__file__, *paths)]
    key = digest("named", stats) if None not in stats else None
    if key is not None:
        found = _SEEN.get(key)
        if found is not None:
            return found
        cached = read_entry("named", key)
        if isinstance(cached, list) and all(type(n) is str for n in cached):
            _SEEN[key] = tuple(cached)
            return _SEEN[key]
    names: dict[str, None] = {}
    from quantdoctor.errors import InvalidInputError
    from quantdoctor.rules.untrusted import OVERLAY_LIMIT, read_user_file

    for path in paths:
        try:  # regular files of bounded size only: a FIFO here would hang env --json
            text = read_user_file(path, "", InvalidInputError, OVERLAY_LIMIT)
        except InvalidInputError:
            continue
        names.update(dict.fromkeys(packages_in_text(text)))
    if key is not None:
        write_entry("named", key, list(names), keep=KEEP)
        _SEEN[key] = tuple(names)
    return tuple(names)


#: This process's answers, by the key above (a report asks twice: its overlays, the probe).
_SEEN: dict[str, tuple[str, ...]] = {}


#: Entries kept: one per recent set of overlays.
KEEP = 4
