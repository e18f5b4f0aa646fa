"""The loader's guard: refuse a plan that cannot run here, and explain engine errors.

``preflight(plan)`` probes (unless given an environment) and evaluates the plan: a
blocked plan raises ``IncompatiblePlanError`` before any memory is spent; an unknown one
warns (``QuantDoctorWarning``) or, with ``strict=True``, raises; a plan that works with a
caveat warns. ``guard(plan)`` does that on entry, as a context manager or a decorator,
and turns an engine error raised inside into an ``EngineError`` naming the rule, the
cause and the fix, chained to the original, and still an instance of the original's
type where Python allows, so the loader's own ``except`` clauses keep working. An error
no rule recognises propagates untouched, and nothing is ever swallowed:
``KeyboardInterrupt``, ``SystemExit`` and quantdoctor's own errors pass through as they
are.
"""

from __future__ import annotations

import functools
import inspect
import traceback
import warnings
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from quantdoctor.errors import (
    EngineError,
    IncompatiblePlanError,
    QuantDoctorError,
    QuantDoctorWarning,
)

if TYPE_CHECKING:
    from quantdoctor.rules.explain import Match
    from quantdoctor.rules.matrix import Matrix
    from quantdoctor.rules.models import Environment, Plan, Verdict

__all__ = ["guard", "preflight"]

F = TypeVar("F", bound=Callable[..., Any])


def _as_plan(plan: Plan | Mapping[str, str]) -> Plan:
    from quantdoctor.rules.evaluate import as_plan  # pydantic: on first use only

    return as_plan(plan)


def _evaluate(
    plan: Plan, env: Environment | Mapping[str, Any] | None, matrix: Matrix | None
) -> Verdict:
    from quantdoctor.advise.ranked import evaluate

    if env is None:
        env = _probe(matrix)
    return evaluate(plan, env, matrix)


def _probe(matrix: Matrix | None) -> Environment:
    """This machine, with every package the matrix in hand names (an overlay's too)."""
    from quantdoctor.doctor.probe import probe

    return probe(packages=matrix.packages() if matrix is not None else ())


def _check(verdict: Verdict, strict: bool, stacklevel: int) -> Verdict:
    if verdict.status == "blocked" or (strict and verdict.status == "unknown"):
        raise IncompatiblePlanError(verdict)
    if verdict.status in ("unknown", "warn"):
        warnings.warn(QuantDoctorWarning(verdict.summary()), stacklevel=stacklevel + 1)
    return verdict


def preflight(
    plan: Plan | Mapping[str, str],
    *,
    env: Environment | Mapping[str, Any] | None = None,
    strict: bool = False,
    matrix: Matrix | None = None,
) -> Verdict:
    """Evaluate ``plan`` here (or on ``env``); raise ``IncompatiblePlanError`` if blocked.

    An unknown verdict warns with ``QuantDoctorWarning`` (raises with ``strict=True``);
    a warn verdict warns. Returns the verdict.
    """
    return _check(_evaluate(_as_plan(plan), env, matrix), strict, stacklevel=2)


def explain_exception(
    err: BaseException,
    plan: Plan | None = None,
    matrix: Matrix | None = None,
    env: Environment | Mapping[str, Any] | None = None,
) -> list[Match]:
    """The rules an exception (with its chained causes and traceback) matches, best first.

    With a plan, only rules about its engine (or about no engine in particular) count:
    a bare ``KeyError: None`` inside a quanto load is not gguf's offload bug.
    """
    from quantdoctor.rules.explain import explain_rules

    if matrix is None:
        from quantdoctor.rules.evaluate import default_matrix

        matrix = default_matrix()
    rules = matrix.rules if plan is None else matrix.rules_for(plan.engine)
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    facts = None
    if env is not None:
        from quantdoctor.rules.evaluate import to_facts

        facts = to_facts(env)
    return explain_rules(text, rules, plan, facts)


def _str(err: BaseException) -> str:
    """``str(err)``, for an exception whose ``__str__`` may itself raise."""
    try:
        return str(err)
    except Exception:
        return f"<{type(err).__name__}: str() failed>"


