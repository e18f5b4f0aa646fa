"""quantdoctor.testing's hypothesis strategies: plans, environments, supported_plans."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from envs import CPU_ONLY, H100_LINUX, with_
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample, Unsatisfiable

from quantdoctor import Environment, Plan, evaluate
from quantdoctor.errors import InvalidInputError
from quantdoctor.rules.evaluate import default_matrix
from quantdoctor.rules.vocab import BACKEND_ROWS, BACKENDS, OFFLOADS
from quantdoctor.testing import environments, plans, supported_plans
from quantdoctor.testing.strategies import FACETS, _passing

FEW = settings(max_examples=40, deadline=None)
TOP_KEYS = {"os", "wsl", "arch", "python", "backend", "torch", "gpus", "triton", "packages"}


def first(strategy: st.SearchStrategy[Any], condition: Any = lambda x: True) -> Any:
    """The first example drawn that meets ``condition`` (no shrinking: fast)."""
    quick = settings(database=None, phases=[Phase.generate], max_examples=500, derandomize=True)
    return find(strategy, condition, settings=quick)


def minimal(strategy: st.SearchStrategy[Any], condition: Any = lambda x: True) -> Any:
    """The simplest example that meets ``condition``: what hypothesis shrinks to."""
    # Without the explain phase: it replays variations, and ``find`` returns the last one.
    phases = [Phase.generate, Phase.shrink]
    # A rare condition (1 plan in 25) must be met for sure, not in 98% of runs: ask for many.
    return find(
        strategy,
        condition,
        settings=settings(database=None, phases=phases, max_examples=2000),
    )


def never(strategy: st.SearchStrategy[Any], condition: Any) -> None:
    """No example among a hundred meets ``condition``."""
    with pytest.raises(NoSuchExample):
        find(
            strategy,
            condition,
            settings=settings(database=None, max_examples=100, derandomize=True),
        )


def _engine_spec(plan: Plan) -> Any:
    return default_matrix().engines[plan.engine]


# --------------------------------------------------------------------------- plans


@FEW
@given(plans())
def test_plans_draw_only_schemes_and_modes_of_their_engine(plan: Plan) -> None:
    spec = _engine_spec(plan)
    assert plan.scheme in spec.schemes
    assert plan.mode in spec.modes


@FEW
@given(plans(engine="quanto", offload="balanced", dtype="float16"))
def test_plans_keep_every_facet_fixed_by_value(plan: Plan) -> None:
    assert (plan.engine, plan.offload, plan.dtype) == ("quanto", "balanced", "float16")


@FEW
@given(
    plans(
        scheme=st.sampled_from(["qint8", "nf4", "Q4_K"]),
        offload=st.sampled_from(["model", "group"]),
    )
)
def test_plans_take_a_strategy_for_a_facet_and_keep_schemes_of_the_engine(plan: Plan) -> None:
    assert plan.scheme in ("qint8", "nf4", "Q4_K")
    assert plan.scheme in _engine_spec(plan).schemes
    assert plan.offload in ("model", "group")


def test_a_fixed_facet_takes_the_spellings_the_command_line_takes() -> None:
    # bnb, fp16 and a scheme's alias with its engine, as check --engine bnb reads them
    never(plans(engine="bnb", dtype="fp16"), lambda p: (p.engine, p.dtype) != ("bitsandbytes", "float16"))
    assert first(plans(engine="gguf", scheme="q4_k_m")).scheme == "Q4_K"
    drawn = first(supported_plans(H100_LINUX, engine="bnb", scheme="int8"))
    assert (drawn.engine, drawn.scheme) == ("bitsandbytes", "int8")
    with pytest.raises(InvalidInputError, match=r"plans\(scheme='q4_k_m'\)"):
        plans(scheme="q4_k_m")  # a scheme's alias is its engine's: without one, not valid


def test_plans_with_a_fixed_scheme_draw_only_the_engine_that_has_it() -> None:
    assert first(plans(scheme="Q4_K")).engine == "gguf"
    never(plans(scheme="Q4_K"), lambda p: p.engine != "gguf")


def test_plans_with_a_fixed_mode_draw_only_engines_that_offer_it() -> None:
    never(plans(mode="pre"), lambda p: p.engine in ("gguf", "nncf"))


@FEW
@given(
    st.builds(
        lambda plan, env: (plan, env),
        plans(engine="gguf").filter(lambda p: p.offload != "none"),
        environments(backend="cuda"),
    ),
    plans().map(lambda p: p.label()),
)
def test_strategies_compose_with_builds_filter_and_map(
    pair: tuple[Plan, Environment], label: str
) -> None:
    plan, env = pair
    assert plan.engine == "gguf" and plan.offload != "none"
    assert env.backend == "cuda"
    assert label.split()[0] in default_matrix().engines


def test_plans_shrink_to_the_first_engine_its_first_scheme_and_the_defaults() -> None:
    first_engine = default_matrix().engine_names[0]
    scheme = next(iter(default_matrix().engines[first_engine].schemes))
    # drawn plans name their mode: the engine's default mode
    assert minimal(plans()) == Plan(engine=first_engine, scheme=scheme, mode="post")
    quanto = minimal(plans(), lambda p: p.engine == "quanto" and p.offload == "balanced")
    assert quanto == Plan(engine="quanto", scheme="qint8", mode="post", offload="balanced")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"scheme": "qint9"}, r"plans\(scheme='qint9'\): not valid; valid values are .*qint8"),
        ({"engine": "quant"}, r"plans\(engine='quant'\).*did you mean quanto"),
        ({"offload": "cpu"}, r"valid values are none, model, sequential, balanced, group"),
        ({"engine": "bitsandbytes", "scheme": "qint8"}, r"no engine has all of these"),
        ({"engine": "nncf", "mode": "pre"}, r"no engine has all of these"),
    ],
)
def test_plans_reject_a_bad_fixed_facet_naming_it_and_the_valid_values(
    kwargs: dict[str, str], expected: str
) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        plans(**kwargs)


# --------------------------------------------------------------------------- environments


@pytest.mark.parametrize("backend", BACKENDS)
def test_environments_reach_every_backend_fully_known_partial_and_without_torch(
    backend: str,
) -> None:
    def known(env: Environment) -> set[str]:
        return set(env.to_json_dict())

    assert first(environments(), lambda e: e.backend == backend).backend == backend
    on_it = environments(backend=backend)
    first(on_it, lambda e: known(e) >= TOP_KEYS and e.torch is not None)
    first(on_it, lambda e: not known(e) >= TOP_KEYS)  # partial: some fact unknown
    first(on_it, lambda e: "torch" in known(e) and e.torch is None)  # known absent


@FEW
@given(environments(partial=False))
def test_environments_draw_gpus_and_triton_as_the_backends_table_says(env: Environment) -> None:
    assert env.backend is not None and env.gpus is not None
    row = BACKEND_ROWS[env.backend]
    assert bool(env.gpus) is row.accelerator  # no GPU for cpu and openvino
    assert all(row.vendor in (None, g.vendor) for g in env.gpus)  # DirectML: any vendor's
    if not row.triton:
        assert env.triton is None  # Triton has no device kind on this backend


def test_environments_shrink_to_a_fully_known_linux_cuda_machine_with_every_engine() -> None:
    env = minimal(environments())
    assert set(env.to_json_dict()) >= TOP_KEYS
    assert (env.os, env.backend, env.wsl) == ("linux", "cuda", False)
    assert env.torch is not None and env.gpus
    assert all(env.packages[e] for e in ("bitsandbytes", "optimum-quanto", "torchao", "gguf"))


@settings(max_examples=60, deadline=None)
@given(environments(partial=False))
def test_full_environments_know_every_key_and_are_realistic(env: Environment) -> None:
    data = env.to_json_dict()
    assert set(data) >= TOP_KEYS
    vendor = env.gpus[0].vendor if env.gpus else None
    expected_vendor = {"cuda": "nvidia", "rocm": "amd", "zluda": "amd", "xpu": "intel"}
    expected_vendor["mps"] = "apple"
    if env.backend in expected_vendor:
        assert vendor == expected_vendor[env.backend]
    if env.backend in ("cpu", "openvino"):
        assert env.gpus == ()
    if vendor == "nvidia" and env.backend == "cuda":
        assert env.gpus and env.gpus[0].cuda_cc is not None
        assert env.torch is None or env.torch.cuda is not None
    if env.backend == "rocm":
        assert env.gpus and env.gpus[0].gfx is not None
        assert env.torch is None or env.torch.hip is not None
    if env.backend == "mps":
        assert (env.os, env.arch) == ("darwin", "arm64")


def test_environments_include_partial_and_known_absent_facts() -> None:
    def known(env: Environment) -> set[str]:
        return set(env.to_json_dict())

    first(environments(), lambda e: "torch" not in known(e))  # unknown
    first(environments(), lambda e: "torch" in known(e) and e.torch is None)  # known absent
    first(environments(), lambda e: e.gpus is not None and len(e.gpus) == 0)
    first(environments(), lambda e: "packages" in known(e) and "torchao" not in e.packages)
    first(environments(), lambda e: e.packages.get("optimum-quanto", "") is None)
    first(environments(), lambda e: bool(e.gpus) and "cuda_cc" not in e.to_json_dict()["gpus"][0])
    first(environments(), lambda e: e.torch is not None and "version" not in known_torch(e))


def known_torch(env: Environment) -> dict[str, Any]:
    torch: dict[str, Any] = env.to_json_dict()["torch"]
    return torch


@FEW
@given(
    environments(
        backend="rocm",
        os=st.sampled_from(["linux"]),
        packages={"bitsandbytes": None},
    )
)
def test_environments_keep_keys_fixed_by_value_or_strategy(env: Environment) -> None:
    assert env.backend == "rocm" and env.os == "linux"
    assert env.packages["bitsandbytes"] is None
    if env.gpus:  # a fixed backend draws the machines that have it
        assert env.gpus[0].vendor in (None, "amd")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"bakend": "cuda"}, r"environments\(bakend=...\): not an Environment key.*backend"),
        ({"backend": "cdua"}, r"backend: 'cdua' is not valid.*did you mean cuda"),
        ({"packages": {"torchao": "latest"}}, r"packages.torchao: 'latest' is not a version"),
    ],
)
def test_environments_reject_a_bad_fixed_key_naming_it(
    kwargs: dict[str, Any], expected: str
) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        environments(**kwargs)


# --------------------------------------------------------------------------- supported plans


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_supported_plans_evaluate_ok_or_warn(data: st.DataObject) -> None:
    env = data.draw(environments(), label="env")
    plan = data.draw(supported_plans(env), label="plan")
    assert evaluate(plan, env, alternatives=0).status in ("ok", "warn")


@settings(max_examples=60, deadline=None)
@given(plans(), st.sampled_from([H100_LINUX, CPU_ONLY]))
def test_supported_plans_draw_from_exactly_the_plans_that_pass(
    plan: Plan, env: dict[str, Any]
) -> None:
    facets = tuple(getattr(plan, f) for f in FACETS)
    passes = evaluate(plan, env, alternatives=0).passes
    assert (facets in _passing(env, default_matrix())) is passes


@FEW
@given(supported_plans(H100_LINUX, engine="torchao", offload=st.sampled_from(OFFLOADS[:2])))
def test_supported_plans_keep_fixed_facets_and_facet_strategies(plan: Plan) -> None:
    assert plan.engine == "torchao" and plan.offload in OFFLOADS[:2]
    assert evaluate(plan, H100_LINUX, alternatives=0).passes


def test_supported_plans_accept_an_environment_or_its_json() -> None:
    as_model = minimal(supported_plans(Environment.model_validate(CPU_ONLY)))
    assert as_model == minimal(supported_plans(CPU_ONLY))
    assert evaluate(as_model, CPU_ONLY, alternatives=0).passes


def test_supported_plans_draw_nothing_for_an_engine_that_is_not_installed() -> None:
    no_bnb = with_(H100_LINUX, packages={"bitsandbytes": None})

    @settings(max_examples=5, database=None)
    @given(supported_plans(no_bnb, engine="bitsandbytes"))
    def never_runs(plan: Plan) -> None:
        raise AssertionError(plan)

    with pytest.raises(Unsatisfiable):
        never_runs()


def test_supported_plans_reject_an_unknown_facet() -> None:
    with pytest.raises(TypeError, match=r"'engin'.*valid are engine, scheme"):
        supported_plans(H100_LINUX, engin="quanto")


def test_importing_quantdoctor_testing_imports_no_hypothesis_until_a_strategy_is_used() -> None:
    code = (
        "import sys, quantdoctor.testing as t; a = 'hypothesis' in sys.modules; t.plans; "
        "print(a, 'hypothesis' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_strategies_without_hypothesis_installed_say_what_to_install() -> None:
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "try:\n    from quantdoctor.testing import plans\n"
        "except ImportError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    expected = "quantdoctor.testing.plans needs hypothesis: pip install hypothesis"
    assert out.stdout.strip() == expected
