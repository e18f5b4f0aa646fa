"""The pytest plugin: the ``quantdoctor`` marker, its options and its fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from envs import CPU_ONLY, H100_LINUX, with_

import quantdoctor.doctor.probe as probe_module
from quantdoctor import Plan, Verdict, evaluate
from quantdoctor.rules.evaluate import evaluate_grid

pytest_plugins = ["pytester"]

NO_GPU_FACTS = with_(H100_LINUX)
del NO_GPU_FACTS["gpus"]  # the GPU is unknown: rules about it might hold


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # Inline runs re-import every plugin's modules; hypothesis' is not needed here.
    return pytester.runpytest("-p", "no:hypothesispytest", *args)


def _first(env: dict[str, Any], status: str) -> Verdict:
    """The first plan of the grid with ``status`` on ``env``, with its full verdict."""
    for verdict in evaluate_grid(env):
        if verdict.status == status:
            return evaluate(verdict.plan, env)
    raise AssertionError(f"no plan is {status} on this environment")


def _marker(plan: Plan) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in plan.model_dump().items())
    return f"@pytest.mark.quantdoctor({args})"


def _test_file(pytester: pytest.Pytester, plan: Plan) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        {_marker(plan)}
        def test_loads(quantdoctor_verdict, quantdoctor_env):
            assert quantdoctor_verdict.plan.engine == {plan.engine!r}
            assert quantdoctor_env.backend is not None
        """
    )


def _env_file(pytester: pytest.Pytester, env: dict[str, Any], name: str = "env.json") -> Path:
    path = pytester.path / name
    path.write_text(json.dumps(env))
    return path


def test_a_blocked_plan_is_skipped_with_the_verdicts_reason_and_rule_ids(
    pytester: pytest.Pytester,
) -> None:
    verdict = _first(CPU_ONLY, "blocked")
    _test_file(pytester, verdict.plan)
    result = _run(pytester, "-rs", f"--quantdoctor-env={_env_file(pytester, CPU_ONLY)}")
    result.assert_outcomes(skipped=1)
    blocking = [f for f in verdict.findings if f.severity == "block" and f.state == "holds"]
    text = result.stdout.str()
    assert f"{verdict.plan.label()} is blocked here" in text
    assert all(f.rule in text for f in blocking)
    assert blocking[0].message.rstrip(".") in text
    assert "SKIPPED [1] test_a_blocked_plan" in text  # at the test's location, not the plugin's


def test_a_plan_that_passes_here_runs_with_its_verdict_and_environment(
    pytester: pytest.Pytester,
) -> None:
    verdict = _first(H100_LINUX, "ok")
    pytester.makepyfile(
        f"""
        import pytest

        {_marker(verdict.plan)}
        def test_loads(quantdoctor_verdict, quantdoctor_env):
            assert quantdoctor_verdict.status == "ok"
            assert quantdoctor_env.gpus[0].cuda_cc == "9.0"

        @pytest.mark.quantdoctor({verdict.plan.engine!r}, {verdict.plan.scheme!r})
        def test_takes_engine_and_scheme_by_position(quantdoctor_verdict):
            assert quantdoctor_verdict.plan.scheme == {verdict.plan.scheme!r}

        def test_without_a_marker_has_no_verdict(quantdoctor_verdict):
            assert quantdoctor_verdict is None

        {_marker(verdict.plan)}
        class TestMarkedClass:
            def test_method(self, quantdoctor_verdict):
                assert quantdoctor_verdict.status == "ok"
        """
    )
    result = _run(pytester, f"--quantdoctor-env={_env_file(pytester, H100_LINUX)}")
    result.assert_outcomes(passed=4)


def test_an_unknown_plan_runs_and_is_skipped_with_quantdoctor_strict(
    pytester: pytest.Pytester,
) -> None:
    verdict = _first(NO_GPU_FACTS, "unknown")
    _test_file(pytester, verdict.plan)
    env = f"--quantdoctor-env={_env_file(pytester, NO_GPU_FACTS)}"
    _run(pytester, env).assert_outcomes(passed=1)

    strict = _run(pytester, env, "--quantdoctor-strict", "-rs")
    strict.assert_outcomes(skipped=1)
    unknown = [f for f in verdict.findings if f.state == "unknown"]
    text = strict.stdout.str()
    assert f"{verdict.plan.label()} is unknown here" in text
    assert unknown[0].rule in text and f"unknown: {', '.join(unknown[0].missing)}" in text


