"""``quantdoctor`` alone: the doctor report (what works here, what does not, the fix).

Exit 0 when every installed engine has a plan that works here, 1 when an installed
engine has none that can, 3 when facts are unknown, 2 on bad input.

The report is a pure function of the probed facts, the rules (the matrix, its overlays,
the costs) and this package's code. Building it costs pydantic, the matrix and the
whole grid of verdicts, ten times what probing costs, so the report of a probe is kept
in the cache dir under a key of all those inputs (facts as probed, flags, and the size
and mtime of every file of the package and of every overlay) and read back while none
of them changes. ``--env FILE`` reports are not cached, nor anything when the cache dir
is not writable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantdoctor import __version__
from quantdoctor._dirs import cache_dir, config_dir, write_cache
from quantdoctor.cli.common import add_python_arg

PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: Bump when the report's JSON shape changes in a way the key would not see.
CACHE_FORMAT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="every fact and rule id")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    parser.add_argument(
        "--env", metavar="FILE", help="report for another machine's Environment JSON"
    )
    parser.add_argument(
        "--device",
        type=int,
        default=0,
        metavar="N",
        help="the GPU that will run the model (default: 0)",
    )
    add_python_arg(parser)
    parser.add_argument(
        "--deep", action="store_true", help="also test that Triton compiles and runs a kernel"
    )
    parser.add_argument(
        "--matrix", metavar="FILE", action="append", help="an overlay of rules (repeatable)"
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="rebuild the report instead of reading it back"
    )


def run(args: argparse.Namespace) -> int:
    from quantdoctor.cli.env import check_device, collect
    from quantdoctor.errors import InvalidInputError

    if args.device < 0:
        raise InvalidInputError(f"--device {args.device}: must be 0 or more")
    report: dict[str, Any] | None = None
    if args.env:
        from quantdoctor.rules.envfile import load_env_file

        env = load_env_file(args.env).to_json_dict()
        check_device(env, args.device)
        report = build(env, args, source=args.env)
    else:
        from quantdoctor.rules.named import named_packages

        # the packages --matrix overlays name, read from their text: no matrix loaded yet
        named = named_packages(getattr(args, "matrix", None) or ())
        env = collect(args.deep, args.device, getattr(args, "python", None), named)
        check_device(env, args.device)
        key = None if args.no_cache else cache_key(env, args)
        report = read_cached(key) if key else None
        if report is None:
            report = build(env, args, source="probed")
            if getattr(args, "python", None):
                from quantdoctor.doctor._probe_python import resolve_python
                from quantdoctor.doctor.report import for_interpreter

                report["interpreter"] = args.python
                for_interpreter(report, resolve_python(args.python))
            if key:
                write_cached(key, report)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        from quantdoctor.doctor.report import print_lines, render_report

        print_lines(render_report(report, verbose=args.verbose))
    code: int = report["summary"]["exit_code"]
    return code


def build(env: dict[str, Any], args: argparse.Namespace, *, source: str) -> dict[str, Any]:
    """Every verdict of the grid on ``env``, grouped into the report's data."""
    from quantdoctor.advise.section import recommendation_section
    from quantdoctor.doctor.infer import infer
    from quantdoctor.doctor.report import app_from_path, build_report
    from quantdoctor.rules.evaluate import evaluate_grid
    from quantdoctor.rules.matrix import load_matrix

    matrix = load_matrix(extra=args.matrix) if args.matrix else load_matrix()
    env, assumed = infer(env)
    verdicts = evaluate_grid(env, matrix, device=args.device)
    section = recommendation_section(env, verdicts, matrix, args.device)
    return build_report(
        env,
        verdicts,
        matrix,
        device=args.device,
        verbose=args.verbose,
        source=source,
        extra=[section] if section else [],
        assumed=assumed,
        app=app_from_path(getattr(args, "python", None)),
    )


# --------------------------------------------------------------------------- cache


def _stat(path: str) -> list[Any]:
    try:
        st = os.stat(path)
    except OSError:
        return [path, None]
    return [path, st.st_mtime_ns, st.st_size]


def _package_files() -> list[list[Any]]:
    out = []
    for folder, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".yaml", ".yml", ".json")):
                out.append(_stat(os.path.join(folder, name)))
    return out


def cache_key(env: dict[str, Any], args: argparse.Namespace) -> str:
    """A digest of every input the report depends on."""
    import hashlib

    overlays: Sequence[str] = [
        str(config_dir() / "matrix.yaml"),
        *os.environ.get("QUANTDOCTOR_MATRIX", "").split(os.pathsep),
        *(args.matrix or []),
    ]
    inputs = {
        "format": CACHE_FORMAT,
        "version": __version__,
        "python": sys.version,
        "env": env,
        "device": args.device,
        "python_flag": getattr(args, "python", None),
        "verbose": bool(args.verbose),
        "overlays": [_stat(os.path.abspath(p)) for p in overlays if p.strip()],
        "package": _package_files(),
    }
    blob = json.dumps(inputs, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def read_cached(key: str) -> dict[str, Any] | None:
    try:
        with open(cache_dir() / f"report-{key}.json", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None  # none yet, or a torn one: rebuild
    if not isinstance(data, dict) or not isinstance(data.get("summary"), dict):
        return None
    return data


#: Reports kept: one per recent set of inputs (a few GPUs, with and without -v).
KEEP = 8


def write_cached(key: str, report: dict[str, Any]) -> None:
    path = cache_dir() / f"report-{key}.json"
    write_cache(path, json.dumps(report).encode(), siblings="report-*.json", keep=KEEP)
