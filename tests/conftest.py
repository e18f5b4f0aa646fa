from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# CI runs on a shared 2-core machine: no per-example deadlines, and a fixed sequence of
# examples so a run is repeatable (QUANTDOCTOR_HYPOTHESIS=explore draws new ones).
from hypothesis import settings

settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("explore", deadline=None)
settings.load_profile("explore" if os.environ.get("QUANTDOCTOR_HYPOTHESIS") == "explore" else "ci")

# Keep the user's own overlays out of the suite.
os.environ["QUANTDOCTOR_CONFIG_DIR"] = str(Path(__file__).parent / "_no_user_config")
os.environ.pop("QUANTDOCTOR_MATRIX", None)
# ... and the suite's caches out of the user's cache dir (one folder per run).
if "QUANTDOCTOR_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["QUANTDOCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="quantdoctor-test-cache-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any("gpu" in item.keywords for item in items):
        return  # importing torch costs seconds: only when a GPU test was collected
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# Every in-process evaluation records the rules that held: the matrix test that runs last
# checks each rule was exercised by one (or carries an example of its own). ``status`` and
# ``decide`` work from the machine's groups of rules (``Core.active``), not the rules that
# select the plan: each call is also checked against that plain definition here.
from quantdoctor.rules.core import Core, _status  # noqa: E402

EXERCISED: set[str] = set()
_applying = Core._applying
_core_status = Core.status
_core_decide = Core.decide


def _recording(self, plan):  # type: ignore[no-untyped-def]
    for rule, holds in _applying(self, plan):
        if holds:
            EXERCISED.add(rule.id)
        yield rule, holds


def _plain_decide(self, plan):  # type: ignore[no-untyped-def]
    applying = list(_recording(self, plan))
    order = {"block": 0, "warn": 2}
    found = sorted(  # stable: matrix order within each group
        [((1 if not holds else order[r.severity]), r.id) for r, holds in applying
         if r.severity != "info"],
        key=lambda t: t[0],
    )  # fmt: skip
    return _status((r.severity, holds) for r, holds in applying), [i for _, i in found]


def _checked_status(self, plan):  # type: ignore[no-untyped-def]
    got = _core_status(self, plan)
    assert got == _plain_decide(self, plan)[0], (plan, got)
    return got


def _checked_decide(self, plan):  # type: ignore[no-untyped-def]
    got = _core_decide(self, plan)
    assert got == _plain_decide(self, plan), (plan, got)
    return got


Core._applying = _recording  # type: ignore[method-assign]
Core.status = _checked_status  # type: ignore[method-assign]
Core.decide = _checked_decide  # type: ignore[method-assign]
LAST = "test_every_rule_is_exercised_by_an_evaluation"


def pytest_collection_finish(session: pytest.Session) -> None:
    # the check of what the session exercised runs after everything else
    last = [i for i in session.items if i.name == LAST]
    session.items[:] = [i for i in session.items if i.name != LAST] + last