def test_quantdoctor_env_tells_on_a_cpu_machine_what_a_gpu_runner_would_run(
    pytester: pytest.Pytester,
) -> None:
    verdict = _first(CPU_ONLY, "blocked")
    assert evaluate(verdict.plan, H100_LINUX).passes  # a plan only the GPU machine runs
    _test_file(pytester, verdict.plan)
    gpu = _run(pytester, f"--quantdoctor-env={_env_file(pytester, H100_LINUX, 'gpu.json')}")
    gpu.assert_outcomes(passed=1)
    gpu.stdout.fnmatch_lines(["quantdoctor: evaluating against *gpu.json (cuda, NVIDIA H100*)"])
    cpu = _run(pytester, f"--quantdoctor-env={_env_file(pytester, CPU_ONLY, 'cpu.json')}")
    cpu.assert_outcomes(skipped=1)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "ERROR: --quantdoctor-env missing.json: no such file"),
        (
            '{"os": "linux",\n "backend": cuda}',
            "ERROR: --quantdoctor-env: *env.json:2: not valid JSON*",
        ),
        ('{"bakend": "cuda"}', "ERROR: --quantdoctor-env: *env.json: bakend: unknown key*backend*"),
        ('{"backend": "cdua"}', "ERROR: --quantdoctor-env: *backend: 'cdua' is not valid*cuda*"),
    ],
)
def test_a_bad_quantdoctor_env_file_is_a_one_line_usage_error(
    pytester: pytest.Pytester, content: str | None, expected: str
) -> None:
    name = "missing.json"
    if content is not None:
        name = "env.json"
        (pytester.path / name).write_text(content)
    pytester.makepyfile("def test_nothing(): pass")
    result = _run(pytester, f"--quantdoctor-env={name}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        (
            '@pytest.mark.quantdoctor(engine="quanto", scheme="nf4")',
            "*test_bad_marker.py::test_x: scheme: 'nf4' is not a quanto scheme*bitsandbytes*",
        ),
        (
            '@pytest.mark.quantdoctor(engine="quanto", scheme="qint8", offlaod="model")',
            "*unknown argument 'offlaod'; valid are engine, scheme, mode, offload*",
        ),
        ('@pytest.mark.quantdoctor(engine="quanto")', "*test_x: scheme required*"),
        (
            '@pytest.mark.quantdoctor(engine="quanto", scheme="qint8", offload="cpu")',
            "*test_x: *'cpu' is not valid*",
        ),
    ],
)
def test_a_bad_marker_fails_its_test_with_a_one_line_reason(
    pytester: pytest.Pytester, marker: str, expected: str
) -> None:
    pytester.makepyfile(test_bad_marker=f"import pytest\n\n{marker}\ndef test_x(): pass\n")
    result = _run(pytester, f"--quantdoctor-env={_env_file(pytester, H100_LINUX)}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([expected])
    assert "Traceback" not in result.stdout.str()
    assert "During handling" not in result.stdout.str()


def test_the_environment_is_probed_once_per_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = probe_module.probe

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(probe_module, "probe", counting)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.quantdoctor(engine="gguf", scheme="Q8_0")
        def test_a(quantdoctor_env):
            pass

        @pytest.mark.quantdoctor(engine="quanto", scheme="qint8")
        def test_b(quantdoctor_env, quantdoctor_verdict):
            assert quantdoctor_verdict.plan.engine == "quanto"

        def test_c(quantdoctor_env):
            assert quantdoctor_env.python is not None
        """
    )
    result = _run(
        pytester,
    )
    assert result.ret == pytest.ExitCode.OK
    assert len(calls) == 1


def test_the_marker_is_documented_in_pytest_markers(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.quantdoctor(engine, scheme, mode=None, offload='none'*--quantdoctor-strict*"]
    )


def test_a_run_without_a_marked_test_loads_none_of_quantdoctors_core(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_unmarked():
            loaded = [m for m in ("quantdoctor.rules.models", "pydantic") if m in sys.modules]
            assert loaded == []
            assert "quantdoctor.testing.plugin" in sys.modules
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:hypothesispytest", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
