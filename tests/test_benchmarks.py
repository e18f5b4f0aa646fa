"""The benchmarks can fail: their goals are judged on the figures (benchmarks/_bench.py),
a missed or unmeasured goal makes the run exit 1, and the table says which. Figures here
are literals; nothing is timed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import _bench as B

PASS, ENV, TTY = "baseline: python -c pass", "quantdoctor: env --json", "env --json [tty]"
PEER = "peer: torchruntime info"


def figures(**ms: float) -> dict[str, dict[str, float]]:
    keys = {"base": PASS, "env": ENV, "tty": TTY, "peer": PEER}
    return {keys[k]: {"min_ms": v, "median_ms": v * 1.5, "n": 3} for k, v in ms.items()}


WITHIN_3X = B.Goal("env --json within 3x of python -c pass", ENV, "within", 3.0, PASS)
FASTER = B.Goal("env --json faster than torchruntime info", ENV, "faster", 1.0, PEER)
TTY_GOAL = B.Goal("env --json on a terminal within 1.2x of piped", TTY, "within", 1.2, ENV)
UNDER = B.Goal("env --json under 50 ms", ENV, "under_ms", 50.0)


def test_a_figure_within_its_limit_is_met_and_the_run_passes() -> None:
    verdicts = B.judge(
        [WITHIN_3X, FASTER, TTY_GOAL, UNDER], figures(base=10, env=29, tty=34, peer=80)
    )
    assert [v["status"] for v in verdicts] == ["met"] * 4
    assert verdicts[0]["value"] == pytest.approx(2.9)
    assert verdicts[1]["value"] == pytest.approx(80 / 29)
    assert B.exit_code(verdicts) == 0


def test_a_figure_past_its_limit_is_missed_and_the_run_fails() -> None:
    verdicts = B.judge(
        [WITHIN_3X, FASTER, TTY_GOAL, UNDER], figures(base=10, env=47, tty=60, peer=40)
    )
    assert [v["status"] for v in verdicts] == ["missed", "missed", "missed", "met"]
    assert verdicts[0]["figure"] == "4.70x python -c pass (goal <= 3x)"
    assert "faster than torchruntime info (goal >= 1x)" in verdicts[1]["figure"]
    assert B.exit_code(verdicts) == 1


def test_the_limit_itself_is_met() -> None:
    verdicts = B.judge([WITHIN_3X, FASTER], figures(base=10, env=30, peer=30))
    assert [v["met"] for v in verdicts] == [True, True]


def test_goals_are_judged_on_the_minimum_not_the_median() -> None:
    figs = figures(base=10, env=25)
    figs[ENV]["median_ms"] = 90.0
    assert B.judge([WITHIN_3X], figs)[0]["status"] == "met"


def test_a_peer_that_could_not_be_installed_leaves_its_goal_unmeasured_and_fails_the_run() -> None:
    figs = {**figures(base=10, env=20), PEER: B.unavailable("pip install torchruntime failed")}
    verdicts = B.judge([WITHIN_3X, FASTER], figs)
    assert [v["status"] for v in verdicts] == ["met", "unmeasured"]
    assert "pip install torchruntime failed" in verdicts[1]["figure"]
    assert B.exit_code(verdicts) == 1
    assert B.judge([UNDER], {})[0]["status"] == "unmeasured"


def test_no_goals_is_not_a_pass() -> None:
    assert B.exit_code([]) == 1


def test_a_goal_of_an_unknown_kind_or_without_its_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown goal kind"):
        B.judge([B.Goal("g", ENV, "about", 1.0, PASS)], figures(base=1, env=1))
    with pytest.raises(ValueError, match="needs a reference"):
        B.judge([B.Goal("g", ENV, "within", 1.0)], figures(base=1, env=1))


def test_the_table_prints_each_verdict_beside_its_figure() -> None:
    figs = {**figures(base=10, env=47, tty=40), PEER: B.unavailable("no registry")}
    verdicts = B.judge([WITHIN_3X, TTY_GOAL, FASTER], figs)
    text = B.format_table(figs, verdicts, baseline=PASS)
    row = next(line for line in text.splitlines() if line.startswith(ENV))
    assert "4.70" in row and "MISS: 4.70x python -c pass (goal <= 3x)" in row
    peer = next(line for line in text.splitlines() if line.startswith(PEER))
    assert peer.endswith("not measured: no registry")
    assert "  N/A   env --json faster than torchruntime info" in text
