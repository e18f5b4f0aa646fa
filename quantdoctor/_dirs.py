"""Where quantdoctor keeps its files (the user's config, its caches), and the cache store.

No pydantic, no rules, no platformdirs on Linux: the cached report's fast path reads these.

The caches are plain JSON that loading cannot execute. They live in a folder quantdoctor
creates inside the cache dir, ``qd-cache-v<FORMAT>`` (a new layout gets a new folder, so
older code never reads a newer one), holding a ``CACHEDIR.TAG`` marker. quantdoctor reads
and writes there only while that folder is a real directory (not a symlink) owned by the
user, writable by nobody else, with the marker in it; otherwise it works without a cache.
Entries are written to a private temporary file (``O_CREAT|O_EXCL|O_NOFOLLOW``, mode 0600,
random name) and renamed into place; pruning deletes only entries of that folder whose
names quantdoctor gives (``<kind>-<hex digest>.json``), never anything else in the cache
dir. Each entry is one line of JSON, ``{"format", "kind", "key", "digest"}``, then the data
as JSON: read back only when the format, kind and key are the ones asked for and
``digest`` is the BLAKE2b-256 of the data's bytes; the caller then validates the data itself
(a bad entry is rebuilt, never trusted).

What is cached on disk (kind: key): ``matrix`` (the validated built-in matrix: a digest of
quantdoctor's own files), ``overlay`` (an overlay's validated rules: its text and the code),
``costs`` (the validated cost model), ``engines`` (the built-in matrix's engines alone,
for ``detect``), ``named`` (the distributions the matrix files name, for the probe: the
files' paths, sizes and mtimes), ``env`` (an ``--env`` file's validated facts: its
text), ``report`` and ``printed`` (the doctor report, as JSON and as the lines text output
prints: the facts, the flags, the code and the overlays), ``check`` (a plan's verdict:
the plan, the facts, the code and the overlays), ``explain`` (the rules with signatures:
the code and the overlays), ``literals`` (the text each signature's matches hold: the
code and the patterns).
What is cached per process, for its life: the built-in matrix and cost model as loaded
(``rules.matrix._builtin_loaded``, ``rules.records._builtin_engines``,
``rules.named._SEEN``, ``advise.recommend._base_costs``/``_merged``), the
default matrix (``rules.evaluate.default_matrix``), each matrix's rules per engine and per
plan (``Matrix.compiled_for``/``selecting``), parsed versions and specifiers
(``rules.conditions``), compiled error signatures (``rules.explain``), the offloads a fix
names and where a finding is listed (``doctor.report.offloads_named``/``_kinds``), this
digest of the code (``code_digest``), and within one evaluation each condition's result on
the machine (``rules.core.Core``, which the report's grid and recommendation share).

Someone who can write as the user can still forge an entry (and could as well edit the
installed package); the checks keep out everyone else (a shared ``QUANTDOCTOR_CACHE_DIR``),
torn or corrupt files, and caches left by other versions.
"""

from __future__ import annotations

import os
import stat
import sys

from quantdoctor import __version__
from quantdoctor._json import dumps, loads

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from typing import Any

#: The layout of the cache entries; bump it when their shape changes.
FORMAT = 3
SUBDIR = f"qd-cache-v{FORMAT}"
MARKER = "CACHEDIR.TAG"
_MARKER_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This folder holds quantdoctor's caches; deleting it is safe.\n"
)
#: An entry larger than this is not one quantdoctor wrote.
MAX_ENTRY_BYTES = 64 * 1024 * 1024


#: Where the user has no home (HOME unset and a uid with no passwd entry, as in bare
#: containers): a path nothing can be read from or created in, so there is no user
#: config and no cache, and nothing lands in a folder named "~" in the working directory.
NOWHERE = os.path.join(os.devnull, "quantdoctor")


def _xdg(variable: str, fallback: str) -> str:
    """platformdirs' answer on Linux, without importing it (it costs ~10 ms)."""
    value = os.environ.get(variable, "").strip()
    path = os.path.normpath(value or os.path.expanduser(fallback))
    return path if os.path.isabs(path) else NOWHERE


