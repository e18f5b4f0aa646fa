"""Words users type for the vocabulary's (bnb, fp16, Q4_K_M, int8_weight_only, "win")
are understood; a number where a version-like string is expected is read as meant; a
bad Environment file is told in the JSON's words, not pydantic's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantdoctor import Plan, evaluate
from quantdoctor.cli import main
from quantdoctor.rules.envfile import parse_env
from quantdoctor.rules.models import Environment
from quantdoctor.rules.vocab import suggest

ENV = {"os": "linux", "backend": "cuda"}


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ({"engine": "bnb", "scheme": "4bit"}, ("bitsandbytes", "nf4")),
        ({"engine": "BitsAndBytes", "scheme": "NF4"}, ("bitsandbytes", "nf4")),
        ({"engine": "gguf", "scheme": "Q4_K_M"}, ("gguf", "Q4_K")),
        ({"engine": "gguf", "scheme": "q8_0"}, ("gguf", "Q8_0")),
        ({"engine": "torchao", "scheme": "int8_weight_only"}, ("torchao", "int8wo")),
        ({"engine": "optimum-quanto", "scheme": "int8"}, ("quanto", "qint8")),
    ],
)
def test_aliases_of_engines_and_schemes_are_understood(
    typed: dict[str, str], meant: tuple[str, str]
) -> None:
    plan = evaluate(Plan(**typed), ENV).plan
    assert (plan.engine, plan.scheme) == meant


def test_aliases_of_dtype_and_offload_are_understood() -> None:
    plan = Plan(engine="quanto", scheme="qint8", dtype="fp16", offload="enable_model_cpu_offload")
    assert (plan.dtype, plan.offload) == ("float16", "model")


def test_an_unknown_word_is_still_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid values are"):
        Plan(engine="quanto", scheme="qint8", dtype="fp12")


def test_win_suggests_windows_and_is_understood() -> None:
    assert "did you mean windows?" in suggest("win", ("linux", "windows", "darwin"))
    assert Environment.model_validate({"os": "win"}).os == "windows"


def test_cuda_cc_may_be_a_number() -> None:
    env = Environment.model_validate({"gpus": [{"vendor": "nvidia", "cuda_cc": 8.6}]})
    assert env.gpus is not None and env.gpus[0].cuda_cc == "8.6"
    assert Environment.model_validate({"gpus": [{"cuda_cc": 9}]}).gpus[0].cuda_cc == "9.0"  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"torch": "2.5.1"}, "torch: expected an object"),
        ({"gpus": {"name": "x"}}, "gpus: expected a list"),
        ({"gpus": [{"memory_gb": "lots"}]}, "gpus.0.memory_gb: expected a number"),
    ],
)
def test_a_bad_environment_is_told_in_the_jsons_words(data: object, said: str) -> None:
    with pytest.raises(Exception) as err:
        parse_env(data, "m.json")
    assert said in str(err.value)
    assert "Input should be" not in str(err.value) and "instance of" not in str(err.value)


def test_check_says_an_unknown_finding_as_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"os": "linux"}))
    assert main(["check", "--engine", "bnb", "--scheme", "nf4", "--env", str(path)]) == 3
    out = capsys.readouterr().out
    assert "unknown whether this holds" in out
    for line in out.splitlines():
        if line.strip().startswith("?") and "is not installed" in line:
            assert "unknown whether" in line
