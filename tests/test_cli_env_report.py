"""``quantdoctor env`` and the bare report, as a user runs them: whole processes."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from envs import H100_LINUX, RX6800_ZLUDA
from fixtures_probe.trees import write, write_dist, write_torch

from quantdoctor import Environment

#: Whatever a test wants bounded: a hang fails the test instead of stalling the suite.
LIMIT_S = 60


def quantdoctor(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantdoctor", *args],
        capture_output=True,
        text=True,
        timeout=LIMIT_S,
        env=env,
        cwd=cwd,
    )


#: Runs the CLI in-process through runpy, then prints which modules it imported.
IMPORTS_PROBE = """
import contextlib, io, json, runpy, sys
sys.argv = ["quantdoctor", *sys.argv[1:]]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        runpy.run_module("quantdoctor", run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)))
"""

ENGINES_AND_HEAVY = {
    "torch",
    "bitsandbytes",
    "optimum",
    "torchao",
    "gguf",
    "nncf",
    "openvino",
    "diffusers",
    "transformers",
    "accelerate",
    "triton",
    "numpy",
    "rich",
}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own cache dir (the parsed matrix, the reports), not the user's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("QUANTDOCTOR_CACHE_DIR", str(folder))
    return folder


def imported_roots(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS_PROBE, *args],
        capture_output=True,
        text=True,
        timeout=LIMIT_S,
    )
    assert proc.returncode == 0, proc.stderr
    return {m.split(".")[0] for m in json.loads(proc.stdout)}


def write_env(tmp_path: Path, name: str, env: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(env), encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------- env


def test_env_json_is_the_environment_contract_and_agrees_with_probe() -> None:
    from quantdoctor.doctor.probe import probe_dict

    proc = quantdoctor("env", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    Environment.model_validate(data)
    here = probe_dict()
    for key in ("os", "wsl", "arch", "python", "backend", "torch", "gpus", "triton", "packages"):
        assert data.get(key, "unknown") == here.get(key, "unknown"), key
    assert set(data["packages"]) >= {"bitsandbytes", "optimum-quanto", "torchao", "gguf", "nncf"}


def test_env_json_imports_no_torch_no_engine_no_rich_no_pydantic_no_yaml() -> None:
    roots = imported_roots("env", "--json")
    assert "quantdoctor" in roots
    assert not roots & (ENGINES_AND_HEAVY | {"pydantic", "yaml", "packaging"})


def test_the_bare_report_imports_no_torch_no_engine_and_no_rich_off_a_terminal() -> None:
    roots = imported_roots()
    assert "pydantic" in roots  # the verdicts are models; proves the report really ran
    assert not roots & ENGINES_AND_HEAVY


def test_a_repeated_report_is_read_back_without_pydantic_and_says_the_same(
    private_cache: Path,
) -> None:
    first = quantdoctor("--json")
    assert len(list(private_cache.glob("*/report-*.json"))) == 1
    again = quantdoctor("--json")
    fresh = quantdoctor("--json", "--no-cache")
    assert first.stdout == again.stdout == fresh.stdout
    assert first.returncode == again.returncode == fresh.returncode
    roots = imported_roots()
    assert not roots & (ENGINES_AND_HEAVY | {"pydantic", "yaml"})


def test_the_report_cache_key_changes_with_the_facts_flags_and_overlays(tmp_path: Path) -> None:
    import argparse

    from quantdoctor.cli.report import cache_key
    from quantdoctor.doctor.probe import probe_dict

    env = probe_dict()
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("rules: []\n", encoding="utf-8")
    args = argparse.Namespace(device=0, verbose=False, matrix=[str(overlay)])
    key = cache_key(env, args)
    assert cache_key(env, args) == key
    assert cache_key({**env, "backend": "cuda"}, args) != key
    assert cache_key(env, argparse.Namespace(device=0, verbose=True, matrix=[str(overlay)])) != key
    overlay.write_text("rules: []  # edited\n", encoding="utf-8")
    assert cache_key(env, args) != key


def test_an_unwritable_cache_dir_costs_the_cache_not_the_report(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("QUANTDOCTOR_CACHE_DIR", str(blocker / "cache"))
    proc = quantdoctor("--json")
    assert proc.returncode in (0, 1, 3) and proc.stderr == ""
    assert json.loads(proc.stdout)["summary"]["exit_code"] == proc.returncode


def test_env_text_shows_the_facts_and_exits_0() -> None:
    proc = quantdoctor("env")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("system")
    assert "backend" in proc.stdout and "python" in proc.stdout


def test_a_device_this_machine_does_not_have_is_bad_input() -> None:
    proc = quantdoctor("env", "--json", "--device", "7")
    assert proc.returncode == 2
    assert proc.stderr.startswith("quantdoctor: error: --device 7:")
    assert len(proc.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------- report


@pytest.mark.parametrize(
    ("env", "code"),
    [
        (H100_LINUX, 0),
        (RX6800_ZLUDA, 1),
        ({k: v for k, v in H100_LINUX.items() if k not in ("gpus", "backend")}, 3),
    ],
    ids=["all-engines-work", "an-engine-cannot-work", "gpus-and-backend-unknown"],
)
def test_the_report_exit_code_says_whether_every_installed_engine_works(
    tmp_path: Path, env: dict[str, Any], code: int
) -> None:
    path = write_env(tmp_path, "machine.json", env)
    text = quantdoctor("--env", path)
    assert text.returncode == code, text.stderr
    flat = " ".join(text.stdout.split())  # lines wrap to the terminal's width
    assert flat.startswith(f"quantdoctor report for {path}")
    as_json = quantdoctor("--env", path, "--json")
    assert as_json.returncode == code
    report = json.loads(as_json.stdout)
    assert report["summary"]["exit_code"] == code
    assert report["summary"]["text"] in flat  # both views of the same data


def test_verbose_shows_the_rule_ids_and_every_fact(tmp_path: Path) -> None:
    path = write_env(tmp_path, "zluda.json", RX6800_ZLUDA)
    proc = quantdoctor("--env", path, "-v")
    assert proc.returncode == 1
    assert "[bitsandbytes." in proc.stdout and "gpus[0].gfx" in proc.stdout
    report = json.loads(quantdoctor("--env", path, "-v", "--json").stdout)
    assert report["verdicts"] and all("status" in v for v in report["verdicts"])


def test_the_bare_report_on_this_machine_runs_and_its_code_matches_its_summary() -> None:
    proc = quantdoctor("--json")
    assert proc.returncode in (0, 1, 3), proc.stderr
    report = json.loads(proc.stdout)
    assert report["summary"]["exit_code"] == proc.returncode
    assert report["source"] == "probed"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        (json.dumps({**H100_LINUX, "gpu": []}), "gpu: unknown key"),
        (json.dumps({**H100_LINUX, "backend": "cudaa"}), "backend"),
        (
            json.dumps({**H100_LINUX, "pakages": {}, "gpus": [{"vendr": "nvidia"}]}),
            "gpus.0.vendr: unknown key; valid values are vendor",
        ),
    ],
    ids=["missing", "not-json", "typo-key", "bad-backend", "typo-keys-nested-and-top"],
)
def test_a_bad_env_file_is_one_line_naming_it_and_exit_2(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    proc = quantdoctor("--env", str(path))
    assert proc.returncode == 2, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "bad.json" in lines[0] and message in lines[0]


# ------------------------------------------------------------------ a broken site


@pytest.fixture
def broken_site(tmp_path: Path) -> dict[str, str]:
    """A site dir whose torch import hangs and whose engines crash on import."""
    site = tmp_path / "site"
    pkg = write_torch(site, "2.5.1+cu124", cuda="12.4")
    write(pkg / "__init__.py", "import time\nwhile True:\n    time.sleep(1)\n")
    write_dist(site, "bitsandbytes", "0.43.1")
    write(site / "bitsandbytes/__init__.py", "import os\nos._exit(139)\n")
    write_dist(site, "optimum-quanto", "0.2.4")
    write(site / "optimum/quanto/__init__.py", "raise RuntimeError('CUDA driver mismatch')\n")
    write_dist(site, "torchao", None)  # metadata without a version
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join([str(site), environ.get("PYTHONPATH", "")])
    return environ


def test_env_on_a_broken_site_reads_versions_from_metadata_without_importing(
    broken_site: dict[str, str], tmp_path: Path
) -> None:
    proc = quantdoctor("env", "--json", env=broken_site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["torch"] == {"version": "2.5.1+cu124", "cuda": "12.4", "hip": None, "xpu": False}
    assert data["packages"]["bitsandbytes"] == "0.43.1"
    assert data["packages"]["optimum-quanto"] == "0.2.4"
    assert "torchao" not in data["packages"]
    assert "no Version header" in data["notes"]["packages.torchao"]


def test_the_report_on_a_broken_site_explains_instead_of_crashing(
    broken_site: dict[str, str], tmp_path: Path
) -> None:
    proc = quantdoctor("-v", env=broken_site, cwd=tmp_path)
    assert proc.returncode in (1, 3), proc.stderr  # torchao's version is unknown at least
    assert "Traceback" not in proc.stderr
    assert "torch 2.5.1+cu124: CUDA 12.4 build" in proc.stdout
    assert "bitsandbytes 0.43.1" in proc.stdout
    assert "packages.torchao" in proc.stdout


def test_the_report_reads_an_environment_it_printed_itself(tmp_path: Path) -> None:
    data = json.loads(quantdoctor("env", "--json").stdout)
    path = write_env(tmp_path, "here.json", copy.deepcopy(data))
    probed = json.loads(quantdoctor("--json").stdout)
    replayed = json.loads(quantdoctor("--env", path, "--json").stdout)
    assert replayed["summary"] == probed["summary"]
    assert replayed["engines"] == probed["engines"]
