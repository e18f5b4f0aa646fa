"""Which packages the matrix names have releases newer than the versions its rules were checked on.

A maintainer tool, run by hand (not part of the test suite):

    .venv/bin/python scripts/drift.py [--out benchmarks/results/drift-DATE.json]

It asks the package index pip is configured with (``pip index versions``: pip's own machinery,
its index URLs, certificates and proxies; no other network) for the newest release of every
distribution the matrix names: the ``verified:`` section, each engine's package and every
``packages.*`` fact a rule reads. It prints, per distribution, the newest release beside the
newest verified one and the rules whose version ranges end before that release (past their
end they stop applying, and only the ``verified.*`` note speaks for the new version).

Exit 0: nothing newer than verified; 1: something is; 2: no index could be reached.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quantdoctor.rules.matrix import load_matrix  # noqa: E402
from quantdoctor.rules.verified import fact_of  # noqa: E402

TIMEOUT_S = 60
#: distributions whose wheels exist for another platform only (pip filters by platform)
PLATFORM = {"triton-windows": ["--platform", "win_amd64", "--only-binary=:all:"]}


def newest(dist: str) -> tuple[str | None, str | None]:
    """(newest release on the index, None) or (None, why not)."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", dist, "--disable-pip-version-check"]
    cmd += PLATFORM.get(dist, [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, f"no answer in {TIMEOUT_S} s"
    match = re.search(rf"^{re.escape(dist)} \(([^)]+)\)", out.stdout, re.M | re.I)
    if match:
        return match.group(1), None
    why = (out.stderr.strip().splitlines() or ["no versions listed"])[-1]
    return None, why[:200]


def _specs(node: Any) -> list[tuple[str, str]]:
    """(fact, specifier) for every version test in a condition."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        if isinstance(node.get("version"), str) and "fact" in node:
            found.append((str(node["fact"]), node["version"]))
        for value in node.values():
            found.extend(_specs(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_specs(value))
    return found


def _ends_before(spec: str, release: Version, checked: Version | None) -> bool:
    """A range that reaches the verified version but ends before the release.

    Ranges that end below the verified version ("older than 0.43 lacks X") were already
    checked past their end; the ones that matter speak for today's versions and stop short
    of the new release.
    """
    try:
        specs = SpecifierSet(spec)
        bounds = [
            Version(s.version.removesuffix(".*"))
            for s in specs
            if s.operator in ("<", "<=", "==", "~=")
        ]
    except InvalidVersion:
        return False
    reaches = [b for b in bounds if checked is None or b >= Version(checked.base_version)]
    return bool(reaches) and not specs.contains(release, prereleases=True) and max(reaches) < release


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the table as JSON here")
    args = parser.parse_args(argv)

    matrix = load_matrix(defaults=False)
    facts: dict[str, list[tuple[str, str]]] = {}
    for rule in matrix.rules:
        scope = [{"fact": fact_of(d), "version": v} for d, v in rule.holds_for.items()]
        for fact, spec in _specs([rule.when, scope]):
            facts.setdefault(fact, []).append((rule.id, spec))
    dists = set(matrix.verified) | {e.package for e in matrix.engines.values()}
    dists |= {f.removeprefix("packages.") for f in facts if f.startswith("packages.")}
    dists |= {"torch", "triton", "triton-windows"}

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = dict(zip(sorted(dists), pool.map(newest, sorted(dists)), strict=True))
    if all(release is None for release, _ in answers.values()):
        why = next(iter(answers.values()))[1]
        sys.stderr.write(f"drift: no package index answered (pip index versions: {why})\n")
        return 2

    rows: list[dict[str, Any]] = []
    for dist in sorted(dists):
        release, why = answers[dist]
        checked = matrix.verified.get("triton" if dist == "triton-windows" else dist)
        row: dict[str, Any] = {
            "distribution": dist,
            "newest": release,
            "verified": checked.version if checked else None,
            "how": checked.how if checked else None,
            "error": why,
            "newer": False,
            "rules_ending_before": [],
        }
        if release and checked:
            row["newer"] = Version(release) > Version(checked.version)
        if release:
            rel, base = Version(release), Version(checked.version) if checked else None
            row["rules_ending_before"] = sorted(
                {rid for rid, spec in facts.get(fact_of(dist), []) if _ends_before(spec, rel, base)}
            )
        rows.append(row)

    print(f"{'distribution':34} {'newest':>14} {'verified':>10}  note")
    for r in rows:
        if r["error"]:
            note = f"index: {r['error']}"
        elif r["verified"] is None:
            note = "no verified version (only named by a rule)"
        else:
            note = "NEWER than verified" if r["newer"] else "ok"
        if r["rules_ending_before"]:
            note += f"; ranges end before it: {', '.join(r['rules_ending_before'])}"
        print(f"{r['distribution']:34} {r['newest'] or '-':>14} {r['verified'] or '-':>10}  {note}")
    newer = [r["distribution"] for r in rows if r["newer"]]
    print(f"\n{len(newer)} of {sum(1 for r in rows if r['verified'])} verified distributions "
          f"have newer releases: {', '.join(newer) or 'none'}")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": rows}
        args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 1 if newer else 0


if __name__ == "__main__":
    raise SystemExit(main())