def _user_dir(kind: str) -> str:
    import platformdirs

    try:
        path = str(getattr(platformdirs, kind)("quantdoctor"))
    except (RuntimeError, KeyError):  # platformdirs could not expand "~"
        return NOWHERE
    return path if os.path.isabs(path) else NOWHERE


def _home(xdg: str, xdg_default: str, kind: str) -> str:
    """quantdoctor's folder of one kind: the XDG one on Linux (the variable ``xdg``, else
    ``xdg_default``), platformdirs' ``kind`` elsewhere."""
    if sys.platform.startswith("linux"):
        base = _xdg(xdg, xdg_default)
        return base if base == NOWHERE else os.path.join(base, "quantdoctor")
    return _user_dir(kind)


def config_dir() -> str:
    """The user config dir (``QUANTDOCTOR_CONFIG_DIR`` overrides); its matrix.yaml is an overlay."""
    override = os.environ.get("QUANTDOCTOR_CONFIG_DIR")
    if override:
        return override
    return _home("XDG_CONFIG_HOME", "~/.config", "user_config_dir")


def cache_dir() -> str:
    """Where the caches live (``QUANTDOCTOR_CACHE_DIR`` overrides); see the module doc."""
    override = os.environ.get("QUANTDOCTOR_CACHE_DIR")
    if override:
        return override
    home = _home("XDG_CACHE_HOME", "~/.cache", "user_cache_dir")
    return home if home == NOWHERE else os.path.join(home, __version__)


def _ours(info: os.stat_result) -> bool:
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # Windows: no owners to compare; the folder ACLs decide
        return True
    return info.st_uid == getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def store_dir(*, create: bool = False) -> str | None:
    """quantdoctor's own cache folder, or ``None`` where it cannot be trusted or made."""
    base = cache_dir()
    if base == NOWHERE or not os.path.isabs(base):
        return None  # HOME unset and no override: nowhere sensible to cache
    folder = os.path.join(base, SUBDIR)
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        if not create:
            return None
        try:
            os.makedirs(base, exist_ok=True)
            os.mkdir(folder, 0o700)
            _write_marker(folder)
        except OSError:
            return None
        return folder
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or not _ours(info):
        return None
    try:
        marker = os.lstat(os.path.join(folder, MARKER))
    except OSError:
        return None
    if not stat.S_ISREG(marker.st_mode) or not _ours(marker):
        return None
    return folder


def _write_marker(folder: str) -> None:
    _write_new(os.path.join(folder, MARKER), _MARKER_TEXT.encode(), folder)


def _write_new(path: str, data: bytes, folder: str) -> None:
    """Write ``data`` to a fresh private file, then rename it to ``path``."""
    tmp = os.path.join(folder, f".tmp-{os.urandom(8).hex()}")
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_EXCL
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
    )
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # replaces a planted symlink itself, never what it points to
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def entry_name(kind: str, key: str) -> str:
    return f"{kind}-{key}.json"


def read_entry(kind: str, key: str) -> Any:
    """The data stored under ``kind``/``key``, or ``None`` (missing, foreign, torn, forged)."""
    folder = store_dir()
    if folder is None:
        return None
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
    )
    try:
        fd = os.open(os.path.join(folder, entry_name(kind, key)), flags)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not _ours(info) or info.st_size > MAX_ENTRY_BYTES:
            return None
        with os.fdopen(fd, "rb") as f:
            fd = -1
            raw = f.read(MAX_ENTRY_BYTES + 1)
    except OSError:
        return None
    finally:
        if fd >= 0:
            os.close(fd)
    return _unwrap(raw, kind, key)


def _hash(data: bytes) -> str:
    """BLAKE2b-256 in hex, from CPython's own module where there is one (hashlib loads
    OpenSSL): a third of SHA-256's time on a 160 KiB entry where the CPU has no SHA
    instructions, and the same guard against torn and foreign entries."""
    try:
        from _blake2 import blake2b
    except ImportError:
        from hashlib import blake2b
    return str(blake2b(data, digest_size=32).hexdigest())


