"""The error hierarchy: short, under one root, each subclassing the builtin a caller
would already catch (as ``packaging`` does); and how an outcome is shown and returned,
defined once for the report and every command: ``MARKS`` and ``STYLES`` are flutter
doctor's marks and their rich styles, ``EXIT_*`` the process exit codes (the README
documents them; bad input, any ``InvalidInputError``, is ``EXIT_BAD_INPUT``)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    from quantdoctor.rules.models import Verdict


#: ``-`` is a neutral fact (nothing to fix).
MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "unknown": "?", "none": "-"}
STYLES = {"ok": "green", "warn": "yellow", "fail": "red", "unknown": "magenta", "none": "dim"}

EXIT_OK, EXIT_BLOCKED, EXIT_BAD_INPUT, EXIT_UNKNOWN = 0, 1, 2, 3


class QuantDoctorError(Exception):
    """Root of every error quantdoctor raises on purpose."""


class InvalidInputError(QuantDoctorError, ValueError):
    """Bad input from the user: an argument, a file, a field. The CLI exits 2."""


class MatrixError(InvalidInputError):
    """A malformed matrix or overlay: ``file:line: field: what is wrong; valid values are ...``."""


class EnvironmentFileError(InvalidInputError):
    """An Environment JSON that does not follow the contract."""


class UnreadableFileError(InvalidInputError, OSError):
    """A model or header file that is missing, truncated, corrupt or hostile."""


class IncompatiblePlanError(QuantDoctorError, RuntimeError):
    """A plan that cannot run here (or, with ``strict=True``, might not).

    Carries the verdict: the rule ids, messages, fixes and alternatives.
    """

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        super().__init__(verdict.summary())

    def __reduce__(self) -> tuple[type[IncompatiblePlanError], tuple[Verdict]]:
        # made again from its verdict (pickle, copy, multiprocessing, pytest-xdist)
        return (type(self), (self.verdict,))


class EngineError(QuantDoctorError, RuntimeError):
    """An engine's own error, recognised by a rule's signature and explained."""

    def __init__(self, message: str, *, rules: tuple[str, ...] = ()) -> None:
        self.rules = rules
        super().__init__(message)


class QuantDoctorWarning(UserWarning):
    """A plan whose compatibility is unknown, or that works with a caveat."""
