"""guard: a loader wraps its load; a plan that cannot run never reaches the engine, and an
engine error raised inside is re-raised with the rule, the cause and the fix attached.

The engine errors here are produced for real by the engines on this CPU machine (the
same programs as tests/corpus/tracebacks/*.cmd), never written by hand.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest
from envs import CPU_ONLY, H100_LINUX

from quantdoctor import (
    EngineError,
    IncompatiblePlanError,
    InvalidInputError,
    Plan,
    QuantDoctorError,
    QuantDoctorWarning,
    evaluate,
    guard,
    preflight,
    probe,
)
from quantdoctor.rules.matrix import load_matrix

QUANTO_BALANCED = {"engine": "quanto", "scheme": "qint8", "offload": "balanced"}
#: An environment that says only the OS: every rule about packages or GPUs is unknown.
ONLY_OS: dict[str, Any] = {"os": "linux"}


# ------------------------------------------------------------------------ preflight


def test_preflight_raises_incompatible_plan_error_carrying_the_verdict() -> None:
    with pytest.raises(IncompatiblePlanError) as caught:
        preflight(QUANTO_BALANCED, env=CPU_ONLY)
    verdict = caught.value.verdict
    assert verdict.status == "blocked"
    assert "quanto.offload.balanced" in {f.rule for f in verdict.findings}
    blocking = next(f for f in verdict.findings if f.rule == "quanto.offload.balanced")
    assert blocking.fix and blocking.message
    assert verdict.alternatives, "a blocked verdict proposes plans that pass"
    assert all(evaluate(p, CPU_ONLY).status in ("ok", "warn") for p in verdict.alternatives)
    text = str(caught.value)
    assert "quanto.offload.balanced" in text and blocking.fix in text


def test_incompatible_plan_error_is_a_runtime_error_and_a_quantdoctor_error() -> None:
    with pytest.raises(RuntimeError):
        preflight(QUANTO_BALANCED, env=CPU_ONLY)
    with pytest.raises(QuantDoctorError):
        preflight(QUANTO_BALANCED, env=CPU_ONLY)


def test_preflight_returns_the_verdict_of_a_plan_that_works() -> None:
    verdict = preflight(Plan(engine="torchao", scheme="int8wo"), env=CPU_ONLY)
    assert verdict.status == "ok"
    assert verdict.plan.engine == "torchao"


def test_preflight_of_an_unknown_plan_warns_with_quantdoctor_warning() -> None:
    with pytest.warns(QuantDoctorWarning, match="unknown") as caught:
        verdict = preflight({"engine": "quanto", "scheme": "qint8"}, env=ONLY_OS)
    assert verdict.status == "unknown"
    assert caught[0].filename == __file__, "the warning points at the caller's line"


def test_preflight_of_an_unknown_plan_raises_when_strict() -> None:
    with pytest.raises(IncompatiblePlanError) as caught:
        preflight({"engine": "quanto", "scheme": "qint8"}, env=ONLY_OS, strict=True)
    assert caught.value.verdict.status == "unknown"


def test_preflight_of_a_plan_with_a_caveat_warns() -> None:
    with pytest.warns(QuantDoctorWarning, match="nncf"):
        verdict = preflight({"engine": "nncf", "scheme": "int8_asym"}, env=CPU_ONLY)
    assert verdict.status == "warn"


def test_preflight_probes_this_machine_when_given_no_environment() -> None:
    plan = Plan(engine="torchao", scheme="int8wo")
    expected = evaluate(plan, probe())
    if expected.status == "blocked":
        with pytest.raises(IncompatiblePlanError):
            preflight(plan)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantDoctorWarning)
        assert preflight(plan).status == expected.status


def test_a_misspelled_plan_is_a_one_line_error_naming_the_facet() -> None:
    with pytest.raises(InvalidInputError, match="engine") as caught:
        preflight({"engine": "qaunto", "scheme": "qint8"}, env=CPU_ONLY)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)


def test_a_misspelt_field_of_a_plan_is_named_with_the_field_it_means() -> None:
    with pytest.raises(InvalidInputError) as caught:
        preflight({"engine": "quanto", "scheme": "qint8", "ofload": "none"}, env=CPU_ONLY)
    assert str(caught.value) == (
        "plan: ofload: not a field of Plan; valid values are engine, scheme, mode, "
        "offload, component, dtype (did you mean offload?)"
    )
    # a key from a hostile file is shown escaped, on one line
    with pytest.raises(InvalidInputError) as caught:
        preflight({"engine": "quanto", "scheme": "qint8", "\x1b[2J\n": 1}, env=CPU_ONLY)
    assert str(caught.value).startswith("plan: \\u001b[2J\\u000a: not a field of Plan;")
    # built by hand, the pydantic error says the same at the key
    with pytest.raises(ValueError, match=r"Offload\n  not a field of Plan; .*mean offload"):
        Plan(engine="quanto", scheme="qint8", Offload="none")  # type: ignore[call-arg]


def test_every_model_names_a_misspelt_field_where_it_is() -> None:
    from pydantic import ValidationError

    from quantdoctor import Environment

    with pytest.raises(ValidationError) as caught:
        Environment.model_validate({"os": "linux", "gpus": [{"vendr": "nvidia"}]})
    (error,) = caught.value.errors()
    assert (error["type"], error["loc"]) == ("unknown_field", ("gpus", 0, "vendr"))
    assert error["msg"].startswith("not a field of GPU; valid values are vendor, name")
    assert error["msg"].endswith("(did you mean vendor?)")
    # the other mistakes are reported beside it, as pydantic reports them
    # a misspelt key of a nested model and one of its parent: both, each where it is
    with pytest.raises(ValidationError) as caught:
        Environment.model_validate_json(
            '{"os": "linux", "pakages": {}, "gpus": [{"vendr": "nvidia"}], '
            '"torch": {"verson": "2"}}'
        )
    assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [
        ("unknown_field", ("torch", "verson")),
        ("unknown_field", ("gpus", 0, "vendr")),
        ("unknown_field", ("pakages",)),
    ]
    assert "did you mean version?" in caught.value.errors()[0]["msg"]
    with pytest.raises(ValidationError) as caught:
        Environment(os="linux", pakages={}, backend="cdua")  # type: ignore[call-arg]
    assert [e["loc"] for e in caught.value.errors()] == [("backend",), ("pakages",)]
    assert "did you mean packages?" in caught.value.errors()[1]["msg"]


# ---------------------------------------------------------------------- guard entry


def test_guard_blocks_before_the_body_runs() -> None:
    ran = []
    with pytest.raises(IncompatiblePlanError), guard(QUANTO_BALANCED, env=CPU_ONLY):
        ran.append(True)
    assert ran == []


def test_guard_as_a_context_manager_gives_the_verdict() -> None:
    with guard({"engine": "torchao", "scheme": "int8wo"}, env=CPU_ONLY) as verdict:
        assert verdict.status == "ok"


def test_guard_as_a_decorator_checks_on_every_call() -> None:
    calls = []

    @guard(QUANTO_BALANCED, env=CPU_ONLY)
    def load(path: str) -> str:
        calls.append(path)
        return path

    assert load.__name__ == "load", "the decorator keeps the function's name"
    for _ in range(2):
        with pytest.raises(IncompatiblePlanError):
            load("model.safetensors")
    assert calls == []

    @guard({"engine": "torchao", "scheme": "int8wo"}, env=CPU_ONLY)
    def load_ok(path: str) -> str:
        return path.upper()

    assert load_ok("a") == "A"


def test_guard_decorates_async_functions() -> None:
    @guard(QUANTO_BALANCED, env=CPU_ONLY)
    async def load() -> int:
        return 1

    @guard({"engine": "torchao", "scheme": "int8wo"}, env=CPU_ONLY)
    async def load_ok() -> int:
        return 2

    with pytest.raises(IncompatiblePlanError):
        asyncio.run(load())
    assert asyncio.run(load_ok()) == 2


def test_guard_with_strict_refuses_an_unknown_plan() -> None:
    with pytest.raises(IncompatiblePlanError):
        with guard({"engine": "quanto", "scheme": "qint8"}, env=ONLY_OS, strict=True):
            pass


# ------------------------------------------------------ real engine errors inside


def test_a_real_gguf_kquant_error_is_re_raised_as_engine_error_with_the_fix() -> None:
    np = pytest.importorskip("numpy")
    gguf = pytest.importorskip("gguf")
    plan = {"engine": "gguf", "scheme": "Q4_K", "mode": "prequantized"}
    with pytest.warns(QuantDoctorWarning), pytest.raises(EngineError) as caught:
        with guard(plan, env=CPU_ONLY):
            # the loader requantizes, which gguf-py cannot do for K-quants
            data = np.random.default_rng(0).random((256, 256), dtype=np.float32)
            gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q4_K)
    err = caught.value
    assert isinstance(err.__cause__, NotImplementedError)
    assert err.rules[0] == "gguf.mode.post.k-quants"
    fix = evaluate(Plan(engine="gguf", scheme="Q4_K", mode="post"), CPU_ONLY).findings[0].fix
    assert "gguf.mode.post.k-quants" in str(err) and fix in str(err)
    assert "cause: NotImplementedError" in str(err)


def test_a_real_nncf_tracing_error_is_re_raised_as_engine_error() -> None:
    torch = pytest.importorskip("torch")
    nncf = pytest.importorskip("nncf")

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(64, 64)

        def forward(self, x: Any) -> Any:
            return self.linear(x)

    with pytest.warns(QuantDoctorWarning), pytest.raises(EngineError) as caught:
        with guard({"engine": "nncf", "scheme": "int8_asym"}, env=CPU_ONLY):
            nncf.compress_weights(Model(), mode=nncf.CompressWeightsMode.INT8_ASYM)
    err = caught.value
    assert isinstance(err.__cause__, nncf.ValidationError)
    assert err.rules[0] == "nncf.torch.tracing"
    assert "example_input" in str(err), "the fix says how to give nncf its example"


def test_a_real_torchao_float8_error_on_cpu_is_re_raised_as_engine_error() -> None:
    torch = pytest.importorskip("torch")
    quant = pytest.importorskip("torchao.quantization")
    model = torch.nn.Sequential(torch.nn.Linear(64, 64)).to(torch.bfloat16)
    # The loader was told it runs on an H100, but runs on this CPU.
    with pytest.raises(EngineError) as caught:
        with guard({"engine": "torchao", "scheme": "float8dq"}, env=H100_LINUX):
            quant.quantize_(model, quant.Float8DynamicActivationFloat8WeightConfig())
    err = caught.value
    assert isinstance(err.__cause__, AssertionError)
    assert err.rules[0] == "torchao.float8dq.hardware"
    assert isinstance(err, RuntimeError) and isinstance(err, QuantDoctorError)


def test_an_unrecognised_engine_error_propagates_untouched() -> None:
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(8, 8)
    with pytest.raises(RuntimeError) as caught:
        with guard({"engine": "torchao", "scheme": "int8wo"}, env=CPU_ONLY):
            try:
                layer(torch.zeros(3, 5))  # a shape mismatch: no rule is about it
            except RuntimeError as err:
                original = err
                raise
    assert caught.value is original
    assert not isinstance(caught.value, QuantDoctorError)
    assert caught.value.__cause__ is None


def test_another_engines_signature_does_not_claim_the_error() -> None:
    # ``KeyError: None`` is gguf's offload bug; inside a quanto load it is something else.
    with pytest.raises(KeyError) as caught:
        with guard({"engine": "quanto", "scheme": "qint8"}, env=CPU_ONLY):
            {}[None]
    assert type(caught.value) is KeyError


def test_guard_never_swallows_interrupts_or_its_own_errors() -> None:
    with pytest.raises(KeyboardInterrupt):
        with guard({"engine": "torchao", "scheme": "int8wo"}, env=CPU_ONLY):
            raise KeyboardInterrupt
    own = InvalidInputError("No GPU found. A GPU is needed for quantization.")
    with pytest.raises(InvalidInputError) as caught:
        with guard({"engine": "bitsandbytes", "scheme": "nf4"}, env=CPU_ONLY):
            raise own
    assert caught.value is own


def test_a_decorated_loader_re_raises_a_real_diffusers_error() -> None:
    diffusers = pytest.importorskip("diffusers")

    @guard({"engine": "torchao", "scheme": "int8wo", "mode": "pre"}, env=CPU_ONLY)
    def load() -> Any:
        return diffusers.TorchAoConfig("int8wo")  # the string form diffusers 0.38 dropped

    with pytest.raises(EngineError) as caught:
        load()
    assert caught.value.rules[0] == "torchao.mode.pre.config-objects"
    assert isinstance(caught.value.__cause__, TypeError)
    assert "Int8WeightOnlyConfig" in str(caught.value), "the fix names the config class"


def test_the_loaders_own_except_clause_still_catches_an_explained_error() -> None:
    diffusers = pytest.importorskip("diffusers")
    caught: list[BaseException] = []
    try:
        with guard({"engine": "torchao", "scheme": "int8wo", "mode": "pre"}, env=CPU_ONLY):
            diffusers.TorchAoConfig("int8wo")
    except TypeError as err:  # what the loader caught before it was guarded
        caught.append(err)
    assert caught and isinstance(caught[0], EngineError)
    assert isinstance(caught[0].__cause__, TypeError)


#: an overlay rule that explains a bare KeyError: None (the built-in gguf offload rules do
#: only under the offloads they block, where preflight refuses the plan first)
_KEYERROR_OVERLAY = {
    "rules": [
        {
            "id": "test.keyerror-none",
            "select": {"engine": "gguf"},
            "severity": "warn",
            "message": "a KeyError: None from the GGUF loader",
            "source": "tests/test_guard.py",
            "signatures": [{"pattern": "KeyError: None"}],
        }
    ]
}


@pytest.mark.filterwarnings("ignore::quantdoctor.QuantDoctorWarning")
def test_an_explained_key_error_reads_as_text_not_as_a_quoted_key() -> None:
    matrix = load_matrix(extra=_KEYERROR_OVERLAY)
    with pytest.raises(EngineError) as caught:
        with guard({"engine": "gguf", "scheme": "Q8_0"}, env=H100_LINUX, matrix=matrix):
            raise KeyError(None)  # as GGUFParameter raises it under accelerate's hooks
    assert isinstance(caught.value, KeyError)
    assert str(caught.value).startswith("[test.keyerror-none]")
    assert "\\n" not in str(caught.value)


def test_a_bare_key_error_under_model_offload_is_not_blamed_on_other_offloads() -> None:
    # KeyError: None is what GGUF weights raise under sequential and balanced offload; with
    # model offload (which they survive) the text alone proves nothing and passes through
    with pytest.raises(KeyError) as caught:
        with guard({"engine": "gguf", "scheme": "Q8_0", "offload": "model"}, env=H100_LINUX):
            raise KeyError(None)
    assert not isinstance(caught.value, EngineError)


@pytest.mark.filterwarnings("ignore::quantdoctor.QuantDoctorWarning")
def test_an_explained_error_survives_pickling_as_an_engine_error() -> None:
    import pickle

    matrix = load_matrix(extra=_KEYERROR_OVERLAY)
    with pytest.raises(EngineError) as caught:
        with guard({"engine": "gguf", "scheme": "Q8_0"}, env=H100_LINUX, matrix=matrix):
            raise KeyError(None)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is EngineError
    assert (str(copy), copy.rules) == (str(caught.value), caught.value.rules)


def test_an_explained_error_names_the_facts_of_this_machine_not_placeholders() -> None:
    from diffusers import TorchAoConfig

    from quantdoctor import guard as guard_plan

    env = {"packages": {"diffusers": "0.42.1", "torchao": "0.18.0"}, "backend": "cpu",
           "torch": {"version": "2.13.0"}}
    plan = Plan(engine="torchao", scheme="int8wo", mode="pre")
    with pytest.raises(EngineError) as info, guard_plan(plan, env=env):
        TorchAoConfig("int8wo")
    text = str(info.value)
    assert "diffusers 0.42.1 takes TorchAoConfig" in text
    assert "{" not in text.splitlines()[0]


def test_a_refused_plan_error_survives_pickle_and_copy() -> None:
    # as multiprocessing and pytest-xdist carry an error from a worker
    import copy
    import pickle

    with pytest.raises(IncompatiblePlanError) as caught:
        preflight({"engine": "quanto", "scheme": "qint8", "offload": "balanced"}, env=H100_LINUX)
    for again in (pickle.loads(pickle.dumps(caught.value)), copy.copy(caught.value)):
        assert type(again) is IncompatiblePlanError
        assert str(again) == str(caught.value)
        assert again.verdict == caught.value.verdict


def test_evaluate_says_which_argument_is_wrong() -> None:
    # bad input to the public API is one InvalidInputError naming the argument, never an
    # AttributeError from deep inside; a plan may be a mapping, as preflight takes it
    plan = Plan(engine="quanto", scheme="qint8")
    assert (
        evaluate({"engine": "quanto", "scheme": "qint8"}, CPU_ONLY).plan
        == evaluate(plan, CPU_ONLY).plan
    )
    for args, kwargs, named in (
        (("quanto qint8", CPU_ONLY), {}, "plan: expected a Plan or a mapping"),
        ((plan, CPU_ONLY, "my.yaml"), {}, "matrix: expected a Matrix"),
        ((plan, CPU_ONLY), {"device": "1"}, "device: expected a GPU index"),
        ((plan, CPU_ONLY), {"alternatives": -1}, "alternatives: expected how many"),
        (
            ({"engine": "quanto", "scheme": "qint8", "offload": "x"}, CPU_ONLY),
            {},
            "plan: offload: 'x'",
        ),
    ):
        with pytest.raises(InvalidInputError) as caught:
            evaluate(*args, **kwargs)
        assert str(caught.value).startswith(named), caught.value
