"""The doctor report is built on plain data (no pydantic) and says what the models say.

``quantdoctor`` alone evaluates the whole grid and a recommendation; the command line
does it on the evaluator's plain verdicts (``VerdictRecord``) and ``plain_recommend``,
the public API on ``Verdict`` models and ``recommend``. Both must give the same report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from envs import (
    ARC_XPU,
    CPU_ONLY,
    DIRECTML_WINDOWS,
    GTX1080_WINDOWS,
    H100_LINUX,
    M2_MPS,
    RTX4090_LINUX,
    RX6800_ZLUDA,
    RX7900_ROCM,
)

from quantdoctor.advise.recommend import recommend
from quantdoctor.advise.section import recommendation_section
from quantdoctor.doctor.report import build_report
from quantdoctor.rules.core import Core
from quantdoctor.rules.evaluate import evaluate_grid
from quantdoctor.rules.facts import facts_from_json
from quantdoctor.rules.matrix import load_matrix
from quantdoctor.rules.records import VerdictRecord, grid_records

MACHINES = {
    "h100": H100_LINUX,
    "rtx4090": RTX4090_LINUX,
    "gtx1080-windows": GTX1080_WINDOWS,
    "cpu": CPU_ONLY,
    "rx7900-rocm": RX7900_ROCM,
    "rx6800-zluda": RX6800_ZLUDA,
    "arc-xpu": ARC_XPU,
    "m2-mps": M2_MPS,
    "directml": DIRECTML_WINDOWS,
}


def _plain(env: dict[str, Any], matrix: Any) -> tuple[list[VerdictRecord], dict[str, Any]]:
    facts = facts_from_json(env)
    return grid_records(facts, matrix), facts


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_the_plain_report_is_the_models_report(name: str) -> None:
    env = MACHINES[name]
    matrix = load_matrix(defaults=False)
    models = evaluate_grid(env, matrix)
    records, facts = _plain(env, matrix)
    assert [v.data for v in records] == [v.model_dump(mode="json") for v in models]
    for verbose in (False, True):
        want = build_report(env, models, matrix, verbose=verbose)
        got = build_report(env, records, matrix, verbose=verbose)
        assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
    section = recommendation_section(env, models, matrix)
    assert recommendation_section(env, records, matrix, facts=facts) == section
    # one evaluator for the grid and the recommendation, as the command line shares it
    core = Core(dict(facts), matrix)
    shared = grid_records(facts, matrix, core)
    assert [v.data for v in shared] == [v.data for v in records]
    assert recommendation_section(env, shared, matrix, facts=facts, core=core) == section


@pytest.mark.parametrize("name", ["h100", "cpu", "rx6800-zluda"])
def test_recommend_gives_plan_models_from_the_plain_recommendation(name: str) -> None:
    from quantdoctor.rules.models import Plan

    matrix = load_matrix(defaults=False)
    found = recommend(MACHINES[name], matrix=matrix, params=12_000_000_000)
    assert found.plans, name
    assert all(isinstance(e.plan, Plan) for e in (*found.plans, *found.does_not_fit))
    assert found.baseline is None or isinstance(found.baseline.plan, Plan)


def test_the_uncached_report_imports_no_pydantic(tmp_path: Any) -> None:
    code = (
        "import sys, io, contextlib\n"
        "from quantdoctor.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--no-cache', '--json'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'yaml')))\n"
    )
    # a cache folder of its own, warmed once: the matrix itself is parsed (with pydantic
    # and PyYAML) only when its cache entry is missing
    env = {"QUANTDOCTOR_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    import os

    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "[]", out.stdout
