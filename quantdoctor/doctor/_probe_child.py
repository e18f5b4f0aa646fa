"""Running a probe that calls into a driver library in a child process, with a timeout.

A driver library (NVML) runs native code in whatever process loads it: on a broken host
it can sleep forever, ``abort()``, or loop over a count it made up. The caller's process
must survive all three, so the call runs in a child that sends its answer back as JSON.
Where ``fork`` is safe (POSIX, one thread) the child is a fork (~2 ms); elsewhere a fresh
interpreter. Either way the child is killed at the deadline and a crash becomes a reason.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
from typing import Any

#: Bytes the child may answer with: a few GPUs' facts are a few hundred bytes.
ANSWER_CAP = 1 << 20


def run_in_child(target: str, arg: Any, timeout: float, label: str) -> Any:
    """``module:function``'s result for ``arg`` (JSON values), computed in a child; or a
    ``str`` saying why there is none (timed out, crashed, raised)."""
    module, _, func = target.partition(":")
    if _can_fork():
        return _forked(module, func, arg, timeout, label)
    return _spawned(module, func, arg, timeout, label)


def _can_fork() -> bool:
    if not hasattr(os, "fork") or sys.platform == "darwin":
        return False  # macOS frameworks are not fork-safe; Windows has no fork
    threading = sys.modules.get("threading")
    # Forking a process with other threads can deadlock the child on a lock they held.
    return threading is None or threading.active_count() == 1


def _forked(module: str, func: str, arg: Any, timeout: float, label: str) -> Any:
    fn = getattr(importlib.import_module(module), func)  # imported before the fork
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, then leave without running the parent's exit code
        code = 0
        try:
            os.close(r)
            view = memoryview(json.dumps({"ok": fn(arg)}).encode())
            while view:
                view = view[os.write(w, view) :]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    try:
        data, done = _read(r, timeout)
    finally:
        os.close(r)
    if not done:
        _kill(pid)
        return f"{label} did not answer within {timeout:g} s (a hung driver?)"
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"{label} crashed its process ({_signal_name(os.WTERMSIG(status))})"
    return _decode(data, label)


def _read(fd: int, timeout: float) -> tuple[bytes, bool]:
    """What ``fd`` gives until EOF, and whether EOF came before the deadline and the cap."""
    import select
    import time

    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    total = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"", False
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        total += len(chunk)
        if total > ANSWER_CAP:
            return b"", False


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.waitpid(pid, 0)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _decode(data: bytes, label: str) -> Any:
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "ok" not in answer:
        return f"{label} failed in its process without an answer"
    return answer["ok"]


def _spawned(module: str, func: str, arg: Any, timeout: float, label: str) -> Any:
    import subprocess

    from quantdoctor.doctor._probe_util import _communicate, _TooMuchOutput, kill_tree, start

    # The child imports what this process can: the same search path, quantdoctor's first.
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    search = [package_root, *(p for p in sys.path if p)]
    code = (
        "import json, sys\n"
        f"sys.path[:0] = {search!r}\n"
        f"from {module} import {func} as fn\n"
        "sys.stdout.write(json.dumps({'ok': fn(json.loads(sys.argv[1]))}))\n"
    )
    try:
        proc = start([sys.executable, "-c", code, json.dumps(arg)])
    except OSError as err:
        return f"{label}: could not start a process: {err.strerror or err}"
    try:
        out, _ = _communicate(proc, timeout)
    except (subprocess.TimeoutExpired, _TooMuchOutput):
        kill_tree(proc)
        return f"{label} did not answer within {timeout:g} s (a hung driver?)"
    if proc.returncode and proc.returncode < 0:
        return f"{label} crashed its process ({_signal_name(-proc.returncode)})"
    return _decode(out, label)
