"""``--python PATH``: probe another interpreter (an app's venv) as ``pip --python`` does.

The packages, torch's build and Triton are read from that interpreter's site-packages
as files, like this one's; the interpreter itself runs once, with a timeout, to say its
version and ``sys.path`` (only ``sys`` and ``json`` are imported there: no torch, no
engine). The GPUs and the OS are this machine's either way.
"""

from __future__ import annotations

import json
import os

from quantdoctor.doctor._probe_util import DEFAULT_TIMEOUT, ProbeContext, run_tool, which
from quantdoctor.errors import InvalidInputError

#: What runs in the other interpreter: its version, search path and platform, as JSON.
_SCRIPT = (
    "import json, sys; print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3], "
    "'path': sys.path, 'platform': sys.platform}))"
)

#: Where a virtual environment keeps its interpreter (POSIX, then Windows).
_VENV_PYTHONS = ("bin/python3", "bin/python", "Scripts/python.exe")

#: Seconds the interpreter may take to start; a cold venv on a network drive is slow.
PYTHON_TIMEOUT = max(DEFAULT_TIMEOUT, 10.0)


def resolve_python(path: str) -> str:
    """The interpreter ``path`` names: a file, a venv folder holding one, or a command
    on PATH (``python3``)."""
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(full) and os.sep not in path and "/" not in path:
        found = which(path, os.environ)
        if found:
            return found
    if os.path.isdir(full):
        for rel in _VENV_PYTHONS:
            candidate = os.path.join(full, *rel.split("/"))
            if os.path.isfile(candidate):
                return candidate
        raise InvalidInputError(
            f"--python {path}: a folder without bin/python or Scripts/python.exe; "
            "name the interpreter or the virtual environment's folder"
        )
    if not os.path.isfile(full):
        raise InvalidInputError(f"--python {path}: no such file, venv folder or command")
    return full


def python_context(path: str, timeout: float = PYTHON_TIMEOUT) -> ProbeContext:
    """A probe context whose packages are those of the interpreter at ``path``."""
    exe = resolve_python(path)
    # run_tool resolves argv[0] on PATH; a full path resolves to itself there.
    environ = dict(os.environ)
    environ["PATH"] = os.path.dirname(exe) + os.pathsep + environ.get("PATH", "")
    base = ProbeContext(environ=environ, timeout=timeout)
    result = run_tool([exe, "-c", _SCRIPT], base, timeout)
    if not result.ok:
        raise InvalidInputError(f"--python {path}: {result.error}")
    try:
        info = json.loads(result.stdout.strip().splitlines()[-1])
        version = str(info["version"])
        folders = [str(p) for p in info["path"]]
    except (ValueError, KeyError, IndexError, TypeError):
        raise InvalidInputError(f"--python {path}: it did not answer as Python does") from None
    # sys.path's '' is that interpreter's working directory, not a site dir.
    site_dirs = [p for p in folders if p and os.path.isdir(p)]
    return ProbeContext(
        site_dirs=site_dirs,
        python_version=version,
        python_exe=exe,
        environ=dict(os.environ),
        timeout=DEFAULT_TIMEOUT,
    )
