"""pytest plugin: skip a test whose quantization plan cannot run on this machine.

    @pytest.mark.quantdoctor(engine="quanto", scheme="qint8", offload="model")
    def test_loads_quantized(quantdoctor_verdict): ...

Blocked plans are skipped with the verdict's reason and rule ids; unknown ones run
(or are skipped with ``--quantdoctor-strict``). ``--quantdoctor-env FILE`` evaluates
against another machine's Environment JSON.
"""

from __future__ import annotations

from typing import Any

import pytest

_ENV_KEY = pytest.StashKey[Any]()
_FACETS = ("engine", "scheme", "mode", "offload", "component", "dtype")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("quantdoctor")
    group.addoption(
        "--quantdoctor-env",
        metavar="FILE",
        default=None,
        help="evaluate quantdoctor markers against this Environment JSON instead of probing",
    )
    group.addoption(
        "--quantdoctor-strict",
        action="store_true",
        default=False,
        help="also skip tests whose plan's compatibility is unknown here",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "quantdoctor(engine, scheme, mode=None, offload='none', component='transformer', "
        "dtype='bfloat16'): skip the test when quantdoctor finds the plan blocked here "
        "(unknown plans run unless --quantdoctor-strict).",
    )


def _session_env(config: pytest.Config) -> Any:
    if _ENV_KEY not in config.stash:
        path = config.getoption("--quantdoctor-env")
        if path:
            from quantdoctor.rules.envfile import load_env_file

            try:
                env = load_env_file(path)
            except ValueError as err:
                raise pytest.UsageError(f"--quantdoctor-env: {err}") from None
        else:
            from quantdoctor.doctor.probe import probe

            env = probe()
        config.stash[_ENV_KEY] = env
    return config.stash[_ENV_KEY]


def _plan_from_marker(marker: pytest.Mark) -> Any:
    from quantdoctor.rules.models import Plan

    kwargs = dict(marker.kwargs)
    for name, value in zip(_FACETS, marker.args):
        kwargs.setdefault(name, value)
    unknown = set(kwargs) - set(_FACETS)
    if unknown:
        raise pytest.UsageError(
            f"@pytest.mark.quantdoctor: unknown argument(s) {sorted(unknown)}; "
            f"valid are {', '.join(_FACETS)}"
        )
    try:
        return Plan(**{k: v for k, v in kwargs.items() if v is not None})
    except ValueError as err:
        raise pytest.UsageError(f"@pytest.mark.quantdoctor: {err}") from None


def _verdict(item: pytest.Item) -> Any:
    marker = item.get_closest_marker("quantdoctor")
    if marker is None:
        return None
    cached = getattr(item, "_quantdoctor_verdict", None)
    if cached is None:
        from quantdoctor.rules.evaluate import evaluate

        cached = evaluate(_plan_from_marker(marker), _session_env(item.config))
        item._quantdoctor_verdict = cached  # type: ignore[attr-defined]
    return cached


def _reason(verdict: Any) -> str:
    if verdict.status == "blocked":
        ids = [f.rule for f in verdict.findings if f.severity == "block" and f.state == "holds"]
    else:
        ids = [f.rule for f in verdict.findings if f.state == "unknown"]
    first = next((f for f in verdict.findings if f.rule in ids), None)
    why = f": {first.message}" if first else ""
    return f"quantdoctor: {verdict.plan.label()} is {verdict.status} here [{', '.join(ids)}]{why}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    verdict = _verdict(item)
    if verdict is None:
        return
    if verdict.status == "blocked":
        pytest.skip(_reason(verdict))
    if verdict.status == "unknown" and item.config.getoption("--quantdoctor-strict"):
        pytest.skip(_reason(verdict))


@pytest.fixture(scope="session")
def quantdoctor_env(request: pytest.FixtureRequest) -> Any:
    """The Environment the markers are evaluated against (probed once per session)."""
    return _session_env(request.config)


@pytest.fixture
def quantdoctor_verdict(request: pytest.FixtureRequest) -> Any:
    """The verdict for this test's ``quantdoctor`` marker (``None`` without one)."""
    return _verdict(request.node)
