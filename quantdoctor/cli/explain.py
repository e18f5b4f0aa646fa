"""``quantdoctor explain TEXT | --file F [--engine E] [--scheme S] [--offload O] [--env FILE]
[--params N] [-v] [--json]``: which rules an error text matches, and how sure.

TEXT may be ``-`` (read standard input), as may F. ``--engine/--scheme/--offload`` say
what was loading (a rule about another engine or offload is dropped), ``--env`` (or
``--python``: that interpreter probed) the machine (a rule whose condition holds there
gains); without either, the text alone decides. An out-of-memory error that no rule
explains gets memory advice (with ``--params``, the plans that fit). Exit 0 when a rule
matched, 1 when none did, 2 on bad input (an empty text too).
"""

from __future__ import annotations

import sys

from quantdoctor.errors import InvalidInputError

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    import argparse
    from typing import Any

#: A pasted traceback is kilobytes; a file much larger than this is not one.
MAX_INPUT_BYTES = 16 * 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from quantdoctor.cli.common import add_env_args, param_count
    from quantdoctor.rules.vocab import OFFLOADS

    parser.add_argument(
        "text", nargs="?", help="the error message or traceback ('-' reads standard input)"
    )
    parser.add_argument("--file", "-f", metavar="F", help="read the text from F ('-': stdin)")
    parser.add_argument(
        "--engine", metavar="E", help="the engine that was loading (quantdoctor matrix lists them)"
    )
    parser.add_argument("--scheme", metavar="S", help="the scheme it used (nf4, qint8, Q4_K...)")
    parser.add_argument(
        "--offload", metavar="O", help="the offload that was on: " + " | ".join(OFFLOADS)
    )
    add_env_args(parser, default="none, or with --python that interpreter probed")
    parser.add_argument(
        "--params",
        type=param_count,
        metavar="N",
        help="the model's parameter count, for memory advice",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show the evidence and how to add rules"
    )


