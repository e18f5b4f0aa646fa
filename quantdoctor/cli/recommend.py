"""``quantdoctor recommend``: the plans that work here, best first, with what they cost."""

from __future__ import annotations

from quantdoctor.cli.common import (
    add_env_args,
    check_choice,
    clean,
    dump_json,
    load_env_data,
    load_matrix_args,
    painter,
    param_count,
    type_error,
    write_lines,
)
from quantdoctor.errors import InvalidInputError
from quantdoctor.rules.vocab import COMPONENTS, DTYPES

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    import argparse
    from typing import Any

PREFERS = ("speed", "memory", "quality")
#: Beyond this a number is a typo or an attack (1e400 is inf), not a GPU.
MAX_VRAM_GIB = float(1 << 20)


def _gib(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_VRAM_GIB:  # also NaN and inf
        raise type_error(f"{text[:40]!r} is not a memory size in GiB; write it like 8 or 23.5")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="PATH", help="a model file or folder (read by detect)")
    src.add_argument(
        "--params", type=param_count, metavar="N", help="parameter count: 12B, 12e9, 450M"
    )
    p.add_argument("--component", default="transformer", help=" | ".join(COMPONENTS))
    p.add_argument("--dtype", default="bfloat16", help=" | ".join(DTYPES))
    p.add_argument("--vram", type=_gib, metavar="GB", help="GPU memory in GiB (default: probed)")
    p.add_argument(
        "--activation-gb",
        type=_gib,
        metavar="GB",
        help="activation memory of one forward (default: a measured fraction of the bf16 weights)",
    )
    p.add_argument("--prefer", default="speed", help=" | ".join(PREFERS) + " (default: speed)")
    p.add_argument("--top", type=int, default=0, metavar="N", help="show only the best N plans")
    p.add_argument("-v", "--verbose", action="store_true", help="show sources and notes")
    add_env_args(p)


def run(args: argparse.Namespace) -> int:
    from quantdoctor.advise.recommend import plain_recommend
    from quantdoctor.rules.core import check_device
    from quantdoctor.rules.facts import facts_from_json

    prefer = str(check_choice("--prefer", args.prefer, PREFERS))
    component = str(check_choice("--component", args.component, COMPONENTS))
    dtype = str(check_choice("--dtype", args.dtype, DTYPES))
    if args.top < 0:
        raise InvalidInputError(f"--top: {args.top} is not valid; give a number >= 0")
    matrix = load_matrix_args(args)
    # plain data all the way (an env file validated once, then cached): no pydantic
    env = load_env_data(args.env, args.python, matrix.packages())
    check_device(args.device, env.get("gpus"))
    rec = plain_recommend(
        env,
        facts=facts_from_json(env, device=args.device),
        model=args.model,
        params=args.params,
        component=component,
        dtype=dtype,
        vram_gb=args.vram,
        prefer=prefer,
        activation_gb=args.activation_gb,
        matrix=matrix,
        device=args.device,
        limit=args.top or None,
    )
    if args.json:
        dump_json(rec.to_dict())
    else:
        render(rec.to_dict(), verbose=args.verbose)
    return rec.exit_code


def _num(x: Any, fmt: str = "{:.2f}") -> str:
    return "?" if x is None else fmt.format(x)


LEGEND = (
    "ranked {prefer} first; speed: relative to unquantized bf16 here (measured; plans "
    "within 5% count as equally fast, and then the lower error goes first); error: "
    "relative L2 error of the output against bf16 (lower is better, ? not measured); "
    "!: works with a caveat (quantdoctor check says which); ≥: a lower bound; "
    "✗: does not fit; mode: post quantizes after a full load, pre while loading"
)


#: The plans table's columns; the plan and offload read left to right, numbers right.
_COLUMNS = ("#", "plan", "offload", "weights GiB", "peak GiB", "speed", "error")
_LEFT = frozenset((1, 2))


def render(rec: dict[str, Any], *, verbose: bool = False) -> None:
    """The ranked plans as an aligned table (plain data in; colour only on a terminal:
    no rich, which costs a process more than everything else it does)."""
    paint = painter()
    model = rec["model"]
    size = f"{model['params'] / 1e9:.2f} B params" if model.get("params") else "no model given"
    mem = _num(rec["memory_gb"], "{:.1f} GiB")
    lines = [
        f"{clean(rec['gpu'] or 'no GPU')} ({rec['gpu_class'] or 'unknown class'}), "
        f"{mem} for the model; {size}; best for {rec['prefer']}"
    ]
    rows = [list(_COLUMNS)]
    for i, e in enumerate(rec["plans"], 1):
        p = e["plan"]
        mark = "" if e["fits"] is not False else " ✗"
        rows.append(
            [
                str(i),
                clean(f"{p['engine']} {p['scheme']} ({p['mode']})")
                + ("" if e["status"] == "ok" else " !"),
                p["offload"],
                _num(e["weight_gb"]),
                ("" if e["peak_exact"] else "≥") + _num(e["peak_gb"]) + mark,
                _num(e["relative_speed"], "×{:.2f}"),
                _num(e["relative_error"], "{:.4f}"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(w) if i in _LEFT else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        text = "  ".join(cells).rstrip()
        lines.append(paint(text, "bold") if n == 0 else text)
    lines.append(paint(LEGEND.format(prefer=rec["prefer"]), "dim"))
    base = rec["baseline"]
    if base and base["peak_gb"] is None:
        lines.append(f"unquantized bf16: {base['bytes_per_param']:g} bytes per parameter")
    elif base:
        fits = {True: "fits", False: "does not fit", None: "may fit"}[base["fits"]]
        lines.append(
            f"unquantized bf16: {base['weight_gb']:.2f} GiB of weights, "
            f"peak {base['peak_gb']:.2f} GiB: {fits}"
        )
    if rec["does_not_fit"]:
        names = ", ".join(
            f"{e['plan']['engine']} {e['plan']['scheme']}" for e in rec["does_not_fit"]
        )
        lines.append(paint("does not fit even offloaded:", "red") + f" {clean(names)}")
    if verbose:
        for e in rec["plans"]:
            p = e["plan"]
            said = (
                f"{p['engine']} {p['scheme']}: speed {e['speed_source']}; error {e['error_source']}"
            )
            lines.append(paint(clean(said), "dim"))
            lines.extend(paint(clean(f"  {n}"), "dim") for n in e["notes"])
    lines.extend(f"note: {clean(n)}" for n in rec["notes"])
    if not rec["plans"]:
        blocked = f" ({rec['blocked']} blocked by rules)" if rec["blocked"] else ""
        lines.append(paint("✗ no plan works here", "red") + blocked)
    write_lines(lines)
