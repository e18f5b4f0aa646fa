"""explain and guard on errors users posted in public issue trackers (tests/data/explain_corpus.yaml).

Every posted error is explained by the rule that names the cause its thread established,
first; with the plan and machine the thread reported where the text alone cannot tell.
Every unrelated error (a bad model id, a network error, a corrupt file, a missing tokenizer
dependency, an unquantized meta-tensor or device error, out of memory) is claimed by no rule.
The same texts raised inside a guarded load: the guard names the rule, or lets the
unrelated error pass untouched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from quantdoctor.errors import EngineError
from quantdoctor.gate import explain_exception
from quantdoctor.rules.evaluate import default_matrix
from quantdoctor.rules.explain import clean, explain, explain_full
from quantdoctor.rules.matrix import load_matrix
from quantdoctor.rules.models import Plan
from quantdoctor.rules.patterns import MAX_LINE, unsafe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from explain_corpus import case_text, split_context  # noqa: E402

CORPUS = Path(__file__).parent / "data" / "explain_corpus.yaml"


@cache
def corpus() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    return data


def _cases() -> list[Any]:
    return [pytest.param(c, id=c["id"]) for c in corpus()["cases"]]


def _unrelated() -> list[Any]:
    return [pytest.param(c, id=c["id"]) for c in corpus()["unrelated"]]


def _explain(case: dict[str, Any], with_context: bool) -> list[str]:
    facets, env = split_context(case.get("context") if with_context else None)
    return [m.rule for m in explain(case_text(case), context=facets or None, env=env or None)]


# ------------------------------------------------------------------- the corpus itself


def test_the_corpus_has_60_posted_errors_and_15_unrelated_ones() -> None:
    assert len(corpus()["cases"]) >= 60
    assert len(corpus()["unrelated"]) >= 15
    ids = [c["id"] for c in corpus()["cases"] + corpus()["unrelated"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", _cases())
def test_each_case_records_where_it_was_posted_and_what_the_thread_found(
    case: dict[str, Any],
) -> None:
    assert case["url"].startswith("https://github.com/")
    assert case["text"].strip() and case["cause"].strip() and case["fix"].strip()
    default_matrix().rule(case["rule"])  # the rule exists


# ------------------------------------------------------------------ explain, then guard


@pytest.mark.parametrize("case", _cases())
def test_a_posted_error_is_explained_by_its_cause_first(case: dict[str, Any]) -> None:
    got = _explain(case, bool(case.get("with_context")))
    if case.get("ambiguous"):
        # the text alone cannot tell: the cause is among the close candidates, the answer
        # says it is ambiguous, and the context the thread gave decides it
        full = explain_full(case_text(case))
        assert full.ambiguous and full.tells_apart, got
        assert case["rule"] in [m.rule for m in full.matches[:3]], got
        assert _explain(case, True)[:1] == [case["rule"]]
    else:
        assert got[:1] == [case["rule"]], got


@pytest.mark.parametrize("case", _cases())
def test_a_posted_error_is_named_with_the_plan_the_thread_reported(case: dict[str, Any]) -> None:
    assert _explain(case, True)[:1] == [case["rule"]]


def _guard_plan(case: dict[str, Any]) -> Plan:
    """The plan a guarded load would have had: the thread's engine (or the rule's)."""
    matrix = default_matrix()
    facets, _ = split_context(case.get("context"))
    rule = matrix.rule(case["rule"])
    engine = facets.get("engine") or (rule.select.engine[0] if rule.select.engine else "torchao")
    scheme = facets.get("scheme") or (
        rule.select.scheme[0] if rule.select.scheme else next(iter(matrix.engines[engine].schemes))
    )
    offload = facets.get("offload") or (rule.select.offload[0] if rule.select.offload else "none")
    return Plan(engine=engine, scheme=scheme, offload=offload)


@pytest.mark.parametrize("case", _cases())
def test_a_guarded_load_names_the_cause_of_a_posted_error(case: dict[str, Any]) -> None:
    err = RuntimeError(case_text(case))
    _, env = split_context(case.get("context"))
    matches = explain_exception(err, _guard_plan(case), env=env or None)
    assert [m.rule for m in matches][:1] == [case["rule"]]


@pytest.mark.parametrize("case", _unrelated())
def test_an_unrelated_error_is_claimed_by_no_rule(case: dict[str, Any]) -> None:
    assert explain(case["text"]) == []


@pytest.mark.parametrize("case", _unrelated())
def test_a_guarded_load_lets_an_unrelated_error_pass(case: dict[str, Any]) -> None:
    matrix = default_matrix()
    for engine, spec in matrix.engines.items():
        plan = Plan(engine=engine, scheme=next(iter(spec.schemes)))
        assert explain_exception(RuntimeError(case["text"]), plan) == [], engine


# ------------------------------------------------------------ evidence and ambiguity


def test_a_device_mismatch_raised_inside_quanto_is_quantos_not_nncfs() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "/venv/lib/python3.11/site-packages/optimum/quanto/nn/qlinear.py", line 50,'
        " in forward\n"
        "    return torch.nn.functional.linear(input, self.qweight)\n"
        "RuntimeError: Expected all tensors to be on the same device, but found at least two"
        " devices, cuda:0 and cpu!\n"
    )
    full = explain_full(text)
    assert full.matches and all(m.engines == ("quanto",) for m in full.matches)
    assert "traceback frames in" in " ".join(full.matches[0].evidence)
    assert full.matches[0].confidence != "high"  # a generic text is never certain
    assert full.ambiguous and any("--offload" in t for t in full.tells_apart)


def test_the_failing_call_says_which_offload_was_on() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "run.py", line 9, in <module>\n'
        "    pipe.enable_sequential_cpu_offload()\n"
        '  File "/venv/lib/python3.11/site-packages/optimum/quanto/tensor/weights/qbytes.py",'
        " line 140, in create\n"
        "TypeError: WeightQBytesTensor.__new__() missing 6 required positional arguments:"
        " 'axis', 'size', 'stride', 'data', 'scale', and 'activation_qtype'\n"
    )
    assert [m.rule for m in explain(text)][:1] == ["quanto.offload.sequential"]


def test_a_bare_key_error_is_never_claimed_alone_nor_with_full_confidence() -> None:
    assert explain("KeyError: None") == []
    found = explain("KeyError: None", context={"engine": "gguf", "offload": "sequential"})
    assert [m.rule for m in found] == ["gguf.offload.sequential"]
    assert found[0].confidence != "high" and found[0].generic


def test_one_text_with_two_causes_says_so_and_asks_what_tells_them_apart() -> None:
    text = "The installed version of bitsandbytes was compiled without GPU support."
    full = explain_full(text)
    rules = {m.rule for m in full.matches}
    assert {"bitsandbytes.install.native-lib", "bitsandbytes.platform.nvidia-only"} <= rules
    assert full.ambiguous
    assert any("env" in t for t in full.tells_apart)
    on_cpu = explain(text, env={"backend": "cpu", "packages": {"bitsandbytes": "0.42.0"}})
    assert on_cpu[0].rule == "bitsandbytes.platform.nvidia-only"
    with_gpu = explain(text, env={"backend": "cuda", "packages": {"bitsandbytes": "0.42.0"}})
    assert with_gpu[0].rule == "bitsandbytes.install.native-lib"


def test_json_gives_confidence_and_evidence_per_candidate() -> None:
    found = explain("Your GPU does not support Int8 Matmul!")
    d = found[0].to_dict()
    assert {"rule", "severity", "message", "fix", "source", "matched"} <= set(d)
    assert d["confidence"] in ("high", "medium", "low") and 0 <= d["probability"] <= 1
    assert isinstance(d["evidence"], list) and d["evidence"]


def test_a_message_never_shows_an_unknown_fact_as_a_value() -> None:
    found = explain("Your GPU does not support Int8 Matmul!")
    message = found[0].message
    assert "{" not in message and "(unknown)" in message
    assert "an unknown compute capability" not in message
    known = explain(
        "Your GPU does not support Int8 Matmul!",
        env={"gpus": [{"vendor": "nvidia", "name": "Tesla P40", "cuda_cc": "6.1"}]},
    )
    assert "Tesla P40" in known[0].message and "6.1" in known[0].message


# ----------------------------------------------------------------- signatures and rules

#: block rules with no signature, and why: quantdoctor's own refusals of a plan (no engine
#: runs, so no engine error exists) or failures no user thread has recorded a text for yet
NO_ERROR_TEXT = {
    "layerwise_casting.directml": "no report of the text torch-directml gives for a float8 tensor",
    "modelopt.nf4.post": "quantdoctor refuses the plan; modelopt has no NF4 preset to call",
    "modelopt.torch-min": "pip refuses the install (nvidia-modelopt requires torch>=2.8)",
    "mode.pre.needs-diffusers": "quantdoctor refuses the plan; nothing is loaded",
    "gguf.mode.pre": "quantdoctor refuses the plan; diffusers has no GGUF quantize-on-load",
    "nncf.mode.pre": "quantdoctor refuses the plan; no nncf config exists to pass",
    "nncf.mode.prequantized": "quantdoctor refuses the plan; no loader reads the files",
    "auto_round.mode.post": "quantdoctor refuses the plan; no adapter applies auto-round",
    "nunchaku_lite.mode.quantize": "quantdoctor refuses the plan; nothing quantizes to it here",
    "layerwise_casting.mode.load": "quantdoctor refuses the plan; there is no loading config",
    "gguf.component.all-in-one": "quantdoctor refuses the plan",
    "gguf.component.vae": "quantdoctor refuses the plan",
    "gguf.offload.model.old-diffusers": "the seed's claim for old diffusers; no text recorded",
    "bitsandbytes.platform.rocm": "no thread recorded (old wheels load the CPU library)",
    "bitsandbytes.platform.xpu": "no thread recorded",
    "bitsandbytes.platform.mps": "no thread recorded",
    "bitsandbytes.platform.directml": "no thread recorded",
    "quanto.torch.requires-2.4": "no thread recorded",
    "quanto.torch.requires-2.6": "no thread recorded",
    "quanto.platform.ipex": "no thread recorded",
    "quanto.platform.zluda": "no thread recorded",
    "torchao.torch.requires-2.5": "no thread recorded",
    "torchao.offload.sequential.accelerate-min": "no thread recorded",
    "torchao.platform.directml": "no thread recorded",
    "torchao.int4wo.cc": "no thread recorded",
    "torchao.torch.dropped": "no thread recorded",
    "torchao.int4wo.mslk-rocm": "its text is torchao.int4wo.mslk's; no ROCm thread recorded",
    "bitsandbytes.torch.requires": "no thread recorded",
}


def test_every_block_rule_carries_its_signature_or_says_why_it_has_none() -> None:
    bare = {r.id for r in load_matrix(defaults=False).rules if r.severity == "block"}
    bare = {i for i in bare if not load_matrix(defaults=False).rule(i).signatures}
    # a new block rule either carries its error text or is listed here with the reason
    assert bare <= set(NO_ERROR_TEXT), bare - set(NO_ERROR_TEXT)


def test_every_signature_cites_where_its_text_came_from() -> None:
    for r in load_matrix(defaults=False).rules:
        for sig in r.signatures:
            assert sig.source.strip(), f"{r.id}: {sig.pattern!r} has no source"


def test_rules_that_only_explain_are_never_applied_to_a_plan() -> None:
    from quantdoctor.rules.evaluate import evaluate

    only = {r.id for r in default_matrix().rules if r.signature_only}
    assert only == {
        "bitsandbytes.to-device",
        "install.module-mismatch",
        "nncf.jit.toolchain",
        "platform.fp8.scaled-mm",
        "platform.mps.float8",
        "torchao.int4wo.mps",
        "sdnq.not-registered",
    }
    for engine, spec in default_matrix().engines.items():
        for scheme in spec.schemes:
            verdict = evaluate(Plan(engine=engine, scheme=scheme), {"os": "linux"})
            assert not only & {f.rule for f in verdict.findings}


@pytest.mark.parametrize(
    ("rule_id", "env", "holds"),
    [
        ("bitsandbytes.install.native-lib", {"backend": "cuda", "packages": {"bitsandbytes": "0.42.0"}}, True),
        ("bitsandbytes.install.native-lib", {"backend": "cuda", "packages": {"bitsandbytes": "0.45.0"}}, False),
        ("bitsandbytes.install.int8-matmul", {"gpus": [{"vendor": "nvidia", "cuda_cc": "6.1"}], "packages": {"bitsandbytes": "0.36.0"}}, True),
        ("bitsandbytes.install.int8-matmul", {"gpus": [{"vendor": "nvidia", "cuda_cc": "6.1"}], "packages": {"bitsandbytes": "0.45.0"}}, False),
        ("bitsandbytes.platform.rocm-blocksize", {"backend": "rocm", "packages": {"bitsandbytes": "0.49.0"}}, True),
        ("bitsandbytes.platform.rocm-blocksize", {"backend": "rocm", "packages": {"bitsandbytes": "0.50.0"}}, False),
        ("transformers.load-in-kwargs", {"packages": {"transformers": "5.0.0"}}, True),
        ("transformers.load-in-kwargs", {"packages": {"transformers": "4.57.0"}}, False),
    ],
)  # fmt: skip
def test_a_new_rules_condition_holds_where_its_thread_says(
    rule_id: str, env: dict[str, Any], holds: bool
) -> None:
    from quantdoctor.rules.evaluate import to_facts

    rule = default_matrix().rule(rule_id)
    assert rule.condition.eval(dict(to_facts(env)), set()) is holds


# ------------------------------------------------------------------------ regex safety


def test_built_in_signatures_are_linear_time_on_a_1_mb_line() -> None:
    lines = [
        "a" * 1_000_000,
        "Torch backend does not support " * 30_000,
        "Error named symbol not found at line 1 in file " * 20_000,
        "QBytesTensor" * 80_000,
    ]
    for line in lines:
        start = time.perf_counter()
        explain(line)
        explain("Traceback (most recent call last):\n" + line + "\nRuntimeError: x")
        assert time.perf_counter() - start < 5.0, line[:40]


def test_a_long_line_is_searched_as_its_head_and_tail() -> None:
    line = "x" * 50_000 + " Your GPU does not support Int8 Matmul!"
    assert max(len(ln) for ln in clean(line).split("\n")) <= MAX_LINE + 3
    assert explain(line)[0].rule == "bitsandbytes.install.int8-matmul"


@pytest.mark.parametrize(
    "pattern", ["(a+)+$", "(a|aa)*b", "(x*)*", "a.*b.*c", "(a|a){0,30}", r"(a)\1", "(?:.*)+"]
)
def test_an_overlay_pattern_that_could_hang_is_refused_at_load(pattern: str) -> None:
    from quantdoctor.errors import MatrixError

    assert unsafe(pattern)
    overlay = {
        "rules": [
            {
                "id": "user.slow",
                "severity": "warn",
                "message": "m",
                "source": "s",
                "signatures": [{"pattern": pattern}],
            }
        ]
    }
    with pytest.raises(MatrixError, match="slowly"):
        load_matrix(extra=overlay)


def test_a_bounded_overlay_pattern_loads_and_matches() -> None:
    overlay = {
        "rules": [
            {
                "id": "user.bounded",
                "severity": "warn",
                "message": "m",
                "source": "s",
                "signatures": [{"pattern": r"my loader failed: [^\n]{0,200}code \d{1,5}"}],
            }
        ]
    }
    matrix = load_matrix(extra=overlay)
    assert [m.rule for m in explain("my loader failed: oops code 42", matrix)] == ["user.bounded"]


# ------------------------------------------------------------------------------- CLI


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantdoctor", "explain", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def test_cli_narrows_by_engine_and_offload() -> None:
    proc = cli("KeyError: None", "--engine", "gguf", "--offload", "sequential", "--json")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert [m["rule"] for m in found] == ["gguf.offload.sequential"]
    assert found[0]["confidence"] != "high"


def test_cli_reads_the_machine_from_an_env_file(tmp_path: Path) -> None:
    env = tmp_path / "env.json"
    env.write_text(json.dumps({"backend": "cpu", "packages": {"bitsandbytes": "0.42.0"}}))
    text = "The installed version of bitsandbytes was compiled without GPU support."
    proc = cli(text, "--env", str(env), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["rule"] == "bitsandbytes.platform.nvidia-only"


def test_cli_says_when_two_causes_fit_and_what_to_give() -> None:
    proc = cli("The installed version of bitsandbytes was compiled without GPU support.")
    assert proc.returncode == 0, proc.stderr
    assert "causes" in proc.stdout and "--env" in proc.stdout


def test_cli_out_of_memory_gets_memory_advice_not_a_rule_authors_hint() -> None:
    text = corpus()["unrelated"][0]["text"]
    proc = cli(text, "--engine", "bitsandbytes", "--scheme", "int8")
    assert proc.returncode == 1
    assert "out of memory" in proc.stdout.lower()
    assert "overlay" not in proc.stdout and "--matrix" not in proc.stdout


def test_cli_an_unknown_error_is_plainly_not_a_quantization_problem() -> None:
    proc = cli("OSError: model is not a local folder and is not a valid model identifier")
    assert proc.returncode == 1
    assert "not a known quantization problem" in proc.stdout.lower()
    assert "--matrix" not in proc.stdout
    assert "--matrix" in cli("OSError: no such model", "-v").stdout


@pytest.mark.parametrize("text", ["", "   \n\t\n"])
def test_cli_empty_input_is_an_input_error(text: str) -> None:
    assert cli(text).returncode == 2
    assert cli("-", stdin=text).returncode == 2


@pytest.mark.filterwarnings("ignore::quantdoctor.QuantDoctorWarning")
def test_guard_explains_an_engine_error_with_the_evidence_of_its_plan() -> None:
    from quantdoctor import guard

    plan = {"engine": "gguf", "scheme": "Q8_0", "offload": "group"}
    with pytest.raises(KeyError) as caught, guard(plan, env={"os": "linux"}):
        raise KeyError(None)  # gguf survives group offload: this is something else
    assert not isinstance(caught.value, EngineError)


def test_a_built_in_signature_of_a_generic_text_says_it_is_generic() -> None:
    phrases = [
        "Expected all tensors to be on the same device",
        "Cannot copy out of meta tensor",
        "KeyError: None",
        "no kernel image is available",
        "an illegal memory access",
        "Fatal Python error: Aborted",
    ]
    for r in load_matrix(defaults=False).rules:
        for sig in r.signatures:
            plain = sig.pattern.replace("\\", "")
            if any(p in plain for p in phrases) and len(plain) < 90:
                assert sig.generic, f"{r.id}: {sig.pattern!r} needs generic: true"


def test_an_overlay_condition_regex_that_could_hang_check_is_refused_at_load() -> None:
    from quantdoctor.errors import MatrixError

    overlay = {
        "rules": [
            {
                "id": "user.gpu-name",
                "when": {"fact": "gpu.name", "matches": "(a+)+$"},
                "severity": "warn",
                "message": "m",
                "source": "s",
            }
        ]
    }
    with pytest.raises(MatrixError, match="slowly"):
        load_matrix(extra=overlay)


def test_cli_takes_the_vocabularys_other_spellings() -> None:
    proc = cli("Your GPU does not support Int8 Matmul!", "--engine", "bnb", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["rule"] == "bitsandbytes.install.int8-matmul"
    assert cli("x", "--engine", "nonsense").returncode == 2
