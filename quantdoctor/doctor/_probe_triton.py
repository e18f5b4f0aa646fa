"""Whether Triton really compiles and runs a kernel here (``--deep``): in a subprocess.

Importing torch and compiling costs seconds (2.7 s on an H100, evidence 2026-11-24) and
may crash or hang on a broken install, so it runs in a child process with a timeout and
a fresh ``TRITON_CACHE_DIR`` (a cached kernel would prove nothing about the compiler).
"""

from __future__ import annotations

import os
import sys
import tempfile

from quantdoctor.doctor._probe_util import Notes, ProbeContext, kill_tree

DEEP_TIMEOUT = 180.0
_OK, _WRONG = "QUANTDOCTOR-TRITON-OK", "QUANTDOCTOR-TRITON-WRONG"

KERNEL_SCRIPT = f'''
import sys

kind, index = sys.argv[1], int(sys.argv[2])
import torch
import triton
import triton.language as tl


@triton.jit
def _add(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    y = tl.load(y_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, x + y, mask=mask)


device = torch.device(kind, index)
x = torch.arange(1000, dtype=torch.float32, device=device)
y = torch.ones_like(x)
out = torch.empty_like(x)
_add[(triton.cdiv(1000, 256),)](x, y, out, 1000, BLOCK=256)
print("{_OK}" if torch.equal(out.cpu(), (x + y).cpu()) else "{_WRONG}")
'''

#: The torch device type that Triton kernels run on, per backend.
DEVICE_KIND = {"cuda": "cuda", "rocm": "cuda", "zluda": "cuda", "xpu": "xpu"}


def probe_triton_works(
    ctx: ProbeContext, backend: str | None, device: int, notes: Notes, timeout: float
) -> bool | None:
    """``True``/``False`` from running the kernel; ``None`` (noted) when it could not tell."""
    kind = DEVICE_KIND.get(backend or "")
    if kind is None:
        notes["triton.works"] = f"Triton runs on a GPU backend; this one is {backend or 'none'}"
        return False
    with tempfile.TemporaryDirectory(prefix="quantdoctor-triton-") as tmp:
        script = os.path.join(tmp, "kernel.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(KERNEL_SCRIPT)
        env = {**ctx.environ, "TRITON_CACHE_DIR": os.path.join(tmp, "cache")}
        ran = _run_bounded([ctx.python_exe, script, kind, str(device)], env, timeout)
    if isinstance(ran, str):
        notes["triton.works"] = ran
        return None
    returncode, stdout, stderr = ran
    out = stdout.decode("utf-8", "replace")
    if _OK in out:
        return True
    if _WRONG in out:
        notes["triton.works"] = "the test kernel ran but computed a wrong sum"
        return False
    err_lines = [ln for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    last = err_lines[-1].strip()[:300] if err_lines else f"exit status {returncode}"
    notes["triton.works"] = f"the test kernel failed: {last}"
    return False


def _run_bounded(
    argv: list[str], env: dict[str, str], timeout: float
) -> tuple[int, bytes, bytes] | str:
    """``(status, stdout, stderr)``, or why there is none. The child leads its own process
    group, so a timeout also ends what it spawned (the compiler's ``ptxas``), which would
    otherwise hold the pipes open and the wait with them."""
    import subprocess

    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=sys.platform != "win32",
        )
    except OSError as err:
        return f"could not start {argv[0]}: {err.strerror or err}"
    from quantdoctor.doctor._probe_util import TOOL_OUTPUT_CAP, _communicate, _TooMuchOutput

    try:
        out, err_bytes = _communicate(proc, timeout)  # bounded in size as well as in time
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        return f"the test kernel did not finish in {timeout:g} s"
    except _TooMuchOutput:
        kill_tree(proc)
        return f"the test kernel printed more than {TOOL_OUTPUT_CAP >> 20} MiB"
    return proc.returncode, out, err_bytes
