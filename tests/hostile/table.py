"""Run the whole hostile corpus and print family x outcome (the closing table of #18).

python tests/hostile/table.py [--only ID-PREFIX] [-v]
QUANTDOCTOR_HOSTILE_TARGET=/path/to/other/checkout python tests/hostile/table.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hostile.cases import CASES  # noqa: E402
from hostile.harness import OUTCOMES, run_case  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    counts: dict[str, Counter[str]] = {}
    for case in CASES:
        if not case.id.startswith(args.only):
            continue
        with tempfile.TemporaryDirectory(prefix="qd-hostile-") as tmp:
            result = run_case(case, Path(tmp))
        counts.setdefault(case.family, Counter())[result.outcome] += 1
        mark = "ok " if result.outcome == "clean" else "BAD"
        print(
            f"{mark} {case.id:38} {result.outcome:9} {result.seconds:6.2f}s {result.why[:150]}",
            flush=True,
        )
        if args.verbose and result.outcome != "clean":
            print("    out:", repr(result.out[:300]), "\n    err:", repr(result.err[-600:]))
    header = f"| {'family':14}| tried | " + " | ".join(OUTCOMES) + " |"
    print("\n" + header)
    print("|" + "---|" * (len(OUTCOMES) + 2))
    total: Counter[str] = Counter()
    for family, c in counts.items():
        total.update(c)
        cells = " | ".join(str(c[o]) for o in OUTCOMES)
        print(f"| {family:14}| {sum(c.values())} | {cells} |")
    print(
        f"| {'all':14}| {sum(total.values())} | "
        + " | ".join(str(total[o]) for o in OUTCOMES)
        + " |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
