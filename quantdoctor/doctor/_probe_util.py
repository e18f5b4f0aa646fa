"""What every probe shares: a context naming where to look, safe reads, bounded tools.

Every probe is a total function over a ``ProbeContext``: it returns facts, or records in
``notes`` why a fact is unknown. Tests build a context whose ``root`` is a tmp_path tree
laid out like ``/sys`` and ``/proc``, whose ``site_dirs`` is a fake site-packages, and
whose ``environ`` holds a ``PATH`` with fake tools, so no probe needs mocking.
"""

from __future__ import annotations

import os
import stat
import sys

from quantdoctor._printable import printable

#: JSON-ready values, as the Environment contract spells them (a name for annotations).
TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    Json = Any
else:
    Json = object
Notes = dict[str, str]

#: Seconds a vendor tool (nvidia-smi, rocminfo, sycl-ls, PowerShell) may take. They hang
#: on busy or broken hosts (ray-project/ray#45896, NordicHPC/sonar#92), and the doctor
#: is run on exactly those hosts.
DEFAULT_TIMEOUT = 2.0

#: Bytes a vendor tool may print (stdout and stderr together). ``rocminfo`` on an 8-GPU
#: host prints ~40 KB; a tool that prints 100 MB is broken, and buffering and parsing it
#: took 24 s (#18).
TOOL_OUTPUT_CAP = 4 << 20

#: More GPUs than any one host holds (NVML's own limit is 64 per system on the largest
#: HGX/DGX boards): a driver or tool that reports more is lying, and looping over 2^32-1
#: handles never ends.
MAX_GPUS = 64

#: Characters of a tool's error, or a name, kept for a note or a fact.
MAX_TEXT = 200


def _getcwd() -> str:
    # The working directory may have been deleted under the process: nothing is there.
    try:
        return os.getcwd()
    except OSError:
        return ""


def _default_site_dirs() -> tuple[str, ...]:
    # The directories importlib.metadata would search for this interpreter ("" is the
    # working directory, which may be gone), but the standard library's own two (where
    # os.py and the compiled modules live): no installer puts a distribution there, and
    # they hold a few hundred entries to list on every probe.
    stdlib = os.path.dirname(os.__file__)
    own = {stdlib, os.path.join(stdlib, "lib-dynload")}
    found = (p or _getcwd() for p in sys.path)
    return tuple(p for p in found if p and p not in own and os.path.isdir(p))


def _default_system() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "darwin"
    return sys.platform


def _default_machine() -> str:
    if hasattr(os, "uname"):
        return os.uname().machine
    # Windows has no os.uname; the variable is what platform.machine() reads there too.
    return os.environ.get("PROCESSOR_ARCHITECTURE", "")


