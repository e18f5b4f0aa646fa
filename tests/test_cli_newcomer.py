"""What a new user meets first: --python, --version, completion, help that states defaults."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from quantdoctor.cli import main
from quantdoctor.doctor._probe_python import python_context

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script stands in")


def fake_python(tmp_path: Path, torch: str = "2.5.1", cuda: str = "12.4") -> Path:
    """A venv whose 'interpreter' is a script answering as Python would; its site-packages
    holds torch's metadata and version.py, and a torch/__init__.py that must never run."""
    site = tmp_path / "venv" / "lib" / "python3.10" / "site-packages"
    (site / f"torch-{torch}.dist-info").mkdir(parents=True)
    (site / f"torch-{torch}.dist-info" / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: torch\nVersion: {torch}\n"
    )
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text("raise SystemExit('torch was imported')\n")
    (site / "torch" / "version.py").write_text(
        f"__version__ = '{torch}'\ncuda = '{cuda}'\nhip = None\nxpu = False\n"
    )
    (site / "optimum_quanto-0.2.7.dist-info").mkdir()
    (site / "optimum_quanto-0.2.7.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: optimum-quanto\nVersion: 0.2.7\n"
    )
    exe = tmp_path / "venv" / "bin" / "python"
    exe.parent.mkdir()
    answer = json.dumps({"version": "3.10.14", "path": ["", str(site)], "platform": "linux"})
    exe.write_text(f"#!/bin/sh\necho '{answer}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_python_flag_probes_that_interpreters_packages_without_importing_torch(
    tmp_path: Path,
) -> None:
    exe = fake_python(tmp_path)
    for target in (str(exe), str(tmp_path / "venv")):  # the interpreter or its venv folder
        out = subprocess.run(
            [sys.executable, "-m", "quantdoctor", "env", "--json", "--python", target],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        env = json.loads(out.stdout)
        assert env["python"] == "3.10.14"
        assert env["torch"]["version"] == "2.5.1" and env["torch"]["cuda"] == "12.4"
        assert env["packages"]["optimum-quanto"] == "0.2.7"


def test_python_context_reads_only_sys_path_and_version(tmp_path: Path) -> None:
    ctx = python_context(str(fake_python(tmp_path)))
    assert ctx.python_version == "3.10.14"
    assert all(os.path.isdir(d) and d for d in ctx.site_dirs)


def test_python_flag_that_is_not_an_interpreter_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\nexit 7\n")
    broken.chmod(0o755)
    for bad in (str(tmp_path / "missing"), str(broken), str(tmp_path)):
        assert main(["env", "--python", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--python" in err


def test_version_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    from quantdoctor import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"quantdoctor {__version__}"


@pytest.mark.parametrize("shell", ["bash", "zsh", "powershell"])
def test_completion_prints_a_script_naming_every_command(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from quantdoctor.cli import COMMANDS

    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert all(c in script for c in COMMANDS) and "--offload" in script and "balanced" in script


def test_bash_completion_completes_commands_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    main(["completion", "bash"])
    script = capsys.readouterr().out
    show = '; _quantdoctor; echo "${COMPREPLY[@]}"\n'
    probe = (
        script
        + "COMP_WORDS=(quantdoctor check --offload ba); COMP_CWORD=3"
        + show
        + "COMP_WORDS=(quantdoctor rec); COMP_CWORD=1"
        + show
    )
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert out.stdout.split("\n")[:2] == ["balanced", "recommend"]


def test_check_help_states_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: none)", "(default: transformer)", "(default: bfloat16)"):
        assert default in text


def test_fixes_of_a_python_flag_report_install_into_that_python(tmp_path: Path) -> None:
    exe = fake_python(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "quantdoctor", "--no-cache", "--python", str(exe)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert f"for the Python at {exe}" in out.stdout
    for line in out.stdout.splitlines():
        if "pip install" in line:
            assert f"{exe} -m pip install" in line, line


def test_a_piped_matrix_keeps_each_row_on_one_line(tmp_path: Path) -> None:
    env = tmp_path / "m.json"
    env.write_text(json.dumps({"os": "windows", "gpus": [{"vendor": "nvidia", "name": "x"}]}))
    out = subprocess.run(
        [sys.executable, "-m", "quantdoctor", "matrix", "--env", str(env)],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "COLUMNS"},
    )
    rows = [r for r in out.stdout.splitlines()[1:] if r.strip()]
    assert len(rows) > 20
    assert not [r for r in rows if r.startswith(" ")]  # a wrapped row would continue indented
