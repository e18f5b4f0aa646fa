"""explain against the errors users posted: right cause first, listed, missed, wrongly claimed.

    python benchmarks/explain_corpus.py [--out benchmarks/results/explain_corpus.json] [--label L]

The corpus is tests/data/explain_corpus.yaml: real error texts from public issue trackers,
each with the rule that names the cause the thread established, and unrelated errors (a bad
model id, a network error, a corrupt file, a missing tokenizer dependency, an unquantized
meta-tensor or device error, out-of-memory) that no rule may claim. Cases marked
``with_context`` are explained with the plan and machine the thread reported (what
``--engine/--scheme/--offload/--env`` pass on the command line); the others get the text
alone, as a user pasting it would give.

Exits 1 below the goal: at least 90% right cause first and no unrelated error claimed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "explain_corpus.yaml"
GOAL_FIRST = 0.90

#: context keys that are plan facets; the rest describe the machine
FACETS = ("engine", "scheme", "mode", "offload", "component", "dtype")


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    return data


def split_context(context: dict[str, Any] | None) -> tuple[dict[str, str], dict[str, Any]]:
    """(plan facets, Environment JSON) from a corpus case's ``context``."""
    context = dict(context or {})
    facets = {k: str(context.pop(k)) for k in FACETS if k in context}
    env: dict[str, Any] = {}
    if "os" in context:
        env["os"] = context.pop("os")
    if "backend" in context:
        env["backend"] = context.pop("backend")
    gpu: dict[str, Any] = {}
    if "cc" in context:
        gpu.update(vendor="nvidia", cuda_cc=str(context.pop("cc")))
    if "gfx" in context:
        gpu.update(vendor="amd", gfx=str(context.pop("gfx")))
    if gpu:
        env["gpus"] = [gpu]
    packages = {k: str(v) for k, v in context.items()}
    if packages:
        env["packages"] = packages
    return facets, env


def _explain() -> Any:
    try:
        from quantdoctor.rules import explain as module
    except ImportError:  # before the layout move
        from quantdoctor.doctor import explain as module  # type: ignore[no-redef]
    return module


def run_explain(text: str, context: dict[str, Any] | None) -> list[str]:
    """The rule ids explain names for ``text``, best first."""
    module = _explain()
    facets, env = split_context(context)
    try:
        found = module.explain(text, context=facets or None, env=env or None)
    except TypeError:  # the API before context= and env=
        plan = None
        if "engine" in facets and "scheme" in facets:
            from quantdoctor.rules.models import Plan

            plan = Plan(**facets)
        found = module.explain(text, plan=plan)
    return [m.rule for m in found]


def case_text(case: dict[str, Any]) -> str:
    """The posted text; where the excerpt stops before the message, the title that carries it."""
    text: str = case["text"]
    return f"{case['text_title']}\n{text}" if "text_title" in case else text


def measure() -> dict[str, Any]:
    data = load()
    rows = []
    counts = {"right_first": 0, "listed": 0, "missed": 0, "wrongly_claimed": 0}
    start = time.perf_counter()
    for case in data["cases"]:
        context = case.get("context") if case.get("with_context") else None
        text = case_text(case)
        rules = run_explain(text, context)
        expected = case["rule"]
        if rules and rules[0] == expected:
            outcome = "right_first"
        elif expected in rules:
            outcome = "listed"
        elif rules:
            outcome = "wrongly_claimed"
        else:
            outcome = "missed"
        counts[outcome] += 1
        rows.append({"id": case["id"], "expected": expected, "got": rules, "outcome": outcome})
    unrelated = []
    for case in data["unrelated"]:
        rules = run_explain(case["text"], None)
        unrelated.append({"id": case["id"], "kind": case.get("kind", ""), "got": rules})
    elapsed = time.perf_counter() - start
    n = len(data["cases"])
    claimed = sum(1 for u in unrelated if u["got"])
    return {
        "cases": n,
        **counts,
        "right_first_ratio": round(counts["right_first"] / n, 3) if n else 0.0,
        "unrelated": len(unrelated),
        "unrelated_claimed": claimed,
        "seconds": round(elapsed, 3),
        "rows": rows,
        "unrelated_rows": unrelated,
    }


def table(result: dict[str, Any]) -> str:
    n = result["cases"]
    lines = [
        f"explain on {n} posted errors and {result['unrelated']} unrelated ones",
        f"  right cause first  {result['right_first']:3d}  ({result['right_first'] / n:.0%})",
        f"  listed, not first  {result['listed']:3d}",
        f"  missed             {result['missed']:3d}",
        f"  wrongly claimed    {result['wrongly_claimed']:3d}",
        f"  unrelated claimed  {result['unrelated_claimed']:3d} of {result['unrelated']}",
    ]
    for row in result["rows"]:
        if row["outcome"] != "right_first":
            got = ", ".join(row["got"][:3]) or "-"
            lines.append(f"    {row['outcome']:15s} {row['id']}: want {row['expected']}, got {got}")
    for row in result["unrelated_rows"]:
        if row["got"]:
            lines.append(f"    claimed         {row['id']}: {', '.join(row['got'][:3])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = ROOT / "benchmarks" / "results" / "explain_corpus.json"
    parser.add_argument("--out", default=str(default_out))
    parser.add_argument("--label", default="", help="a name for this run in the JSON (e.g. before)")
    args = parser.parse_args(argv)
    result = measure()
    print(table(result))
    out = Path(args.out)
    previous: dict[str, Any] = {}
    if out.exists():
        try:
            previous = json.loads(out.read_text())
        except ValueError:
            previous = {}
    runs = previous.get("runs", {}) if isinstance(previous.get("runs"), dict) else {}
    runs[args.label or "latest"] = {k: v for k, v in result.items() if not k.endswith("rows")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "runs": runs}, indent=2) + "\n")
    ok = result["right_first_ratio"] >= GOAL_FIRST and result["unrelated_claimed"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
