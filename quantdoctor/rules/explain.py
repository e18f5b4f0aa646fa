"""Which rules an engine's error message, or a whole pasted traceback, matches, and how sure.

Text is cleaned first (ANSI colour codes removed, line endings unified, pytest's ``E``
prefix dropped, a bare ``NotImplementedError`` line written ``NotImplementedError: `` as
``str(exc)`` formatting would, every line cut to ``patterns.MAX_LINE``), then every
signature of every rule is searched (``re.MULTILINE``). Signatures are checked at load to
finish in linear time (``quantdoctor.rules.patterns``).

Each matching rule is then weighed by the evidence around the text, not by the text alone:

- where the match lies: in the exception that was raised (after any "During handling"
  chain) or in an earlier traceback or log line;
- which engine the traceback names: its frames' paths (``optimum/quanto/...``) and words
  in its messages; a rule about another engine loses, one about this engine gains;
- the call that failed (``enable_sequential_cpu_offload``, ``enable_model_cpu_offload``,
  ``enable_group_offload``) says which offload was on;
- the plan given (``context``: engine, scheme, offload...): a rule about another engine,
  scheme or offload is dropped;
- the machine given (``facts``): a rule whose condition holds here gains, one whose
  condition is false here loses.

A *generic* signature (a device mismatch, a meta tensor, ``KeyError: None``) names its
rule only with evidence of that rule's engine or plan, and never with full confidence.
Every match carries a confidence and the evidence used; when several causes stay close,
``Explanation.ambiguous`` says so and ``tells_apart`` names what would decide.
"""

from __future__ import annotations

import math
import re

from quantdoctor.rules.patterns import cap_lines, literals, unsafe

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from functools import lru_cache
    from typing import Any, NamedTuple

    from quantdoctor.rules.matrix import Matrix
    from quantdoctor.rules.models import Plan
    from quantdoctor.rules.records import RuleRecord
    from quantdoctor.rules.schema import Rule

    #: what explain reads of a rule: the public model or the matrix's light record
    RuleLike = Rule | RuleRecord
else:  # functools imports collections: ~3 ms of a command
    from quantdoctor._memo import lru_cache
    from quantdoctor._namedtuple import NamedTuple

__all__ = [
    "Explanation",
    "Match",
    "clean",
    "explain",
    "explain_rules",
    "explain_text",
    "final_exception_start",
    "keep_literals",
    "out_of_memory",
    "signature_literals",
]


class _Pattern:
    """A pattern compiled on first use, and not at all for a text that lacks every one of
    ``needs`` (substrings one of which each of its matches holds): most explanations use
    a few of these, and compiling one costs about as much as reading the matrix."""

    def __init__(self, pattern: str, flags: int = 0, needs: tuple[str, ...] = ()) -> None:
        self.pattern, self.flags, self.needs = pattern, flags, needs

    def _may(self, text: str) -> bool:
        return not self.needs or any(n in text for n in self.needs)

    def _compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern, self.flags)  # re keeps what it compiled

    def search(self, text: str) -> re.Match[str] | None:
        return self._compiled().search(text) if self._may(text) else None

    def match(self, text: str) -> re.Match[str] | None:
        return self._compiled().match(text) if self._may(text) else None

    def sub(self, repl: str, text: str) -> str:
        return self._compiled().sub(repl, text) if self._may(text) else text

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return self._compiled().finditer(text) if self._may(text) else iter(())

    def findall(self, text: str) -> list[Any]:
        return self._compiled().findall(text) if self._may(text) else []


#: Pasted logs can be long; signatures are searched in at most this much of the end.
MAX_TEXT = 1_000_000
#: How much of a matched text a match keeps (and shows).
MAX_MATCHED = 300

