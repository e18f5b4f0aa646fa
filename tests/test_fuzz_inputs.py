"""The env-file and overlay parsers, fuzzed: whatever the text, an Environment (or a
matrix) or one error naming the file; never another exception, never a hang.

As tests/test_fuzz_headers.py does for model headers: random text, values built from the
format's own pieces with the values a hostile writer would use, and real files with
bytes changed and cut. Failing inputs found here belong in tests/hostile/cases.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantdoctor.errors import EnvironmentFileError, MatrixError
from quantdoctor.rules.envfile import load_env_file, parse_env
from quantdoctor.rules.matrix import load_matrix, parse_matrix_text
from quantdoctor.rules.models import Environment
from quantdoctor.rules.untrusted import load_json

FUZZ = settings(
    max_examples=int(os.environ.get("QUANTDOCTOR_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

GOOD_ENV: dict[str, Any] = {
    "os": "linux",
    "wsl": False,
    "arch": "x86_64",
    "python": "3.11.7",
    "backend": "cuda",
    "torch": {"version": "2.6.0", "cuda": "12.4", "hip": None, "xpu": False},
    "gpus": [
        {"vendor": "nvidia", "name": "RTX 4090", "cuda_cc": "8.9", "gfx": None, "memory_gb": 24.0}
    ],
    "triton": {"version": "3.1.0", "works": True},
    "packages": {"optimum-quanto": "0.2.7", "diffusers": "0.32.2"},
    "notes": {"gpus": "from NVML"},
}
GOOD_OVERLAY = """rules:
  - id: fuzz.rule
    select: {engine: [quanto], offload: [balanced]}
    when: {all: [{fact: backend, is: cuda}, {fact: packages.optimum-quanto, version: ">=0.2"}]}
    severity: warn
    message: "a {gpu.name} message"
    fix: pip install x
    signatures:
      - pattern: "Some error text"
        source: here
    source: [overlay, "https://example.org"]
"""

#: What a lying writer puts where a value goes.
HOSTILE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["\x1b[2J", "9" * 200, "-1.5", "gfx99999999", "nan", "", "N/A"]),
)
JSON_VALUES = st.recursive(
    HOSTILE_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def env_outcome(text: str) -> Environment | None:
    try:
        return parse_env(load_json(text, "fuzz.json", EnvironmentFileError), "fuzz.json")
    except EnvironmentFileError as err:
        assert str(err).startswith("fuzz.json"), err
        assert "\n" not in str(err), err
        return None


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_an_environment_or_one_error(text: str) -> None:
    env_outcome(text)


@FUZZ
@given(JSON_VALUES)
def test_any_json_value_is_an_environment_or_one_error(value: Any) -> None:
    env_outcome(json.dumps(value))


@FUZZ
@given(
    st.sampled_from(["os", "backend", "torch", "gpus", "triton", "packages", "notes", "python"]),
    JSON_VALUES,
)
def test_a_good_env_with_one_hostile_value_is_an_environment_or_one_error(
    key: str, value: Any
) -> None:
    env = env_outcome(json.dumps({**GOOD_ENV, key: value}))
    if env is not None:  # what validates must evaluate
        from quantdoctor.rules.evaluate import evaluate
        from quantdoctor.rules.models import Plan

        evaluate(Plan(engine="quanto", scheme="qint8"), env)


@FUZZ
@given(st.sampled_from(["vendor", "name", "cuda_cc", "gfx", "memory_gb", "driver"]), JSON_VALUES)
def test_a_gpu_with_one_hostile_fact_is_an_environment_or_one_error(key: str, value: Any) -> None:
    gpu = {**GOOD_ENV["gpus"][0], key: value}
    env_outcome(json.dumps({**GOOD_ENV, "gpus": [gpu]}))


@st.composite
def mutated(draw: st.DrawFn, original: str) -> str:
    data = list(original)
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["set", "insert", "delete", "cut"]))
        if kind == "set" and data:
            data[at] = draw(st.characters())
        elif kind == "insert":
            data[at:at] = list(
                draw(st.sampled_from(["[", "{", '"', "&a ", "*a", "\n  - ", ": ", "<<: "]))
            )
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data = data[:at]
    return "".join(data)


@FUZZ
@given(mutated(json.dumps(GOOD_ENV, indent=1)))
def test_a_mutated_env_file_is_an_environment_or_one_error(text: str) -> None:
    env_outcome(text)


def test_an_env_file_on_disk_goes_through_the_same_checks(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_text('{"os": "linux", "os": "windows"}')
    with pytest.raises(EnvironmentFileError, match="duplicate key 'os'"):
        load_env_file(path)


# ------------------------------------------------------------------------- overlays


def overlay_outcome(text: str) -> None:
    try:
        parse_matrix_text(text, "fuzz.yaml")
    except MatrixError as err:
        assert str(err).startswith("fuzz.yaml"), err


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_an_overlay_or_an_error_naming_the_file(text: str) -> None:
    overlay_outcome(text)


@FUZZ
@given(mutated(GOOD_OVERLAY))
def test_a_mutated_overlay_is_an_overlay_or_an_error_naming_the_file(text: str) -> None:
    overlay_outcome(text)


@FUZZ
@given(
    st.sampled_from(["select", "when", "severity", "message", "fix", "source", "signatures", "id"]),
    JSON_VALUES,
)
def test_a_rule_with_one_hostile_field_loads_or_is_refused_naming_the_file(
    field: str, value: Any
) -> None:
    import yaml

    rule = yaml.safe_load(GOOD_OVERLAY)["rules"][0]
    rule[field] = value
    text = yaml.safe_dump({"rules": [rule]}, allow_unicode=True)
    overlay_outcome(text)


@FUZZ
@given(st.integers(1, 12), st.integers(2, 12))
def test_aliases_that_expand_past_the_limit_are_refused_quickly(levels: int, fan: int) -> None:
    lines = ["a0: &a0 [x]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    text = "\n".join(lines) + "\nrules: []\n"
    try:
        parse_matrix_text(text, "fuzz.yaml")
    except MatrixError as err:
        assert "fuzz.yaml" in str(err)
        assert fan**levels > 1000 or "expands" not in str(err)


def test_an_overlay_through_load_matrix_checks_its_schemes_too(tmp_path: Path) -> None:
    path = tmp_path / "o.yaml"
    path.write_text(GOOD_OVERLAY.replace("engine: [quanto]", "engine: [quanto], scheme: [nf4]"))
    with pytest.raises(MatrixError, match="nf4"):
        load_matrix(extra=str(path), defaults=False)