def _engine_error(err: BaseException, matches: list[Match]) -> EngineError | str:
    """The explained error (an ``EngineError`` that is also a ``type(err)``), or only its
    message where no such class can be made: the original then goes on with it as a note."""
    best = matches[0]
    cause = (f"{type(err).__name__}: {_str(err)}".strip().splitlines() or [""])[0][:500]
    lines = [f"[{best.rule}] {best.message}", f"  cause: {cause}"]
    if best.fix:
        lines.append(f"  fix: {best.fix}")
    lines.append(f"  source: {best.source}")
    others = [m.rule for m in matches[1:]]
    if others:
        lines.append(f"  also matches: {', '.join(others)}")
    message, rules = "\n".join(lines), tuple(m.rule for m in matches)
    both = _also_a(type(err))
    if both is not None:
        try:
            return both(message, rules=rules)
        except Exception:
            pass  # a type whose __new__ wants its own arguments
    # Replacing the error by one the caller's ``except`` would not catch breaks the
    # caller: the original goes on, carrying the explanation.
    return message


def _init(self: EngineError, message: str, *, rules: tuple[str, ...] = ()) -> None:
    self.rules = rules
    BaseException.__init__(self, message)  # not the original's __init__: its own arguments


def _reduce(self: EngineError) -> tuple[Any, ...]:
    # The combined class exists only in this process: pickle as a plain EngineError.
    return (EngineError, (str(self),), {"rules": self.rules})


#: original exception type -> its combined EngineError (None: none can be made)
_COMBINED: dict[type[BaseException], type[EngineError] | None] = {}


def _also_a(original: type[BaseException]) -> type[EngineError] | None:
    """An ``EngineError`` that is also an ``original``, or None where none can be made.

    Wrapping must not break the loader's own handlers: ``except ImportError`` around a
    guarded load still catches the explained ``Requires mslk`` error, now with its fix.
    """
    if original not in _COMBINED:
        _COMBINED[original] = _combine(original)
    return _COMBINED[original]


def _combine(original: type[BaseException]) -> type[EngineError] | None:
    if not issubclass(original, Exception) or issubclass(original, EngineError):
        return None
    namespace = {
        "__module__": __name__,
        "__qualname__": "EngineError",
        "__init__": _init,
        "__str__": BaseException.__str__,  # KeyError's would quote the whole message
        "__reduce__": _reduce,
    }
    try:
        return type("EngineError", (EngineError, original), namespace)
    except Exception:  # instance layout conflicts, classes closed to subclassing
        return None


class guard:  # used as ``with guard(plan):`` and ``@guard(plan)``, like a function
    """Preflight on entry; engine errors inside re-raised as ``EngineError`` with the fix.

    A context manager and a decorator (sync and async functions); each entry, or each call
    of a decorated function, runs ``preflight`` again, on an environment probed once.
    """

    def __init__(
        self,
        plan: Plan | Mapping[str, str],
        *,
        env: Environment | Mapping[str, Any] | None = None,
        strict: bool = False,
        matrix: Matrix | None = None,
    ) -> None:
        self.plan = _as_plan(plan)
        self.strict = strict
        self.matrix = matrix
        self._env = env
        self.verdict: Verdict | None = None

    def _environment(self) -> Environment | Mapping[str, Any]:
        if self._env is None:
            self._env = _probe(self.matrix)  # probing costs a subprocess or two: once per guard
        return self._env

    def __enter__(self) -> Verdict:
        verdict = _evaluate(self.plan, self._environment(), self.matrix)
        self.verdict = _check(verdict, self.strict, stacklevel=2)
        return self.verdict

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        # Only ordinary errors are explained: KeyboardInterrupt, SystemExit and
        # GeneratorExit must reach the caller as they are, and our own errors already
        # carry their explanation.
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, QuantDoctorError):
            return False
        try:
            matches = explain_exception(exc, self.plan, self.matrix, self._env)
            explained = _engine_error(exc, matches) if matches else None
        except Exception:
            return False  # explaining failed: the caller's error goes on as it was
        if explained is None:
            return False  # unrecognised: the original propagates untouched
        if isinstance(explained, str):
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note("quantdoctor: " + explained)
            return False
        raise explained from exc

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]