_ANSI = _Pattern(
    r"\x1b\[[0-?]{0,40}[ -/]{0,10}[@-~]|\x1b\][^\x07\x1b]{0,4096}(?:\x07|\x1b\\)|\x1b[@-Z\\-_]",
    needs=("\x1b",),
)
_HEADER = _Pattern(
    r"Traceback \(most recent call last\)", needs=("Traceback (most recent call last)",)
)
_NAME = r"[A-Za-z_]\w{0,100}"
#: A line that names an exception: ``pkg.mod.SomeError: message`` (pytest prefixes ``E``).
_EXC_WORDS = ("Error", "Exception", "Warning", "Exit", "Interrupt", "Missing", "Fault")
_EXC_LINE = _Pattern(
    rf"^(?:E\s{{1,20}})?(?:{_NAME}\.){{0,20}}[A-Za-z_]\w{{0,100}}?"
    rf"(?:{'|'.join(_EXC_WORDS)})\b(?::|$)",
    re.MULTILINE,
    needs=_EXC_WORDS,
)
#: A line that is only an exception's name, as a message-less exception prints; it is
#: written ``Name: `` so that signatures of the ``Name: message`` form match it.
_BARE_EXC = _Pattern(
    rf"^((?:{_NAME}\.){{0,20}}[A-Za-z_]\w{{0,100}}?(?:Error|Exception))$",
    re.MULTILINE,
    needs=("Error", "Exception"),
)
#: pytest's ``E   `` prefix on the lines of the exception it shows.
_PYTEST_E = _Pattern(r"^E {3,20}", re.MULTILINE, needs=("E   ",))
#: Lines of a traceback's frame block (CPython and IPython), skipped to reach the message.
_FRAME = _Pattern(r"^(?:\s|File |Cell In\[|-+>|\^|~|$)")
#: A line that names a source file: a traceback frame in any of the usual layouts.
_PATH_LINE = _Pattern(
    r"""(?:File "|File |\.py[",:]|\.py$|[/\\][\w.-]{1,100}\.py\b)""", needs=("File ", ".py")
)
#: The exception type of a ``Name: message`` line.
_EXC_TYPE = _Pattern(
    rf"^(?:E\s{{1,20}})?(?:{_NAME}\.){{0,20}}({_NAME}):", re.MULTILINE, needs=(":",)
)
#: Calls that say which offload was on when the error came.
_OFFLOAD_CALLS = (
    ("enable_sequential_cpu_offload", "sequential"),
    ("enable_model_cpu_offload", "model"),
    ("enable_group_offload", "group"),
    ("apply_group_offloading", "group"),
)
_OOM = _Pattern(
    r"(?:CUDA|HIP|MPS|XPU)? ?out of memory|OutOfMemoryError|Allocation on device"
    r"|MPS backend out of memory",
    re.IGNORECASE,
)
_OOM_ALLOC = _Pattern(r"Tried to allocate (\d{1,9}(?:\.\d{1,3})?) ?([GMK]i?B)", re.IGNORECASE)
_OOM_TOTAL = _Pattern(
    r"total capacity of (\d{1,6}(?:\.\d{1,3})?) ?([GM]i?B)"
    r"|(\d{1,6}(?:\.\d{1,3})?) ?([GM]i?B) total capacity",
    re.IGNORECASE,
)
_SEVERITY = {"block": 0.3, "warn": 0.2, "info": 0.1}
_FACETS = ("engine", "scheme", "mode", "offload", "component", "dtype")
#: Texts that many causes produce (quantized or not): a signature matching no more than one
#: of these is generic even when its rule does not say so (an overlay's, a new rule's).
_GENERIC_TEXT = _Pattern(
    r"Expected all tensors to be on the same device|Cannot copy out of meta tensor"
    r"|KeyError: None|no kernel image is available|an illegal memory access"
    r"|CUBLAS_STATUS_\w{1,40}|Fatal Python error: Aborted|NotImplementedError: ?$"
    r"|invalid argument to getCurrentStream|Expected a cuda device|out of memory",
    re.MULTILINE,
)
#: Score margin under which two causes are reported as ambiguous.
AMBIGUOUS_MARGIN = 2.5


