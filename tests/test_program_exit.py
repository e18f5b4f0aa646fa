"""The ``quantdoctor`` program ends without the interpreter's teardown only when nothing
else would run at exit, and never loses output or an exit code doing so (``cli.end``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

LIMIT_S = 120


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["QUANTDOCTOR_CACHE_DIR"] = str(tmp_path / "cache")
    env.pop("PYTHONINSPECT", None)
    return env


def _python(
    tmp_path: Path, *argv: str, first_on_path: Path | None = None, stdout: Any = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    """This interpreter on ``argv`` in ``tmp_path`` (its cache there too), the output
    captured; ``first_on_path``: a folder put first on ``PYTHONPATH``."""
    env = _env(tmp_path)
    if first_on_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(first_on_path), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=LIMIT_S,
        env=env,
        cwd=tmp_path,
    )


def test_a_long_output_to_a_file_is_whole(tmp_path: Path) -> None:
    """Every buffered byte reaches the file before the process ends."""
    out = tmp_path / "report.json"
    with out.open("w") as f:
        done = _python(tmp_path, "-m", "quantdoctor", "--no-cache", "-v", "--json", stdout=f)
    report = json.loads(out.read_text(encoding="utf-8"))
    assert out.stat().st_size > 100_000  # larger than any buffer
    assert done.returncode == report["summary"]["exit_code"], done.stderr


#: The program on ``env --json``, run from code (as the console script runs it).
ENV_JSON = (
    "sys.argv = ['quantdoctor', 'env', '--json']\nfrom quantdoctor.cli import command\ncommand()\n"
)


def test_the_exit_code_is_mains_and_nothing_after_runs(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.argv = ['quantdoctor', 'explain', 'no rule says this']\n"
        "from quantdoctor.cli import command\n"
        "command()\n"
        "print('after the program')\n"
    )
    done = _python(tmp_path, "-c", code)
    assert done.returncode == 1, done.stderr  # explain: no rule matched
    assert "no rule explains this error" in done.stdout
    assert "after the program" not in done.stdout


def test_atexit_callbacks_still_run(tmp_path: Path) -> None:
    code = "import atexit, sys\natexit.register(lambda: print('atexit ran', flush=True))\n"
    done = _python(tmp_path, "-c", code + ENV_JSON)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("atexit ran")
    json.loads(done.stdout.rstrip()[: -len("atexit ran")])


def test_a_running_thread_is_waited_for(tmp_path: Path) -> None:
    code = (
        "import sys, threading, time\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    print('thread finished', flush=True)\n"
        "threading.Thread(target=late).start()\n"
    )
    done = _python(tmp_path, "-c", code + ENV_JSON)
    assert done.returncode == 0, done.stderr
    assert "thread finished" in done.stdout


def test_runpy_inside_another_program_gets_systemexit(tmp_path: Path) -> None:
    code = (
        "import runpy, sys\n"
        "sys.argv = ['quantdoctor', 'env', '--json']\n"
        "try:\n"
        "    runpy.run_module('quantdoctor', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code)\n"
    )
    done = _python(tmp_path, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("exit 0")


def test_python_m_ends_with_mains_code(tmp_path: Path) -> None:
    done = _python(tmp_path, "-m", "quantdoctor", "check", "--engine", "nope", "--scheme", "x")
    assert done.returncode == 2
    assert "nope" in done.stderr


HOST = """\
import atexit, gc, runpy, sys
if {atexit}:
    atexit.register(lambda: None)
sys.argv = ["quantdoctor", "env", "--json"]
try:
    runpy.run_module("quantdoctor", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    print("host goes on after exit", exc.code, "gc", gc.isenabled())
"""


def test_a_program_started_with_python_m_goes_on_after_quantdoctor(tmp_path: Path) -> None:
    """``python -m cProfile -m quantdoctor``, a debugger, a host module: quantdoctor runs
    inside another program that was itself started with ``-m``."""
    for with_atexit in (False, True):
        (tmp_path / "hostprog.py").write_text(HOST.format(atexit=with_atexit), encoding="utf-8")
        done = _python(tmp_path, "-m", "hostprog", first_on_path=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.rstrip().endswith("host goes on after exit 0 gc True"), done.stdout


def test_cprofile_of_python_m_quantdoctor_prints_its_profile(tmp_path: Path) -> None:
    done = _python(tmp_path, "-m", "cProfile", "-m", "quantdoctor", "env", "--json")
    assert done.returncode == 0, done.stderr
    assert "function calls" in done.stdout


WITNESS = """\
import sys
class _Witness:
    def __del__(self):
        sys.__stderr__.write("teardown ran\\n")
sys._quantdoctor_witness = _Witness()
"""


def test_python_m_quantdoctor_skips_the_teardown_and_a_host_does_not(tmp_path: Path) -> None:
    witness = tmp_path / "witness"
    witness.mkdir()
    (witness / "sitecustomize.py").write_text(WITNESS, encoding="utf-8")

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return _python(tmp_path, *argv, first_on_path=witness)

    assert "teardown ran" in run("-c", "pass").stderr  # the witness sees a teardown
    done = run("-m", "quantdoctor", "env", "--json")
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout)
    assert "teardown ran" not in done.stderr
    hosted = run("-m", "cProfile", "-m", "quantdoctor", "env", "--json")
    assert "teardown ran" in hosted.stderr and "function calls" in hosted.stdout