def _read_stdin() -> str:
    data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidInputError(f"standard input: more than {MAX_INPUT_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def _read_file(path: str) -> str:
    from quantdoctor._fileio import open_regular, read_exact, unreadable

    f, size = open_regular(path)
    with f:
        if size > MAX_INPUT_BYTES:
            raise unreadable(path, f"{size} bytes is too large for an error text")
        raw = read_exact(f, size, path, "the text")
    # Logs mix encodings (Windows consoles); an odd byte must not hide the message.
    return raw.decode("utf-8", errors="replace")


def read_text(args: argparse.Namespace) -> str:
    if (args.text is None) == (args.file is None):
        raise InvalidInputError("explain: give the error TEXT or --file F (one of them)")
    if args.file is not None:
        text = _read_stdin() if args.file == "-" else _read_file(args.file)
    else:
        text = _read_stdin() if args.text == "-" else str(args.text)
    if not text.strip():
        raise InvalidInputError("explain: the error text is empty")
    return text


def _context(args: argparse.Namespace, matrix: Any) -> dict[str, str]:
    """The plan facets given (``bnb``, ``fp16``... spelt as the vocabulary spells them);
    ``matrix`` may be ``None`` when neither the engine nor the scheme is given."""
    from quantdoctor.cli.common import check_choice
    from quantdoctor.rules.aliases import resolve
    from quantdoctor.rules.vocab import OFFLOADS

    context: dict[str, str] = {}
    engine = None
    if args.engine is not None:
        engines = sorted(matrix.records)
        engine = resolve("engine", args.engine, engines)
        check_choice("--engine", engine, engines)
        context["engine"] = engine
    if args.scheme is not None:
        known = (
            list(matrix.records[engine].schemes)
            if engine
            else sorted({s for spec in matrix.records.values() for s in spec.schemes})
        )
        scheme = resolve("scheme", args.scheme, known, engine) if engine else args.scheme
        check_choice("--scheme", scheme, known)
        context["scheme"] = scheme
    if args.offload is not None:
        offload = resolve("offload", args.offload, OFFLOADS)
        check_choice("--offload", offload, OFFLOADS)
        context["offload"] = offload
    return context


def _oom_advice(
    oom: dict[str, float | None], context: dict[str, str], env: Any, params: int | None, matrix: Any
) -> list[str]:
    """Memory advice for an out-of-memory error, from the cost model (advise.recommend)."""
    tried, total = oom.get("tried_gib"), oom.get("total_gib")
    where = f" of a {total:.1f} GiB GPU" if total else ""
    first = "Out of memory: the model and its activations did not fit the GPU"
    if tried:
        first += f" (it tried to allocate {tried:.2f} GiB more{where})"
    lines = [first + ".", "This is a memory problem, not a quantization incompatibility."]
    engine, scheme = context.get("engine"), context.get("scheme")
    if params is None:
        if engine and engine in matrix.records:
            specs = matrix.records[engine].schemes
            bits = specs[scheme].bits if scheme in specs else None
            lower = [n for n, s in specs.items() if bits is None or s.bits < bits]
            if lower:
                lines.append(f"  fewer bits with {engine}: {', '.join(lower[:6])}")
        offload = context.get("offload", "none")
        order = ("model", "group", "sequential")
        more = [
            o for o in order if order.index(o) > (order.index(offload) if offload in order else -1)
        ]
        if more:
            lines.append("  offloads that keep less on the GPU: " + ", ".join(more))
        lines.append(
            "  give --params N (the model's parameter count) for its estimated peak and the "
            "plans that fit; quantdoctor recommend --params N lists them too"
        )
        return lines
    from quantdoctor.advise.recommend import Layout, estimate, recommend
    from quantdoctor.rules.evaluate import to_facts
    from quantdoctor.rules.models import Plan

    rec = recommend(env, params=params, vram_gb=total, matrix=matrix, limit=5)
    if engine and scheme:
        plan = Plan(engine=engine, scheme=scheme, offload=context.get("offload", "none"))
        est = estimate(plan, to_facts(env), layout=Layout.from_params(params), matrix=matrix)
        if est.peak_gb is not None:
            lines.append(f"  this plan's estimated peak: {est.peak_gb:.1f} GiB")
            if rec.memory_gb and est.peak_gb <= rec.memory_gb:
                lines.append(
                    "  that fits, so something else holds the rest (text encoders, the VAE, "
                    "another process): model offload keeps one component on the GPU at a time"
                )
    if rec.plans:
        lines.append(
            f"  plans that fit {rec.memory_gb:.1f} GiB here, best first:"
            if rec.memory_gb
            else "  plans that work here, best first:"
        )
        for e in rec.plans:
            peak = f"{e.peak_gb:.1f} GiB peak" if e.peak_gb is not None else "peak unknown"
            p = e.plan
            lines.append(f"    {p.engine} {p.scheme} offload={p.offload} ({peak})")
    else:
        lines.append("  no plan fits this GPU's memory, even offloaded")
    return lines


#: Bump when the shape of the kept signature rules changes in a way the key would not see.
CACHE_FORMAT = 1


def _signature_data(matrix: Any) -> dict[str, Any]:
    """What an explanation without a machine reads of ``matrix``, as plain data: the rules
    with signatures (their conditions as the facts they name), each engine's package,
    every engine a rule is about, and each signature's literals."""
    from quantdoctor.rules.core import FACETS
    from quantdoctor.rules.explain import signature_literals

    rules = [r for r in matrix.rule_records if r.signatures]
    return {
        "rules": [
            {
                "id": r.id,
                "severity": r.severity,
                "message": r.message,
                "fix": r.fix,
                "source": r.source,
                "select": {facet: list(getattr(r.select, facet)) for facet in FACETS},
                "signatures": [
                    {"pattern": g.pattern, "source": g.source, "generic": g.generic}
                    for g in r.signatures
                ],
                "facts": list(dict.fromkeys(r.condition.facts())),
            }
            for r in rules
        ],
        "packages": {name: spec.package for name, spec in matrix.records.items()},
        "engines": sorted({e for r in matrix.rule_records for e in r.select.engine}),
        "literals": {
            p: list(found)
            for p, found in signature_literals(
                g.pattern for r in rules for g in r.signatures
            ).items()
        },
    }


def _signature_rules(data: Any) -> tuple[list[Any], dict[str, str], list[str]] | None:
    """The rule records, packages and engines of ``_signature_data``'s data, read back
    with its shape checked (a rule as the matrix cache checks one, ``rule_ok``; and what
    explain adds: its signatures' sources and literals, the facts it names) and its
    literals kept for the search; ``None``: not well formed (the entry is rebuilt)."""
    from quantdoctor.rules.explain import keep_literals
    from quantdoctor.rules.records import NamedFacts, RuleRecord, rule_ok, strings

    if type(data) is not dict:
        return None
    rules, packages, engines, found = (
        data.get(k) for k in ("rules", "packages", "engines", "literals")
    )
    if type(rules) is not list or not strings(engines) or type(found) is not dict:
        return None
    if type(packages) is not dict or not all(type(v) is str for v in packages.values()):
        return None
    records = []
    for rule in rules:
        if not rule_ok(rule):
            return None
        sigs, facts = rule.get("signatures"), rule.get("facts")
        if not (sigs and strings(facts) and type(rule.get("fix")) is str):
            return None
        for g in sigs:
            if not (
                type(g.get("source")) is str
                and type(g.get("generic")) is bool
                and strings(found.get(g["pattern"]))
            ):
                return None
        records.append(RuleRecord(rule, NamedFacts(tuple(facts))))
    keep_literals({p: tuple(v) for p, v in found.items() if strings(v)})
    return records, packages, engines


def signature_rules(overlays: list[str] | None) -> tuple[list[Any], dict[str, str], list[str]]:
    """The rules an explanation without a machine searches, each engine's package and every
    engine a rule is about, as the matrix and ``overlays`` give them. Kept in quantdoctor's
    cache under the rules' inputs (``rules_inputs``: the code, every overlay) and checked
    on read: loading the whole matrix costs such an explanation a third of its time."""
    from quantdoctor._dirs import digest, read_entry, write_entry
    from quantdoctor.cli.common import rules_inputs

    key = digest("explain", CACHE_FORMAT, *rules_inputs(overlays))
    found = _signature_rules(read_entry("explain", key))
    if found is None:
        from quantdoctor.rules.matrix import load_matrix

        data = _signature_data(load_matrix(extra=overlays) if overlays else load_matrix())
        found = _signature_rules(data)
        if found is None:  # the check and what it checks disagree: a bug, not user input
            raise AssertionError("explain: the signature rules failed their own check")
        write_entry("explain", key, data, keep=4)
    return found


def _load_matrix(args: argparse.Namespace) -> Any:
    from quantdoctor.rules.matrix import load_matrix

    return load_matrix(extra=args.matrix) if args.matrix else load_matrix()


def run(args: argparse.Namespace) -> int:
    from quantdoctor.cli.common import load_env
    from quantdoctor.rules.explain import explain_full, explain_text, out_of_memory

    text = read_text(args)
    matrix, env = None, None
    if args.env is None and args.python is None and args.engine is None and args.scheme is None:
        # no machine, no engine or scheme to resolve: the kept signature rules suffice
        context = _context(args, None)
        rules, packages, engines = signature_rules(args.matrix)
        result = explain_text(
            text, rules, context=context or None, packages=packages, engines=engines
        )
    else:
        matrix = _load_matrix(args)
        context = _context(args, matrix)
        env = (
            load_env(args.env, args.python, matrix.packages()) if args.env or args.python else None
        )
        result = explain_full(text, matrix, context=context or None, env=env, device=args.device)
    matches = result.matches
    if args.json:
        from quantdoctor._json import dumps

        sys.stdout.write(dumps([m.to_dict() for m in matches], indent=2) + "\n")
        return 0 if matches else 1
    out = sys.stdout.write
    if not matches:
        oom = out_of_memory(text)
        if oom is not None:
            if args.params is not None and env is None:
                from quantdoctor.doctor.probe import probe

                env = probe()
            matrix = matrix or _load_matrix(args)
            for line in _oom_advice(oom, context, env or {}, args.params, matrix):
                out(line + "\n")
            return 1
        out("Not a known quantization problem: no rule explains this error.\n")
        if result.unclaimed:
            out(
                "  The text is also what "
                + ", ".join(result.unclaimed[:3])
                + " raise; with nothing else pointing there it is not claimed."
                " Say which engine and offload were in use (--engine, --offload).\n"
            )
        if args.verbose:
            out(
                "  quantdoctor rules --json lists every rule; an overlay (--matrix FILE) can add"
                " one for an error you know.\n"
            )
        return 1
    marks = {"block": "✗", "warn": "!", "info": "i"}
    if result.ambiguous and len(matches) > 1:
        close = [m.rule for m in matches if matches[0].score - m.score < 2.5]
        out(f"Several causes fit this text ({', '.join(close)}); the first is the likeliest.\n")
    for m in matches:
        out(f"{marks.get(m.severity, '-')} [{m.rule}] {m.message}\n")
        if m.fix:
            out(f"    fix: {m.fix}\n")
        out(f"    confidence: {m.confidence}; matched: {m.matched[:200]}\n")
        if args.verbose:
            out(f"    evidence: {'; '.join(m.evidence)}\n")
        out(f"    source: {m.source}\n")
    if result.ambiguous and result.tells_apart:
        out("What would tell them apart:\n")
        for ask in result.tells_apart:
            out(f"  - {ask}\n")
    if any("(unknown)" in m.message or "(version unknown)" in m.message for m in matches[:1]):
        out("Facts marked unknown: run quantdoctor env, or pass --env FILE.\n")
    n = len(matches)
    out(f"{n} rule{'s' if n != 1 else ''} matched; the first fits best.\n")
    return 0
