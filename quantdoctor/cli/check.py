"""``quantdoctor check``: the verdict for one plan.

A verdict is a pure function of the facts (probed, or the ``--env`` file's), the plan's
options and the rules (quantdoctor's own files and every overlay that applies), so, as
the bare report does, ``check`` keeps it in quantdoctor's cache folder under a key of
all of those (``common.rules_inputs``) and reads it back while none changes: a loader
that checks its plan at every start pays for the rules once. The entry repeats the
facts and options it was made from and is used only when they equal this run's;
``--no-cache`` rebuilds it. A run that fails (a bad option, an unreadable file) writes
nothing, so an entry never hides an error."""

from __future__ import annotations

from quantdoctor.cli.common import (
    EXIT,
    MARKS,
    STYLES,
    add_cache_arg,
    add_env_args,
    clean,
    dump_json,
    load_env_data,
    load_matrix_args,
    painter,
    plain_source,
    rules_inputs,
    write_lines,
)
from quantdoctor.errors import InvalidInputError
from quantdoctor.rules.vocab import COMPONENTS, DTYPES, MODES, OFFLOADS

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    import argparse
    from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", required=True, help="an engine of the matrix (quantdoctor matrix)")
    p.add_argument(
        "--scheme", required=True, help="a scheme of the engine (quantdoctor matrix lists them)"
    )
    p.add_argument("--mode", help=" | ".join(MODES) + " (default: the engine's default_mode)")
    p.add_argument("--offload", default="none", help=" | ".join(OFFLOADS))
    p.add_argument("--component", default="transformer", help=" | ".join(COMPONENTS))
    p.add_argument("--dtype", default="bfloat16", help=" | ".join(DTYPES))
    p.add_argument("-v", "--verbose", action="store_true", help="show info findings and sources")
    add_env_args(p)
    add_cache_arg(p, "verdict")


def make_plan(args: argparse.Namespace, matrix: Any) -> Any:
    """A Plan from the arguments, or one line naming the bad argument and the valid values.

    ``Plan`` validates every facet and the matrix in hand that the engine and scheme are
    its, with messages that name the field; here the field becomes the option that set it.
    """
    from pydantic import ValidationError

    from quantdoctor.rules.models import Plan

    try:
        plan = Plan(
            engine=args.engine,
            scheme=args.scheme,
            mode=args.mode or "",
            offload=args.offload,
            component=args.component,
            dtype=args.dtype,
        )
    except ValidationError as err:
        message = str(err.errors()[0]["msg"]).removeprefix("Value error, ")
        raise InvalidInputError(f"--{message}") from None
    try:
        return matrix.check_plan(plan)
    except InvalidInputError as err:
        raise InvalidInputError(f"--{err}") from None


def make_facets(args: argparse.Namespace, matrix: Any) -> Any:
    """``make_plan`` as plain data (no pydantic): the same checks, the same messages."""
    from quantdoctor.rules.core import make_facets as facets

    try:
        return facets(
            matrix,
            args.engine,
            args.scheme,
            args.mode or "",
            args.offload,
            args.component,
            args.dtype,
        )
    except (ValueError, InvalidInputError) as err:
        raise InvalidInputError(f"--{err}") from None


#: Bump when a verdict's JSON changes in a way the key would not see.
CACHE_FORMAT = 1
#: Verdicts kept: a loader's few plans on a few machines.
KEEP = 64


def run(args: argparse.Namespace) -> int:
    env: dict[str, Any] | None = None
    key = inputs = None
    found: dict[str, Any] | None = None
    if not args.no_cache:
        try:  # the facts first: the probe reads the packages the matrix's text names
            named: list[str] = []
            if not args.env:  # an env file names its own
                from quantdoctor.rules.named import named_packages

                named = named_packages(args.matrix)
            env = load_env_data(args.env, args.python, named)
        except InvalidInputError:
            env = None  # said below, in its turn, after the options' own checks
        if env is not None:
            inputs = _inputs(args, env)
            key = _digest(inputs, args)
            found = _read(key, inputs)
    if found is None:
        found = _verdict(args, env)
        if key is not None:
            from quantdoctor._dirs import write_entry

            write_entry("check", key, {"inputs": inputs, **found}, keep=KEEP)
    verdict, assumed = found["verdict"], found["assumed"]
    if args.json:
        dump_json(verdict)
    else:
        render(verdict, verbose=args.verbose)
        paint = painter()
        write_lines(
            [
                paint(f"  assumed {clean(fact)}: {clean(why)}", "dim")
                for fact, why in assumed.items()
            ]
        )
    return EXIT[verdict["status"]]