class ProbeContext:
    """Where the probes look. The defaults describe the running machine and interpreter.

    A plain class rather than a dataclass: ``dataclasses`` costs ~10 ms of imports, a
    tenth of this command's budget.
    """

    __slots__ = (
        "cwd",
        "environ",
        "machine",
        "nvml_libs",
        "python_exe",
        "python_version",
        "root",
        "site_dirs",
        "system",
        "timeout",
    )

    def __init__(
        self,
        *,
        root: str = "/",
        site_dirs: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        system: str | None = None,
        machine: str | None = None,
        python_version: str | None = None,
        nvml_libs: Sequence[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        python_exe: str | None = None,
        cwd: str | None = None,
    ) -> None:
        self.root = root
        self.site_dirs = tuple(_default_site_dirs() if site_dirs is None else site_dirs)
        self.environ: Mapping[str, str] = dict(os.environ if environ is None else environ)
        self.system = _default_system() if system is None else system
        self.machine = _default_machine() if machine is None else machine
        self.python_version = python_version or "{}.{}.{}".format(*sys.version_info[:3])
        #: NVML libraries tried in order (``None``: the platform's); tests name a broken one.
        self.nvml_libs = None if nvml_libs is None else tuple(nvml_libs)
        self.timeout = timeout
        #: The interpreter that runs code-running probes (the Triton kernel).
        self.python_exe = python_exe or sys.executable
        self.cwd = cwd or _getcwd()

    def path(self, *parts: str) -> str:
        """``parts`` under ``root``: ``ctx.path("sys/class/drm")``."""
        return os.path.join(self.root, *parts)


def read_text(path: str, limit: int = 65536) -> str | None:
    """The first ``limit`` bytes of a regular file as text, or ``None`` when it cannot be
    read (missing, permission) or is not a regular file: a FIFO planted where a METADATA
    or a sysfs attribute should be would block ``open`` forever, a device never ends."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        left = limit
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def listdir(path: str, *, ordered: bool = True) -> list[str]:
    """Sorted entries (in the folder's order: not ``ordered``), or ``[]`` when the folder
    is missing or unreadable."""
    try:
        entries = os.listdir(path)
    except OSError:
        return []
    return sorted(entries) if ordered else entries


def which(name: str, environ: Mapping[str, str]) -> str | None:
    """``shutil.which`` over the context's PATH, without importing shutil on the fast path."""
    exts = [""]
    if sys.platform == "win32":
        exts += environ.get("PATHEXT", ".EXE;.BAT;.CMD").lower().split(";")
    for folder in environ.get("PATH", "").split(os.pathsep):
        if not folder:
            continue
        for ext in exts:
            candidate = os.path.join(folder, name + ext)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    return None


class ToolResult:
    """A tool's stdout, or why there is none (``error``); ``missing`` when not installed."""

    __slots__ = ("error", "missing", "stdout")

    def __init__(self, stdout: str = "", error: str | None = None, missing: bool = False) -> None:
        self.stdout = stdout
        self.error = error
        self.missing = missing

    def __repr__(self) -> str:
        return f"ToolResult(error={self.error!r}, missing={self.missing!r})"

    @property
    def ok(self) -> bool:
        return self.error is None


def run_tool(argv: Sequence[str], ctx: ProbeContext, timeout: float | None = None) -> ToolResult:
    """Run a vendor tool with a hard timeout; never raises, never leaves it running.

    The tool starts in its own session so that a timeout kills it *and* whatever it
    spawned (a shell script's ``sleep`` would otherwise keep the pipe open).
    """
    exe = which(argv[0], ctx.environ)
    if exe is None:
        return ToolResult(error=f"{argv[0]} is not on PATH", missing=True)
    import subprocess

    limit = ctx.timeout if timeout is None else timeout
    try:
        proc = start([exe, *argv[1:]], ctx.environ)
    except OSError as err:
        return ToolResult(error=f"{argv[0]} could not start: {err.strerror or err}")
    try:
        out, err_bytes = _communicate(proc, limit)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        return ToolResult(error=f"{argv[0]} timed out after {limit:g} s")
    except _TooMuchOutput:
        kill_tree(proc)
        return ToolResult(
            error=f"{argv[0]} printed more than {TOOL_OUTPUT_CAP >> 20} MiB; stopped it"
        )
    if proc.returncode != 0:
        last = _last_line(err_bytes) or _last_line(out) or "no output"
        return ToolResult(error=f"{argv[0]} exited with {proc.returncode}: {last}")
    return ToolResult(stdout=out.decode("utf-8", "replace"))


def start(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Any:
    """``subprocess.Popen`` of ``argv`` in a session of its own (no console window on
    Windows), stdin closed, stdout and stderr piped: ``kill_tree`` then stops it and all
    it spawned. ``environ`` replaces the environment; ``OSError`` if it cannot start."""
    import subprocess

    kwargs: dict[str, Any] = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    else:
        kwargs["start_new_session"] = True
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=None if environ is None else dict(environ),
        **kwargs,
    )


class _TooMuchOutput(Exception):
    pass


def _communicate(proc: Any, limit: float) -> tuple[bytes, bytes]:
    """``proc.communicate(timeout=limit)``, but reading at most ``TOOL_OUTPUT_CAP`` bytes."""
    import subprocess

    if sys.platform == "win32":  # no select() on pipes: bounded in time, not in size
        out, err = proc.communicate(timeout=limit)
        if len(out) + len(err) > TOOL_OUTPUT_CAP:
            raise _TooMuchOutput
        return out, err
    import selectors
    import time

    deadline = time.monotonic() + limit
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    buffers: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    total = 0
    with selectors.DefaultSelector() as sel:
        for stream in (proc.stdout, proc.stderr):
            sel.register(stream, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, limit)
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buffers[key.fd].append(chunk)
                total += len(chunk)
                if total > TOOL_OUTPUT_CAP:
                    raise _TooMuchOutput
    proc.stdout.close()
    proc.stderr.close()
    proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
    return b"".join(buffers[out_fd]), b"".join(buffers[err_fd])


def kill_tree(proc: Any) -> None:
    """End a child started with ``start_new_session`` and everything it spawned."""
    import signal

    try:
        if sys.platform == "win32":
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()  # the group is gone already; make sure the child is
    # Reap it; the pipes may still be held by nobody, so wait on the process alone.
    proc.wait()


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data[-65536:].decode("utf-8", "replace").splitlines()]
    lines = [ln for ln in lines if ln]
    return printable(lines[-1], limit=MAX_TEXT) if lines else ""


def clean_text(text: str) -> str:
    """A name or message read from a driver, a tool or a file, safe to print: control
    characters shown as escapes, at most ``MAX_TEXT`` characters."""
    return printable(text.strip(), limit=MAX_TEXT)


# PEP 440, written out (the appendix's pattern) so the fast path need not import
# packaging.version (14 ms of imports) only to reject a corrupt version string.
_PEP440 = r"""^\s*v?(?:\d+!)?\d+(?:\.\d+)*
    (?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?\d*)?
    (?:-\d+|[-_.]?(?:post|rev|r)[-_.]?\d*)?
    (?:[-_.]?dev[-_.]?\d*)?
    (?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?\s*$"""


def is_version(text: str) -> bool:
    """Whether ``text`` is a PEP 440 version (what the Environment model accepts).

    The common spellings (``2.13.0``, ``0.45.1``, ``2.13.0+cu126``: a release of digits,
    a local label of letters and digits) are accepted here; every other text is decided
    by the pattern, so ``re`` (half a process's start-up to import) is paid for only
    there, and the answer is always the pattern's."""
    release, plus, local = text.partition("+")
    if _digits(release.split(".")) and (
        not plus or all(p.isascii() and p.isalnum() for p in local.split("."))
    ):
        return True
    import re

    return re.match(_PEP440, text, re.VERBOSE | re.IGNORECASE) is not None


def _digits(parts: list[str]) -> bool:
    """Every part is ASCII digits (a subset of what ``\\d+`` matches)."""
    return all(p.isascii() and p.isdigit() for p in parts)


def gib(n_bytes: float) -> float:
    """Bytes as GiB, to two decimals: how the Environment JSON states ``memory_gb``
    (``inf`` for a number too large for a float, which ``clean_gpu`` then drops)."""
    try:
        return round(n_bytes / (1 << 30), 2)
    except OverflowError:
        return float("inf")


def line_end(text: str) -> str:
    """``text`` as a pattern's ``$`` sees it: without one final newline."""
    return text[:-1] if text.endswith("\n") else text


def _is_cc(text: str) -> bool:
    """``8.9``, ``12.0``: a compute capability (``^\\d{1,3}\\.\\d{1,3}$``; ``\\d`` is
    ``str.isdecimal``)."""
    parts = line_end(text).split(".")
    return len(parts) == 2 and all(1 <= len(p) <= 3 and p.isdecimal() for p in parts)


def is_gfx(text: str) -> bool:
    """``gfx90a``, ``gfx1100``: an AMD target (``^gfx[0-9a-f]{3,5}$``)."""
    text = line_end(text)
    hexes = text[3:]
    return text.startswith("gfx") and 3 <= len(hexes) <= 5 and all(c in _HEX for c in hexes)


_HEX = "0123456789abcdef"
#: More memory than any one GPU has (GiB): a larger number is a lying driver or tool.
MAX_MEMORY_GB = 1 << 20


def clean_gpu(gpu: dict[str, Json]) -> tuple[dict[str, Json], list[str]]:
    """The GPU with every fact that breaks the Environment contract dropped (so unknown),
    and what was dropped: a lying driver must not make ``check`` fail validation."""
    out: dict[str, Json] = {}
    dropped: list[str] = []
    for key, value in gpu.items():
        ok = True
        if key in ("name", "driver"):
            ok = value is None or isinstance(value, str)
            if ok and isinstance(value, str):
                value = clean_text(value)
        elif key == "cuda_cc":
            ok = value is None or (isinstance(value, str) and _is_cc(value))
        elif key == "gfx":
            ok = value is None or (isinstance(value, str) and is_gfx(value))
        elif key == "memory_gb":
            ok = isinstance(value, (int, float)) and 0 <= value <= MAX_MEMORY_GB
        if ok:
            out[key] = value
        else:
            dropped.append(f"{key} {printable(repr(value), limit=40)}")
    return out, dropped