class Match(NamedTuple):
    """One rule whose signature matched, with the text it matched and how sure it is."""

    rule: str
    severity: str
    message: str
    fix: str
    source: str
    matched: str
    #: the signature that matched, and where that signature's text comes from
    pattern: str
    signature_source: str
    #: whether the match lies in the final (raised) exception
    final: bool
    #: the score that orders matches (higher first); kept as a 1-tuple for callers that sort
    rank: tuple[float, ...]
    #: "high" | "medium" | "low", and the same as a number in 0..1
    confidence: str = "medium"
    probability: float = 0.5
    #: what raised or lowered this candidate ("traceback frames in optimum/quanto", ...)
    evidence: tuple[str, ...] = ()
    #: the text is also produced by other causes
    generic: bool = False
    #: the engines, offloads and schemes the rule is about (empty: any)
    engines: tuple[str, ...] = ()
    offloads: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    #: machine facts the rule's condition reads that were not given
    unknown_facts: tuple[str, ...] = ()

    @property
    def score(self) -> float:
        return self.rank[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "source": self.source,
            "matched": self.matched,
            "confidence": self.confidence,
            "probability": round(self.probability, 2),
            "evidence": list(self.evidence),
            "generic": self.generic,
        }


class Explanation(NamedTuple):
    """All candidates for one text, best first, with what is known about the ambiguity."""

    matches: list[Match]
    #: several causes stay close: the first is not certain
    ambiguous: bool = False
    #: what would tell the close candidates apart ("which engine was loading (--engine)")
    tells_apart: tuple[str, ...] = ()
    #: rules whose generic signature matched but which nothing else supported
    unclaimed: tuple[str, ...] = ()
    #: engines the traceback names, and the offload its failing call implies
    engines_seen: tuple[str, ...] = ()
    offload_seen: str | None = None
    exception_type: str | None = None
    facts_unknown: tuple[str, ...] = ()


def clean(text: str) -> str:
    """Remove ANSI codes, unify line endings, cut long lines, give bare exceptions a colon."""
    text = _ANSI.sub("", text[-MAX_TEXT:])
    text = cap_lines(text.replace("\r\n", "\n").replace("\r", "\n"))
    return _BARE_EXC.sub(r"\1: ", _PYTEST_E.sub("", text))


def final_exception_start(text: str) -> int:
    """Offset where the final exception's message starts (0 when there is no traceback)."""
    headers = list(_HEADER.finditer(text))
    if headers:
        start = text.find("\n", headers[-1].end())
        if start < 0:
            return len(text)
        offset = start + 1
        for line in text[offset:].splitlines(keepends=True):
            if not _FRAME.match(line):
                return offset
            offset += len(line)
        return headers[-1].start()
    lines = list(_EXC_LINE.finditer(text))
    return lines[-1].start() if lines else 0


def out_of_memory(text: str) -> dict[str, float | None] | None:
    """For an out-of-memory error: the GiB it tried to allocate and the GPU's total, if said."""
    cleaned = clean(text)
    if not _OOM.search(cleaned):
        return None

    def gib(m: re.Match[str] | None) -> float | None:
        if m is None:
            return None
        number, unit = next(
            (a, b) for a, b in zip(m.groups()[::2], m.groups()[1::2], strict=True) if a
        )
        return float(number) / {"K": 1024**2, "M": 1024, "G": 1}[unit[0].upper()]

    return {
        "tried_gib": gib(_OOM_ALLOC.search(cleaned)),
        "total_gib": gib(_OOM_TOTAL.search(cleaned)),
    }


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    """A signature compiled, once it is known to search in linear time: the schema checked
    the matrix's, but one read back from a cache (``cli.explain.signature_rules``) is
    checked here."""
    why = unsafe(pattern)
    if why is not None:
        from quantdoctor.errors import InvalidInputError

        raise InvalidInputError(
            f"a signature no check passed could run slowly on long text ({why}); if it "
            "was read back from quantdoctor's cache, run again with QUANTDOCTOR_CACHE_DIR "
            "set to an empty folder"
        )
    return re.compile(pattern, re.MULTILINE)


