"""Where quantdoctor keeps its files: the user's config (overlays) and its caches.

No pydantic, no rules: the cached report's fast path reads these too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from quantdoctor import __version__

#: Where the user has no home (HOME unset and a uid with no passwd entry, as in bare
#: containers): a path nothing can be read from or created in, so there is no user
#: config and no cache, and nothing lands in a folder named "~" in the working directory.
NOWHERE = Path(os.devnull, "quantdoctor")


def _user_dir(kind: str) -> Path:
    import platformdirs

    try:
        path = Path(getattr(platformdirs, kind)("quantdoctor"))
    except (RuntimeError, KeyError):  # platformdirs could not expand "~"
        return NOWHERE
    return path if path.is_absolute() else NOWHERE


def config_dir() -> Path:
    """The user config dir (``QUANTDOCTOR_CONFIG_DIR`` overrides); its matrix.yaml is an overlay."""
    override = os.environ.get("QUANTDOCTOR_CONFIG_DIR")
    if override:
        return Path(override)
    return _user_dir("user_config_dir")


def cache_dir() -> Path:
    """Where the parsed matrix and the report are cached (``QUANTDOCTOR_CACHE_DIR`` overrides)."""
    override = os.environ.get("QUANTDOCTOR_CACHE_DIR")
    if override:
        return Path(override)
    home = _user_dir("user_cache_dir")
    return home if home == NOWHERE else home / __version__


def write_cache(path: Path, data: bytes, *, siblings: str, keep: int = 1) -> None:
    """Write ``data`` to ``path`` atomically, keeping the ``keep`` newest ``siblings`` (a glob).

    A cache is an optimisation: where it cannot be written (a read-only home, a file where
    the folder should be) the command works without it.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
        old = sorted(path.parent.glob(siblings), key=lambda p: p.stat().st_mtime_ns)
        for stale in old[:-keep]:
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