def _verdict(args: argparse.Namespace, env: dict[str, Any] | None) -> dict[str, Any]:
    """The verdict and the facts assumed for it, evaluated on the rules."""
    from quantdoctor.advise.recommend import cost_rank
    from quantdoctor.rules.core import Core, check_device
    from quantdoctor.rules.facts import facts_from_json

    matrix = load_matrix_args(args)
    plan = make_facets(args, matrix)
    if env is None:
        env = load_env_data(args.env, args.python, matrix.packages())
    assumed: dict[str, str] = {}
    if args.env:  # a partial file: the facts it implies (a GPU's compute capability ...)
        from quantdoctor.doctor.infer import infer

        data, assumed = infer(env)
        env = data if assumed else env
    check_device(args.device, env.get("gpus"))
    core = Core(facts_from_json(env, device=args.device), matrix, cost_rank)
    return {"verdict": core.verdict(plan), "assumed": assumed}


def _inputs(args: argparse.Namespace, env: dict[str, Any]) -> dict[str, Any]:
    plan = [args.engine, args.scheme, args.mode, args.offload, args.component, args.dtype]
    return {"env": env, "plan": plan, "device": args.device, "python": args.python}


def _digest(inputs: dict[str, Any], args: argparse.Namespace) -> str:
    from quantdoctor._dirs import digest

    return digest("check", CACHE_FORMAT, *rules_inputs(args.matrix), inputs)


def _read(key: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The entry for ``key``, if it was made from these very facts and options."""
    from quantdoctor._dirs import read_entry

    entry = read_entry("check", key)
    if not isinstance(entry, dict) or entry.get("inputs") != inputs:
        return None  # none, torn, foreign, or made for other inputs: evaluate
    verdict, assumed = entry.get("verdict"), entry.get("assumed")
    if not (isinstance(verdict, dict) and isinstance(assumed, dict)):
        return None
    if verdict.get("status") not in EXIT or not isinstance(verdict.get("plan"), dict):
        return None
    if not all(isinstance(verdict.get(k), list) for k in ("findings", "alternatives")):
        return None
    return {"verdict": verdict, "assumed": assumed}


_FINDING_MARKS = {"block": "✗", "warn": "!", "info": "·"}


def render(verdict: dict[str, Any], *, verbose: bool = False) -> None:
    """One verdict for a person (plain data in; colour only on a terminal)."""
    from quantdoctor.rules.core import Facets, plan_label

    paint = painter()
    status = verdict["status"]
    plan = Facets(**verdict["plan"])
    lines = [f"{paint(f'{MARKS[status]} {status}', STYLES[status])} {clean(plan_label(plan))}"]
    for f in verdict["findings"]:
        if f["severity"] == "info" and not verbose:
            continue
        mark = "?" if f["state"] == "unknown" else _FINDING_MARKS[f["severity"]]
        said = f["message"]
        if f["state"] == "unknown":  # a fact left unknown is not said as one
            said = f"unknown whether this holds ({', '.join(f['missing'])}): {said}"
        lines.append(f"  {mark} {clean(said)} {paint('(' + f['rule'] + ')', 'dim')}")
        if f["fix"]:
            lines.append(f"      fix: {clean(f['fix'])}")
        if verbose:
            lines.append("      " + paint(f"source: {clean(plain_source(f['source']))}", "dim"))
    if verdict["alternatives"]:
        lines.append("  works instead:")
        for alt in verdict["alternatives"]:
            lines.append(f"    → {clean(plan_label(Facets(**alt)))}")
    write_lines(lines)