#: Each signature pattern's literals (``patterns.literals``), read back from quantdoctor's
#: cache (``_known_literals``): working them out parses every pattern, which costs more
#: than the rest of an explanation.
_LITERALS: dict[str, tuple[str, ...]] = {}


def _literals(pattern: str) -> tuple[str, ...]:
    found = _LITERALS.get(pattern)
    if found is None:
        found = _LITERALS[pattern] = literals(pattern)
    return found


def _known_literals(patterns: list[str]) -> None:
    """Fill ``_LITERALS`` for ``patterns`` from the cache entry of this code and these
    patterns, or work them out and store them (plain data: lists of strings)."""
    from quantdoctor._dirs import code_digest, digest, read_entry, write_entry

    patterns = sorted(set(patterns) - _LITERALS.keys())
    if not patterns:
        return
    key = digest("literals", code_digest(), patterns)
    cached = read_entry("literals", key)
    if (
        isinstance(cached, list)
        and len(cached) == len(patterns)
        and all(isinstance(c, list) and all(type(s) is str for s in c) for c in cached)
    ):
        _LITERALS.update(zip(patterns, (tuple(c) for c in cached), strict=True))
        return
    write_entry("literals", key, [list(_literals(p)) for p in patterns], keep=4)


def signature_literals(patterns: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each pattern's literals, as the search uses them (kept in the cache, as above)."""
    patterns = list(patterns)
    _known_literals(patterns)
    return {p: _literals(p) for p in patterns}


def keep_literals(found: Mapping[str, tuple[str, ...]]) -> None:
    """Take the literals of patterns as ``signature_literals`` gave them, read back from a
    cache entry of this very code (its caller checks their shape)."""
    _LITERALS.update(found)


def _may_match(pattern: str, text: str) -> bool:
    """False when ``text`` lacks text every match of ``pattern`` has: then the pattern is
    neither compiled nor searched (compiling them all costs more than the rest)."""
    return all(part in text for part in _literals(pattern))


@lru_cache(maxsize=64)
def _engine_path(token: str) -> re.Pattern[str]:
    """A path component naming ``token`` (``/bitsandbytes/``, ``ComfyUI-GGUF\\``)."""
    tok = re.escape(token).replace("/", r"[/\\]")
    return re.compile(rf"(?i)(?:[/\\.]|[/\\][\w.]{{0,40}}[-_]){tok}[/\\._]")


@lru_cache(maxsize=64)
def _engine_word(token: str) -> re.Pattern[str]:
    return re.compile(rf"(?i)(?<![\w-]){re.escape(token)}(?![\w-])")


def _tokens(engine: str, packages: Mapping[str, str]) -> tuple[str, ...]:
    package = packages.get(engine, engine)
    return tuple(dict.fromkeys((engine, package, package.replace("-", "/"))))


def _engines_named(
    text: str, engines: Iterable[str], packages: Mapping[str, str]
) -> dict[str, str]:
    """Engine -> how the text names it (frames first, then words in messages)."""
    frame_lines = [ln for ln in text.split("\n") if _PATH_LINE.search(ln)]
    frames = "\n".join(frame_lines)
    other = "\n".join(ln for ln in text.split("\n") if not _PATH_LINE.search(ln))
    named: dict[str, str] = {}
    # (?i) on ASCII text folds ASCII letters only: a token absent from the lowered text
    # is matched by neither pattern, and neither need be compiled (elsewhere: no filter)
    low = text.lower() if text.isascii() else None
    for engine in engines:
        tokens = _tokens(engine, packages)
        if low is not None and not any(_all_in(tok, low) for tok in tokens):
            continue  # an ASCII text that names none of the tokens, in any case
        for tok in tokens:
            m = _engine_path(tok).search(frames)
            if m:
                named[engine] = f"traceback frames in {tok}"
                break
        else:
            for tok in tokens:
                if _engine_word(tok).search(other):
                    named[engine] = f"the message names {tok}"
                    break
    return named


def _all_in(token: str, low: str) -> bool:
    """Every part of ``token`` between its ``/`` (either separator in a path) is in ``low``."""
    return all(part in low for part in token.lower().split("/"))


def _offload_seen(text: str) -> tuple[str | None, str | None]:
    for call, offload in _OFFLOAD_CALLS:
        if call in text:
            return offload, call
    return None, None


def _render(text: str, facts: Mapping[str, Any]) -> str:
    """A message with its ``{fact}`` names filled in; an unknown one reads "(unknown)"."""
    from quantdoctor.rules.template import fill  # the evaluator's placeholders

    def sub(key: str) -> str:
        if key not in facts:
            if key == "gpu.name":
                return "this GPU"  # names no model, states nothing unknown as known
            return "(version unknown)" if key.startswith("packages.") else "(unknown)"
        value = facts[key]
        return "none" if value is None else str(value)

    return fill(text, sub)


def _source_text(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "; ".join(source)


def _context(plan: Plan | None, context: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if plan is not None:
        out.update({k: str(v) for k, v in plan.model_dump().items() if k in _FACETS and v})
    if context:
        out.update({k: str(v) for k, v in context.items() if k in _FACETS and v})
    return out


def _is_generic(flagged: bool, matched: str) -> bool:
    """A generic match: flagged so, or little more than a text many causes produce."""
    if flagged:
        return True
    g = _GENERIC_TEXT.search(matched)
    return g is not None and len(matched.strip()) - len(g.group(0)) < 24


def _weigh(
    rule: RuleLike,
    text: str,
    final_at: int,
    ctx: Mapping[str, str],
    facts: Mapping[str, Any] | None,
    named: Mapping[str, str],
    offload_seen: tuple[str | None, str | None],
) -> Match | None:
    best: tuple[float, re.Match[str], Any] | None = None
    for sig in rule.signatures:
        if not _may_match(sig.pattern, text):
            continue
        for m in _compiled(sig.pattern).finditer(text):
            if m.end() == m.start():
                continue  # an empty match says nothing
            score = 10.0 + (4.0 if m.start() >= final_at else 0.0)
            score += min(len(m.group(0)), 80) / 20
            if _is_generic(sig.generic, m.group(0)):
                score -= 4.0
            if best is None or score > best[0]:
                best = (score, m, sig)
    if best is None:
        return None
    score, m, sig = best
    generic = _is_generic(sig.generic, m.group(0))
    evidence: list[str] = []
    support = 0  # evidence that points at this rule beyond its text
    sel = rule.select
    final = m.start() >= final_at
    evidence.append("matched in the exception raised" if final else "matched earlier in the log")
    # the plan given: a rule about another engine, scheme or offload does not apply
    for facet, allowed in (
        ("engine", sel.engine),
        ("scheme", sel.scheme),
        ("offload", sel.offload),
    ):
        given = ctx.get(facet)
        if given is None or not allowed:
            continue
        if given not in allowed:
            return None
        score += {"engine": 6.0, "scheme": 2.0, "offload": 4.0}[facet]
        support += 1
        evidence.append(f"{facet} {given} given")
    for facet in ("mode", "component", "dtype"):
        # weaker facets: a loader that requantizes runs in another mode than it was given
        allowed = getattr(sel, facet)
        if ctx.get(facet) and allowed and ctx[facet] not in allowed:
            score -= 2.0
            evidence.append(f"{facet} {ctx[facet]} given, the rule is about {'/'.join(allowed)}")
    # what the traceback names
    engine_shown = bool(sel.engine) and ctx.get("engine") in sel.engine
    if "engine" not in ctx and named:
        mine = [e for e in sel.engine if e in named]
        engine_shown = bool(mine)
        if mine:
            score += 5.0
            support += 1
            evidence.append(named[mine[0]])
        elif sel.engine:
            score -= 5.0
            others = ", ".join(sorted(named))
            evidence.append(f"the traceback names {others}, not {'/'.join(sel.engine)}")
    elif "engine" not in ctx and sel.engine:
        score -= 1.5  # about one engine, with nothing to say it was running
    seen, call = offload_seen
    if "offload" not in ctx and seen and sel.offload:
        if seen in sel.offload:
            score += 3.0
            support += 1
            evidence.append(f"the failing call {call}() means {seen} offload")
        else:
            score -= 3.0
            evidence.append(f"{call}() means {seen} offload, not {'/'.join(sel.offload)}")
    # the machine given
    unknown: set[str] = set()
    if facts is not None and tuple(rule.condition.facts()):
        holds = rule.condition.eval(dict(facts), unknown)
        if holds is True:
            # about an engine nobody said was loading, the machine alone proves less
            score += 4.0 if engine_shown or not sel.engine else 1.0
            support += 1
            evidence.append("its condition holds on the machine given")
        elif holds is False:
            score -= 8.0
            evidence.append("its condition does not hold on the machine given")
    elif tuple(rule.condition.facts()):
        unknown = set(rule.condition.facts())
    if generic and support == 0:
        return None  # a generic text alone names nothing
    score += _SEVERITY.get(rule.severity, 0.0)
    matched = m.group(0).strip()[:MAX_MATCHED]
    return Match(
        rule=rule.id,
        severity=rule.severity,
        message=rule.message,
        fix=rule.fix,
        source=_source_text(rule.source),
        matched=matched,
        pattern=sig.pattern,
        signature_source=sig.source,
        final=final,
        rank=(score,),
        evidence=tuple(evidence),
        generic=generic,
        engines=tuple(sel.engine),
        offloads=tuple(sel.offload),
        schemes=tuple(sel.scheme),
        unknown_facts=tuple(sorted(f for f in unknown if not f.startswith("plan."))),
    )


def _confidence(found: list[Match]) -> list[Match]:
    """Each match's share of the evidence (a softmax of the scores), as a number and a word."""
    if not found:
        return found
    top = max(m.score for m in found)
    weights = [math.exp((m.score - top) / 2.0) for m in found]
    total = sum(weights)
    out = []
    for m, w in zip(found, weights, strict=True):
        p = w / total
        if m.generic:
            p = min(p, 0.7)  # a generic text is never certain
        if m.score < 10.0:
            p = min(p, 0.4)  # evidence against it
        word = "high" if p >= 0.75 else "medium" if p >= 0.4 else "low"
        out.append(m._replace(probability=p, confidence=word))
    return out


def _tells_apart(close: list[Match], ctx: Mapping[str, str], facts_given: bool) -> tuple[str, ...]:
    asks = []
    engines = {m.engines for m in close}
    if len(engines) > 1 and "engine" not in ctx:
        names = sorted({e for m in close for e in m.engines}) or ["any"]
        asks.append(f"which engine was loading ({', '.join(names)}): --engine")
    offloads = {m.offloads for m in close}
    if len(offloads) > 1 and "offload" not in ctx:
        names = sorted({o for m in close for o in m.offloads})
        asks.append(f"which offload was on ({', '.join(names)}): --offload")
    schemes = {m.schemes for m in close}
    if len(schemes) > 1 and "scheme" not in ctx and len(engines) == 1:
        asks.append("which scheme was used: --scheme")
    unknown = sorted({f for m in close for f in m.unknown_facts})
    if unknown and not facts_given:
        asks.append(
            f"the machine ({', '.join(unknown[:4])}): quantdoctor env --json > env.json, "
            "then --env env.json"
        )
    return tuple(asks)


def explain_text(
    text: str,
    rules: Iterable[RuleLike],
    *,
    plan: Plan | None = None,
    context: Mapping[str, str] | None = None,
    facts: Mapping[str, Any] | None = None,
    packages: Mapping[str, str] | None = None,
    engines: Iterable[str] | None = None,
) -> Explanation:
    """Every rule ``text`` matches, weighed by the evidence around it (module docstring).

    ``engines``: the engines a traceback may name (default: those ``rules`` are about;
    given where ``rules`` holds only the rules with signatures, as the matrix's)."""
    rules = list(rules)
    cleaned = clean(text)
    final_at = final_exception_start(cleaned)
    ctx = _context(plan, context)
    if engines is None:
        engines = {e for r in rules for e in r.select.engine}
    engines = sorted(engines)
    named = _engines_named(cleaned, engines, packages or {})
    _known_literals([s.pattern for r in rules for s in r.signatures])
    seen = _offload_seen(cleaned)
    found: list[Match] = []
    unclaimed: list[str] = []
    for r in rules:
        if not r.signatures:
            continue
        m = _weigh(r, cleaned, final_at, ctx, facts, named, seen)
        if m is not None:
            found.append(m)
        elif any(
            _may_match(s.pattern, cleaned)
            and (hit := _compiled(s.pattern).search(cleaned))
            and _is_generic(s.generic, hit.group(0))
            for s in r.signatures
        ):
            unclaimed.append(r.id)
    shown: dict[str, Any] = dict(facts or {})
    shown.update({f"plan.{k}": v for k, v in ctx.items()})
    found = [
        m._replace(message=_render(m.message, shown), fix=_render(m.fix, shown)) for m in found
    ]
    found.sort(key=lambda m: m.rank, reverse=True)
    found = _confidence(found)
    close = [m for m in found if found[0].score - m.score < AMBIGUOUS_MARGIN] if found else []
    ambiguous = len(close) > 1 or any(m.generic for m in close)
    types = _EXC_TYPE.findall(cleaned[final_at:]) if cleaned else []
    return Explanation(
        matches=found,
        ambiguous=ambiguous,
        tells_apart=_tells_apart(close, ctx, facts is not None) if ambiguous else (),
        unclaimed=tuple(u for u in unclaimed if u not in {m.rule for m in found}),
        engines_seen=tuple(sorted(named)),
        offload_seen=seen[0],
        exception_type=types[0] if types else None,
        facts_unknown=tuple(sorted({f for m in found[:1] for f in m.unknown_facts})),
    )


def explain_rules(
    text: str,
    rules: Iterable[RuleLike],
    plan: Plan | None = None,
    facts: Mapping[str, Any] | None = None,
    *,
    context: Mapping[str, str] | None = None,
    packages: Mapping[str, str] | None = None,
) -> list[Match]:
    """Match ``text`` against ``rules``; best first (see the module docstring).

    Messages and fixes name facts (``{packages.diffusers}``): they are filled from
    ``facts`` and the plan where given, and read "(unknown)" otherwise.
    """
    return explain_text(
        text, rules, plan=plan, context=context, facts=facts, packages=packages
    ).matches


def _facts(env: Any, device: int = 0) -> dict[str, Any] | None:
    if env is None:
        return None
    from quantdoctor.rules.evaluate import to_facts

    return dict(to_facts(env, device))


def explain(
    text: str,
    matrix: Matrix | None = None,
    *,
    plan: Plan | None = None,
    context: Mapping[str, str] | None = None,
    env: Any = None,
) -> list[Match]:
    """Which rules of ``matrix`` (default: built-in plus overlays) an error text matches.

    ``plan`` or ``context`` (a mapping of plan facets, any subset: engine, scheme,
    offload...) and ``env`` (an ``Environment`` or its JSON) weigh the candidates: a rule
    about another engine or offload is dropped, one that holds on the machine gains.
    """
    return explain_full(text, matrix, plan=plan, context=context, env=env).matches


def explain_full(
    text: str,
    matrix: Matrix | None = None,
    *,
    plan: Plan | None = None,
    context: Mapping[str, str] | None = None,
    env: Any = None,
    device: int = 0,
) -> Explanation:
    """``explain`` with the ambiguity, what tells the causes apart, and what went unclaimed."""
    if matrix is None:
        from quantdoctor.rules.matrix import load_matrix

        matrix = load_matrix()
    packages = {name: spec.package for name, spec in matrix.records.items()}
    return explain_text(
        text,
        matrix.rule_records,
        plan=plan,
        context=context,
        facts=_facts(env, device),
        packages=packages,
    )
