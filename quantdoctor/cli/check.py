"""``quantdoctor check``: the verdict for one plan."""

from __future__ import annotations

import argparse
from typing import Any

from quantdoctor.cli.common import (
    EXIT,
    MARKS,
    STYLES,
    add_env_args,
    console,
    dump_json,
    load_env,
    load_matrix_args,
    plain_source,
)
from quantdoctor.errors import InvalidInputError
from quantdoctor.rules.vocab import COMPONENTS, DTYPES, MODES, OFFLOADS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", required=True, help="an engine of the matrix (quantdoctor matrix)")
    p.add_argument("--scheme", required=True, help="a scheme of the engine (see quantdoctor rules)")
    p.add_argument("--mode", help=" | ".join(MODES) + " (default: the engine's default_mode)")
    p.add_argument("--offload", default="none", help=" | ".join(OFFLOADS))
    p.add_argument("--component", default="transformer", help=" | ".join(COMPONENTS))
    p.add_argument("--dtype", default="bfloat16", help=" | ".join(DTYPES))
    p.add_argument("-v", "--verbose", action="store_true", help="show info findings and sources")
    add_env_args(p)


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


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from quantdoctor.advise.ranked import evaluate

    matrix = load_matrix_args(args)
    plan = make_plan(args, matrix)
    env = load_env(args.env, args.python, matrix.packages())
    assumed: dict[str, str] = {}
    if args.env:  # a partial file: the facts it implies (a GPU's compute capability ...)
        from quantdoctor.doctor.infer import infer
        from quantdoctor.rules.models import Environment

        data, assumed = infer(env.to_json_dict())
        env = Environment.model_validate(data) if assumed else env
    verdict = evaluate(plan, env, matrix, device=args.device)
    if args.json:
        dump_json(verdict.model_dump(mode="json"))
    else:
        render(verdict, verbose=args.verbose)
        for fact, why in assumed.items():
            console().print(f"  [dim]assumed {escape(fact)}: {escape(why)}[/]")
    return EXIT[verdict.status]


def render(verdict: Any, *, verbose: bool = False) -> None:
    from rich.markup import escape

    out = console()
    status = verdict.status
    out.print(f"[{STYLES[status]}]{MARKS[status]} {status}[/] {escape(verdict.plan.label())}")
    for f in verdict.findings:
        if f.severity == "info" and not verbose:
            continue
        mark = "?" if f.state == "unknown" else {"block": "✗", "warn": "!", "info": "·"}[f.severity]
        said = f.message
        if f.state == "unknown":  # a fact left unknown is not said as one
            said = f"unknown whether this holds ({', '.join(f.missing)}): {f.message}"
        out.print(f"  {mark} {escape(said)} [dim]({f.rule})[/]")
        if f.fix:
            out.print(f"      fix: {escape(f.fix)}")
        if verbose:
            out.print(f"      [dim]source: {escape(plain_source(f.source))}[/]")
    if verdict.alternatives:
        out.print("  works instead:")
        for alt in verdict.alternatives:
            out.print(f"    → {escape(alt.label())}")
