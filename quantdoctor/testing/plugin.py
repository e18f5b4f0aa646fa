"""pytest plugin: skip a test whose quantization plan cannot run on this machine.

    @pytest.mark.quantdoctor(engine="quanto", scheme="qint8", offload="model")
    def test_loads_quantized(quantdoctor_verdict): ...

Blocked plans are skipped with the verdict's reason and rule ids; unknown ones run
(or are skipped with ``--quantdoctor-strict``). ``--quantdoctor-env FILE`` evaluates
against another machine's Environment JSON.

Loaded in every pytest run where quantdoctor is installed, so it imports nothing of
quantdoctor's core (pydantic, the matrix) until a marked test or a fixture needs it, and
probes the machine at most once per session.
"""

from __future__ import annotations

from typing import Any

import pytest

_ENV_KEY = pytest.StashKey[Any]()
_VERDICT_KEY = pytest.StashKey[Any]()
_FACETS = ("engine", "scheme", "mode", "offload", "component", "dtype")

MARKER_HELP = (
    "quantdoctor(engine, scheme, mode=None, offload='none', component='transformer', "
    "dtype='bfloat16'): skip the test where quantdoctor finds this quantization plan "
    "blocked (with the reason and rule ids); a plan whose compatibility is unknown runs, "
    "or is skipped with --quantdoctor-strict."
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("quantdoctor")
    group.addoption(
        "--quantdoctor-env",
        metavar="FILE",
        default=None,
        help="evaluate quantdoctor markers against this Environment JSON "
        "(from `quantdoctor env --json` on another machine) instead of probing this one",
    )
    group.addoption(
        "--quantdoctor-strict",
        action="store_true",
        default=False,
        help="also skip tests whose plan's compatibility is unknown here",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    path = config.getoption("--quantdoctor-env", None)
    if path:
        # A bad file is a usage error before any test runs, not a failure in the first one.
        config.stash[_ENV_KEY] = _load_env(str(path))


def pytest_report_header(config: pytest.Config) -> str | None:
    path = config.getoption("--quantdoctor-env", None)
    if not path or _ENV_KEY not in config.stash:
        return None  # probing here would slow down every run
    env = config.stash[_ENV_KEY]
    gpu = env.gpus[0].name if env.gpus else None
    where = ", ".join(str(x) for x in (env.backend, gpu) if x)
    return f"quantdoctor: evaluating against {path}" + (f" ({where})" if where else "")


def _load_env(path: str) -> Any:
    from pathlib import Path

    from quantdoctor.rules.envfile import load_env_file

    if not Path(path).is_file():
        raise pytest.UsageError(f"--quantdoctor-env {path}: no such file")
    try:
        return load_env_file(path)
    except ValueError as err:
        raise pytest.UsageError(f"--quantdoctor-env: {str(err).removeprefix('--env ')}") from None


def _session_env(config: pytest.Config) -> Any:
    if _ENV_KEY not in config.stash:
        from quantdoctor.doctor.probe import probe

        config.stash[_ENV_KEY] = probe()
    return config.stash[_ENV_KEY]


def _plan_from_marker(item: pytest.Item, marker: pytest.Mark) -> Any:
    from pydantic import ValidationError

    from quantdoctor.rules.models import Plan

    where = f"@pytest.mark.quantdoctor on {item.nodeid}"
    if len(marker.args) > len(_FACETS):
        pytest.fail(f"{where}: too many arguments; valid are {', '.join(_FACETS)}", pytrace=False)
    kwargs = dict(marker.kwargs)
    for name, value in zip(_FACETS, marker.args, strict=False):
        kwargs.setdefault(name, value)
    unknown = sorted(set(kwargs) - set(_FACETS))
    if unknown:
        pytest.fail(
            f"{where}: unknown argument {unknown[0]!r}; valid are {', '.join(_FACETS)}",
            pytrace=False,
        )
    missing = [f for f in ("engine", "scheme") if not kwargs.get(f)]
    if missing:
        pytest.fail(f"{where}: {' and '.join(missing)} required", pytrace=False)
    from quantdoctor.errors import InvalidInputError
    from quantdoctor.rules.evaluate import default_matrix

    try:
        plan = Plan(**{k: v for k, v in kwargs.items() if v is not None})
        return default_matrix().check_plan(plan)  # the engines and schemes in hand
    except ValidationError as err:
        first = err.errors()[0]
        problem = str(first["msg"]).removeprefix("Value error, ")
    except InvalidInputError as err:
        problem = str(err)
    # failed outside the handler: the report shows one line, not the exception it replaced
    pytest.fail(f"{where}: {problem}", pytrace=False)


def _verdict(item: pytest.Item) -> Any:
    marker = item.get_closest_marker("quantdoctor")
    if marker is None:
        return None
    if _VERDICT_KEY not in item.stash:
        from quantdoctor.advise.ranked import evaluate

        plan = _plan_from_marker(item, marker)
        item.stash[_VERDICT_KEY] = evaluate(plan, _session_env(item.config))
    return item.stash[_VERDICT_KEY]


def skip_reason(verdict: Any) -> str:
    """One line: the plan, its status, the rule ids that decided it, the first one's
    message and fix, and the nearest plan that works instead."""
    deciding = verdict.deciding
    ids = ", ".join(f.rule for f in deciding)
    text = f"quantdoctor: {verdict.plan.label()} is {verdict.status} here [{ids}]"
    if deciding:
        first = deciding[0]
        text += f": {first.message.rstrip('.')}"
        if first.missing:
            text += f" (unknown: {', '.join(first.missing)})"
        if first.fix:
            text += f"; fix: {first.fix}"
    if verdict.alternatives:
        text += f"; works instead: {verdict.alternatives[0].label()}"
    return text


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    verdict = _verdict(item)
    if verdict is None:
        return
    if verdict.status == "blocked" or (
        verdict.status == "unknown" and item.config.getoption("--quantdoctor-strict")
    ):
        # Reported at the test's own location, as pytest's skip marker is.
        raise pytest.skip.Exception(skip_reason(verdict), _use_item_location=True)


@pytest.fixture(scope="session")
def quantdoctor_env(request: pytest.FixtureRequest) -> Any:
    """The ``Environment`` the markers are evaluated against: probed once per session, or
    read from ``--quantdoctor-env FILE``."""
    return _session_env(request.config)


@pytest.fixture
def quantdoctor_verdict(request: pytest.FixtureRequest) -> Any:
    """The ``Verdict`` for this test's ``quantdoctor`` marker (``None`` without one)."""
    return _verdict(request.node)