def _unwrap(raw: bytes, kind: str, key: str) -> Any:
    head, newline, payload = raw.partition(b"\n")
    if not newline:
        return None  # torn, truncated or not ours
    try:
        entry = loads(head.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        return None
    if entry.get("kind") != kind or entry.get("key") != key:
        return None
    if entry.get("digest") != _hash(payload):
        return None
    try:
        return loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def write_entry(kind: str, key: str, data: Any, *, keep: int = 1, prune: bool = True) -> None:
    """Store ``data`` (plain JSON data) under ``kind``/``key``, keeping the ``keep`` newest
    entries of that kind. A cache is an optimisation: where it cannot be written (a
    read-only home, a file where the folder should be, a folder of someone else's) the
    command works without it."""
    try:
        payload = dumps(data, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError):
        return  # not plain data (a date in an overlay, say): not cached
    entry = {"format": FORMAT, "kind": kind, "key": key, "digest": _hash(payload)}
    blob = dumps(entry).encode("utf-8") + b"\n" + payload
    folder = store_dir(create=True)
    if folder is None:
        return
    try:
        _write_new(os.path.join(folder, entry_name(kind, key)), blob, folder)
        if prune:
            _prune(folder, kind, keep)
    except OSError:
        pass


def prune_entries(kind: str, keep: int) -> None:
    """Keep the ``keep`` newest entries of ``kind`` (after writes made with ``prune=False``)."""
    folder = store_dir()
    if folder is not None:
        try:
            _prune(folder, kind, keep)
        except OSError:
            pass


def _prune(folder: str, kind: str, keep: int) -> None:
    """Delete all but the ``keep`` newest entries of ``kind``; nothing else is touched."""
    entries: list[tuple[int, str]] = []
    with os.scandir(folder) as it:
        for item in it:
            if entry_kind(item.name) != kind:
                continue
            info = item.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode):
                entries.append((info.st_mtime_ns, item.name))
    entries.sort()
    for _, name in entries[:-keep] if keep > 0 else entries:
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass


def entry_kind(name: str) -> str | None:
    """The kind of a file named as ``entry_name`` names entries (``kind-HEX.json``)."""
    kind, dash, key = name.removesuffix(".json").partition("-")
    if not (name.endswith(".json") and dash and 16 <= len(key) <= 64):
        return None
    if not (kind.isascii() and kind.isalpha() and kind.islower()):
        return None
    return kind if all(c in "0123456789abcdef" for c in key) else None  # hex digits


def digest(*parts: Any) -> str:
    """A short hex key of plain data (for cache entry names)."""
    blob = dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return _hash(blob.encode("utf-8"))[:32]


_CODE_DIGEST: list[str] = []


def code_digest() -> str:
    """A digest of quantdoctor's own files (path, size, mtime), computed once per process."""
    if not _CODE_DIGEST:
        fields: list[str] = [__version__, sys.version, "-"]
        _code_stats(os.path.dirname(os.path.realpath(__file__)), fields)
        # three fields a file, NUL apart (no path holds one): cheaper than ``digest``'s JSON
        text = "\0".join(fields)
        _CODE_DIGEST.append(_hash(text.encode("utf-8", "surrogateescape"))[:32])
    return _CODE_DIGEST[0]


def _code_stats(folder: str, fields: list[str]) -> None:
    """Path, size and mtime of every source and data file under ``folder``, in order
    (``-`` for those that cannot be read)."""
    try:
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda e: e.name)
    except OSError:
        fields += (folder, "-", "-")
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name != "__pycache__":
                _code_stats(entry.path, fields)
        elif entry.name.endswith((".py", ".yaml", ".yml", ".json")):
            try:
                st = entry.stat()
            except OSError:
                fields += (entry.path, "-", "-")
                continue
            fields += (entry.path, str(st.st_size), str(st.st_mtime_ns))


def file_digest(path: str | os.PathLike[str]) -> str | None:
    """A digest of a file's path, size and mtime (``None`` when it cannot be read)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return digest(os.path.abspath(path), st.st_size, st.st_mtime_ns)
