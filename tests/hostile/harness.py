"""Run one hostile case in a sandbox and say how quantdoctor behaved.

A case runs ``python -m quantdoctor ARGS`` (or a Python snippet) in a fresh process whose
HOME, working directory, config dir, cache dir and PATH all lie in a sandbox folder.
Every file there is fingerprinted before and after: nothing outside quantdoctor's own
cache entries may change, vanish or appear. Planted code (a pickle, a fake tool) writes
``PWNED`` in the sandbox; if that file exists, code ran. The outcome is one of
``clean``, ``wrong`` (exit code, line or escape not as promised), ``traceback``,
``hang``, ``crash``, ``modified`` or ``code run``.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The checkout whose quantdoctor runs (another one's, to measure it before a change).
TARGET = Path(os.environ.get("QUANTDOCTOR_HOSTILE_TARGET", str(REPO)))
OUTCOMES = ("clean", "wrong", "traceback", "hang", "crash", "modified", "code run")
#: What may never reach a terminal raw: C0 controls but newline and tab, DEL, C1, and the
#: bidirectional overrides that reorder what a line seems to say.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class Sandbox:
    """The folders a case runs in; ``env`` is the child's whole environment."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.home = base / "home"
        self.work = base / "work"
        self.cache = base / "cache"
        self.config = base / "config"
        self.bin = base / "bin"
        self.root = base / "root"
        self.site = base / "site"
        self.pwned = base / "PWNED"
        for d in (self.home, self.work, self.cache, self.config, self.bin, self.root, self.site):
            d.mkdir(parents=True, exist_ok=True)
        self.env: dict[str, str] = {
            "PATH": f"{self.bin}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(self.home),
            "QUANTDOCTOR_CACHE_DIR": str(self.cache),
            "QUANTDOCTOR_CONFIG_DIR": str(self.config),
            "PYTHONPATH": str(TARGET),
            "LANG": "C.UTF-8",
            "COLUMNS": "120",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.cwd: Path = self.work
        #: Globs (relative to the sandbox) of files quantdoctor may rewrite or remove:
        #: its own cache entries, planted there as forgeries.
        self.own: list[str] = []

    def write(self, rel: str, data: str | bytes, mode: int | None = None) -> Path:
        path = self.base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        path.write_bytes(data)
        if mode is not None:
            path.chmod(mode)
        return path

    def no_passwd(self) -> None:
        """Make the child see a uid with no passwd entry (as in a bare container): HOME
        unset, and ``pwd.getpwuid`` failing as it does for such a uid."""
        self.env.pop("HOME", None)
        self.write(
            "shim/sitecustomize.py",
            (
                "import pwd\n"
                "def _missing(uid):\n"
                "    raise KeyError(f'getpwuid(): uid not found: {uid}')\n"
                "pwd.getpwuid = _missing\n"
            ),
        )
        self.env["PYTHONPATH"] = f"{self.base / 'shim'}{os.pathsep}{self.env['PYTHONPATH']}"

    def fifo(self, rel: str) -> Path:
        path = self.base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        return path

    def tool(self, name: str, script: str) -> Path:
        """An executable on the sandbox PATH (a shell script)."""
        return self.write(f"bin/{name}", "#!/bin/sh\n" + script + "\n", mode=0o755)


@dataclass
class Case:
    """One hostile input and what quantdoctor must do with it."""

    id: str
    family: str
    #: what the issue reports (``item``: the item number of #18)
    what: str
    setup: Callable[[Sandbox], list[str]]
    #: expected exit code
    exit: int
    #: the one line: a text that must appear in it (stderr when exit is 2, else stdout)
    line: str
    seconds: float = 15.0
    #: ``cli``: setup returns the arguments of ``quantdoctor``; ``python``: a snippet
    kind: str = "cli"
    #: who fixes it: cases of another teammate's part are expected to fail until it lands
    owner: str = "security"
    item: int = 0
    #: stream of the one line: "err" or "out"
    stream: str = ""
    #: the error must be one line (an error's whole stderr)
    one_line: bool = True
    stdin: bytes | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def where(self) -> str:
        return self.stream or ("err" if self.exit == 2 else "out")


@dataclass
class Result:
    case: Case
    outcome: str
    why: str
    code: int | None
    seconds: float
    out: str
    err: str


def _fingerprint(base: Path) -> dict[str, str]:
    """Every entry under ``base``: its kind and content hash (links: their target)."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(base, followlinks=False):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, base)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                found[rel] = "link:" + os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256()
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        digest.update(chunk)
                found[rel] = "file:" + digest.hexdigest() + f":{info.st_mode & 0o7777:o}"
            elif stat.S_ISDIR(info.st_mode):
                found[rel] = "dir"
            else:
                found[rel] = "special"
    return found


def _allowed(rel: str, sandbox: Sandbox, *, new: bool) -> bool:
    from fnmatch import fnmatch

    cache = os.path.relpath(sandbox.cache, sandbox.base)
    if new:
        return rel == cache or rel.startswith(cache + os.sep)
    return any(fnmatch(rel, pattern) for pattern in sandbox.own)


def run_case(case: Case, base: Path) -> Result:
    sandbox = Sandbox(base)
    args = case.setup(sandbox)
    before = _fingerprint(base)
    env = {**sandbox.env, **case.extra_env}
    if case.kind == "cli":
        argv = [sys.executable, "-m", "quantdoctor", *args]
    else:
        argv = [sys.executable, "-c", args[0], *args[1:]]
    stdout_target: int = subprocess.PIPE
    full_fd = -1
    if env.pop("_STDOUT", "") == "/dev/full":
        stdout_target = full_fd = os.open("/dev/full", os.O_WRONLY)
    closed = env.pop("_CLOSE_STDOUT", "")
    start = time.monotonic()
    proc = subprocess.Popen(
        argv if not closed else ["/bin/sh", "-c", 'exec "$@" >&-', "sh", *argv],
        cwd=sandbox.cwd,
        env=env,
        stdin=subprocess.PIPE if case.stdin is not None else subprocess.DEVNULL,
        stdout=stdout_target,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out_b, err_b = proc.communicate(case.stdin, timeout=case.seconds)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        import signal

        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        out_b, err_b = proc.communicate()
        code = None
    finally:
        if full_fd >= 0:
            os.close(full_fd)
    seconds = time.monotonic() - start
    out = (out_b or b"").decode("utf-8", "replace")
    err = (err_b or b"").decode("utf-8", "replace")
    after = _fingerprint(base)
    outcome, why = _classify(case, sandbox, before, after, code, out, err)
    return Result(case, outcome, why, code, seconds, out, err)


def _classify(
    case: Case,
    sandbox: Sandbox,
    before: dict[str, str],
    after: dict[str, str],
    code: int | None,
    out: str,
    err: str,
) -> tuple[str, str]:
    if sandbox.pwned.exists():
        return "code run", "planted code wrote PWNED"
    changed = [
        p for p in before if after.get(p) != before[p] and not _allowed(p, sandbox, new=False)
    ]
    added = [p for p in after if p not in before and not _allowed(p, sandbox, new=True)]
    if changed or added:
        return "modified", f"changed {changed[:3]} added {added[:3]}"
    if code is None:
        return "hang", f"still running after {case.seconds:g} s"
    if code < 0 or code >= 128:
        return "crash", f"exit {code}"
    if "Traceback (most recent call last)" in err:
        tail = [ln for ln in err.strip().splitlines() if ln.strip()]
        return "traceback", tail[-1][:200] if tail else ""
    if code != case.exit:
        return "wrong", f"exit {code}, expected {case.exit}: {_head(err or out)}"
    raw = RAW_CONTROL.search(out + err)
    if raw:
        return "wrong", f"raw control character {raw.group()!r} reached the terminal"
    text = err if case.where() == "err" else out
    if case.line not in text:
        return "wrong", f"{case.line!r} not in {case.where()}: {_head(text)}"
    if case.exit == 2 and case.one_line and err.count("\n") != 1:
        return "wrong", f"the error is {err.count(chr(10))} lines: {_head(err)}"
    return "clean", ""


def _head(text: str) -> str:
    return repr(text.strip()[:240])
