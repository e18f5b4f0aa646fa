"""The bare report as a new user meets it, on a few machines: this one (probed), a Windows
RTX 3060 of which only the OS and GPU are known, an AMD ROCm box and a Mac. Each
transcript is checked for properties, not pinned text: it fits a screen where the
machine is healthy, says nothing unknown as a fact, gives no fix that a ✗ in the same
report contradicts, shows no internal word, and exits as its marks say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from quantdoctor.doctor.report import offloads_named
from quantdoctor.rules.matrix import load_matrix

ROOT = Path(__file__).resolve().parent.parent
MACHINES = ROOT / "tests" / "data" / "machines"
#: Words of quantdoctor's own making, or of its tools, that mean nothing to a user.
INTERNAL = re.compile(
    r"\bseed\b|[A-Z]+@[A-Z]\b|\{plan\.|\{env\.|evidence/|tests/data|pydantic|valid dictionary"
    r"|instance of [A-Z]|Traceback"
)
#: Sentences that state a fact; each must not be said of a fact the machine left unknown.
FACT_WORDS = {
    "torch": re.compile(r"torch is not installed|PyTorch is not installed"),
    "packages": re.compile(r"\b(is|are) not installed\b(?!: )"),
}


def report(*args: str) -> subprocess.CompletedProcess[str]:
    """The report as a user runs it, from the folder holding the machines' files."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100", "PYTHONPATH": str(ROOT)}
    env.pop("QUANTDOCTOR_MATRIX", None)
    return subprocess.run(
        [sys.executable, "-m", "quantdoctor", "--no-cache", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=MACHINES,
    )


def marks(text: str) -> set[str]:
    return {ln[1] for ln in text.splitlines() if re.match(r"^\[.\] ", ln)}


def blocked_offloads(text: str) -> dict[str, set[str]]:
    """Per engine block, the offloads that a ✗ line of the report marks as failing."""
    out: dict[str, set[str]] = {}
    engine = ""
    for ln in text.splitlines():
        head = re.match(r"^\[.\] (\w+)", ln)
        if head:
            engine = head.group(1)
        m = re.match(r"^\s+✗ (.*)", ln)
        if m and engine:
            out.setdefault(engine, set()).update(re.findall(r"offload (\w+)", m.group(1)))
    return out


def fixes(text: str) -> list[tuple[str, str]]:
    out, engine = [], ""
    for ln in text.splitlines():
        head = re.match(r"^\[.\] (\w+)", ln)
        if head:
            engine = head.group(1)
        m = re.match(r"^\s+fix: (.*)", ln)
        if m:
            out.append((engine, m.group(1)))
    return out


CASES = [
    ("this machine", [], True),
    ("windows-rtx3060", ["--env", "windows-rtx3060.json"], False),
    ("amd-rocm", ["--env", "amd-rocm.json"], False),
    ("mac-m3", ["--env", "mac-m3.json"], False),
]


@pytest.mark.parametrize(("name", "args", "healthy"), CASES, ids=[c[0] for c in CASES])
def test_the_bare_report_holds_its_properties(name: str, args: list[str], healthy: bool) -> None:
    out = report(*args)
    text = out.stdout
    lines = text.splitlines()
    assert out.stderr == ""
    # 25 lines of frame, and a line (or two where it wraps) per engine beyond the first five
    budget = 25 + len(load_matrix(defaults=False).engines)
    assert len(lines) <= budget, f"{name}: {len(lines)} lines\n{text}"
    # exit code follows the marks of the left column
    seen = marks(text)
    expected = 1 if "✗" in seen else 3 if "?" in seen else 0
    assert out.returncode == expected, text
    if healthy:
        assert out.returncode == 0 and "✗" not in text, text
    # every ✗ and ! line has its fix under it
    for i, ln in enumerate(lines):
        if re.match(r"^\s+[✗!] ", ln):
            rest = lines[i + 1 : i + 6]
            assert any(r.strip().startswith("fix:") for r in rest), (ln, text)
    # nothing internal
    assert not INTERNAL.search(text), INTERNAL.search(text)
    # a fact the machine left unknown is never said as a fact
    data = json_report(*args)
    envd = data["environment"]
    if "torch" not in envd:
        assert not FACT_WORDS["torch"].search(text)
    # no fix sends the user to an offload that a ✗ of the same engine marks as failing
    blocked = blocked_offloads(text)
    for engine, fix in fixes(text):
        named = offloads_named(fix)
        assert not (named and named <= blocked.get(engine, set())), (engine, fix)


def json_report(*args: str) -> dict[str, object]:
    import json

    out = report("--json", *args)
    data: dict[str, object] = json.loads(out.stdout)
    return data


@pytest.mark.parametrize(("name", "args", "healthy"), CASES[1:], ids=[c[0] for c in CASES[1:]])
def test_verbose_reports_say_unknown_findings_as_unknown(
    name: str, args: list[str], healthy: bool
) -> None:
    text = report("-v", *args).stdout
    asked = [ln for ln in text.splitlines() if re.match(r"^\s+\? ", ln)]
    assert " ".join(text.split()).count("unknown whether this holds") == len(asked)
    assert not INTERNAL.search(text), text


def test_a_partial_environment_says_which_keys_to_add() -> None:
    text = " ".join(report("--env", "windows-rtx3060.json").stdout.split())
    assert 'add "packages", "torch"' in text
    assert "compute capability 8.6" in text and "assumed" in text
    # an NVIDIA card is not asked AMD or Intel facts
    assert "gfx" not in text and "intel" not in text.lower()


def test_the_rules_list_says_sources_and_placeholders_in_plain_words() -> None:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300", "PYTHONPATH": str(ROOT)}
    text = subprocess.run(
        [sys.executable, "-m", "quantdoctor", "rules"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    ).stdout
    assert "rules from" in text
    for line in text.splitlines():
        assert not re.search(r"\bseed\b|\{plan\.|\{packages\.|[A-Z]+@[A-Z]\b", line), line
        if "evidence/" in line or "benchmarks/results/" in line:
            assert "in quantdoctor's repository" in line or "in its repository" in line, line


def test_check_on_a_partial_nvidia_machine_asks_no_amd_or_intel_fact() -> None:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "quantdoctor", "check", "--engine", "bitsandbytes"]
        + ["--scheme", "nf4", "--env", "windows-rtx3060.json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=MACHINES,
    ).stdout
    assert "assumed gpus[0].cuda_cc: 8.6" in out
    for word in ("ROCm", "rocm", "gfx", "XPU", "IPEX", "ZLUDA", "MPS"):
        assert word not in out, (word, out)


def test_what_a_partial_file_implies_is_inferred_and_said_as_assumed() -> None:
    from quantdoctor.doctor.infer import cc_from_name, infer

    assert cc_from_name("NVIDIA GeForce RTX 3060 Laptop GPU") == "8.6"
    assert cc_from_name("NVIDIA A100-SXM4-80GB") == "8.0"
    assert cc_from_name("NVIDIA A10G") == "8.6"
    assert cc_from_name("NVIDIA GeForce GTX 1080 Ti") == "6.1"
    assert cc_from_name("NVIDIA GeForce RTX 5090") == "12.0"
    assert cc_from_name("Some Future GPU") is None
    env, assumed = infer({"os": "darwin", "gpus": [{"vendor": "apple", "name": "Apple M3"}]})
    assert env["backend"] == "mps" and env["triton"] is None and set(assumed) == {
        "backend",
        "triton",
    }
    # a stated fact (null included) is never overridden
    stated = {"os": "linux", "backend": "cpu", "gpus": [{"vendor": "nvidia", "cuda_cc": "7.5"}]}
    assert infer(stated) == (stated, {})
