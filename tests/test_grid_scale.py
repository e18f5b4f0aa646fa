"""The grid at scale gives what the plain definition gives: a plan's status and rule ids
from the rules that select it and hold (or, blocking, might) on the machine; ``matrix
--json`` byte for byte what ``json.dumps(indent=2)`` writes; an overlay of many rules
that select every plan changes no verdict but the ones its rules make."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import envs as suite_envs
import pytest

from quantdoctor.cli.matrix import grid_json
from quantdoctor.rules.core import Core, Facets, grid, grid_index
from quantdoctor.rules.facts import facts_from_json
from quantdoctor.rules.matrix import Matrix, load_matrix

DATA = Path(__file__).parent / "data" / "machines"
_ORDER = {"block": 0, "warn": 2}


def machines() -> dict[str, dict[str, Any]]:
    """Every machine the suite writes: tests/envs.py's literals and tests/data/machines."""
    found = {
        name.lower(): value
        for name, value in vars(suite_envs).items()
        if name.isupper() and isinstance(value, dict) and "packages" in value
    }
    for path in sorted(DATA.glob("*.json")):
        found[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return found


def plain_decide(matrix: Matrix, facts: dict[str, Any], plan: Facets) -> tuple[str, list[str]]:
    """The definition: the rules that select the plan, hold or (blocking) might, but info."""
    applying = []
    for rule in matrix.compiled:
        if rule.signature_only or not rule.selects(plan):
            continue
        holds = rule.condition.eval(facts, set())
        if holds is True or (holds is None and rule.severity == "block"):
            applying.append((rule, holds))
    found = sorted(
        [(1 if not holds else _ORDER[r.severity], r.id) for r, holds in applying
         if r.severity != "info"],
        key=lambda t: t[0],
    )  # fmt: skip
    groups = {g for g, _ in found}
    status = next((s for g, s in ((0, "blocked"), (1, "unknown"), (2, "warn")) if g in groups),
                  "ok")  # fmt: skip
    return status, [rule_id for _, rule_id in found]


def assert_as_defined(matrix: Matrix) -> None:
    """On every machine, every grid plan's status (alone, or after decide) and decide are
    the definition's, and the alternatives of a blocked plan all pass."""
    plans = grid(matrix)
    for name, env in machines().items():
        facts = facts_from_json(env)
        core = Core(facts, matrix)
        for plan in plans:
            expected = plain_decide(matrix, facts, plan)
            assert Core(facts, matrix).status(plan) == expected[0], (name, plan)
            assert core.decide(plan) == expected, (name, plan)
        whole = Core(facts, matrix).decide_grid(plans, grid_index(matrix, plans))
        assert whole == [plain_decide(matrix, facts, plan) for plan in plans], name
        blocked = next((p for p in plans if core.status(p) == "blocked"), None)
        if blocked is not None:  # alternatives read status() of many plans
            for alt in core.alternatives(blocked, 5):
                assert plain_decide(matrix, facts, alt)[0] in ("ok", "warn"), (name, alt)


def test_every_machine_decides_every_plan_as_the_definition_says() -> None:
    assert_as_defined(load_matrix(defaults=False))


def _overlay() -> dict[str, Any]:
    """Rules that select every plan (warnings, a block that might) and a few that select
    one engine, scheme or offload, as a large overlay writes them."""
    rules: list[dict[str, Any]] = [
        {"id": f"o.every{i}", "when": {"fact": "gpu.memory_gb", "lt": i}, "severity": "warn",
         "message": "m", "source": "s"}
        for i in range(0, 100, 7)
    ]  # fmt: skip
    rules += [
        {"id": "o.might", "when": {"fact": "packages.not-probed", "version": ">=1"},
         "select": {"engine": ["gguf"]}, "severity": "block", "message": "m", "source": "s"},
        {"id": "o.offload", "when": {"fact": "gpu.count", "ge": 1},
         "select": {"offload": ["group", "balanced"]}, "severity": "block", "message": "m",
         "source": "s"},
        {"id": "o.info", "select": {"engine": ["quanto"]}, "severity": "info", "message": "m",
         "source": "s"},
        {"id": "o.scheme", "when": {"fact": "backend", "is": "cuda"},
         "select": {"engine": ["bitsandbytes"], "scheme": ["nf4"]}, "severity": "warn",
         "message": "m", "source": "s"},
    ]  # fmt: skip
    return {"rules": rules}


def test_an_overlay_of_rules_for_every_plan_keeps_every_verdict_as_defined() -> None:
    assert_as_defined(load_matrix(extra=_overlay(), defaults=False))


@pytest.mark.parametrize(
    "names",
    [
        ["a"],
        ["h100", "cpu", "h100 #3"],
        ['quo"te', "back\\slash", "ünï", "tab\there", "line\u2028sep", "esc\x1b[2J"],
    ],
)
def test_grid_json_is_what_json_dumps_writes(names: list[str]) -> None:
    plans = [Facets("quanto", "qint8", "post", o).to_json() for o in ("none", "balanced")]
    shared = [("ok", []), ("blocked", ["quanto.offload.balanced", "x.y"])]
    other = [("warn", ["a.b"]), ("unknown", [])]
    columns = [shared if i % 2 == 0 else other for i in range(len(names))]
    rows = [
        {
            "plan": plan,
            "status": {n: c[i][0] for n, c in zip(names, columns, strict=True)},
            "rules": {n: c[i][1] for n, c in zip(names, columns, strict=True)},
        }
        for i, plan in enumerate(plans)
    ]
    expected = json.dumps({"envs": names, "rows": rows}, indent=2, ensure_ascii=False)
    assert grid_json(names, plans, columns) == expected
    assert grid_json(names, [], [[] for _ in names]) == json.dumps(
        {"envs": names, "rows": []}, indent=2, ensure_ascii=False
    )


def test_matrix_json_on_every_machine_is_the_definition_byte_for_byte(tmp_path: Path) -> None:
    found = machines()
    files = []
    for name, env in found.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(env), encoding="utf-8")
        files.append(path)
    twin = tmp_path / "twin" / "h100_linux.json"  # the same machine twice: one column shared
    twin.parent.mkdir()
    twin.write_text(json.dumps(found["h100_linux"]), encoding="utf-8")
    files.append(twin)
    args = [a for f in files for a in ("--env", str(f))]
    out = subprocess.run(
        [sys.executable, "-m", "quantdoctor", "matrix", *args, "--json"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    matrix = load_matrix()
    names = [f.stem for f in files[:-1]]
    names[names.index("h100_linux")] = str(files[names.index("h100_linux")])
    names.append(str(twin))
    facts = [facts_from_json(json.loads(f.read_text(encoding="utf-8"))) for f in files]
    rows = []
    for plan in grid(matrix):
        cells = [plain_decide(matrix, f, plan) for f in facts]
        rows.append(
            {
                "plan": plan.to_json(),
                "status": {n: c[0] for n, c in zip(names, cells, strict=True)},
                "rules": {n: c[1] for n, c in zip(names, cells, strict=True)},
            }
        )
    expected = json.dumps({"envs": names, "rows": rows}, indent=2, ensure_ascii=False)
    assert out.stdout == expected + "\n"
