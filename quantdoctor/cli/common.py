"""Arguments and helpers shared by the subcommands."""

from __future__ import annotations

import sys

from quantdoctor.errors import EXIT_BLOCKED, EXIT_OK, EXIT_UNKNOWN, InvalidInputError
from quantdoctor.errors import MARKS as _MARKS
from quantdoctor.errors import STYLES as _STYLES

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

#: A verdict's status -> the mark, style and exit code of its outcome (``errors``).
_OUTCOME = {"ok": "ok", "warn": "warn", "blocked": "fail", "unknown": "unknown"}
MARKS = {status: _MARKS[o] for status, o in _OUTCOME.items()}
STYLES = {status: _STYLES[o] for status, o in _OUTCOME.items()}
EXIT = {"ok": EXIT_OK, "warn": EXIT_OK, "blocked": EXIT_BLOCKED, "unknown": EXIT_UNKNOWN}


def add_env_args(
    p: argparse.ArgumentParser, *, many: bool = False, default: str = "probe here"
) -> None:
    """``--env`` (``default``: the machine without one), ``--device``, ``--python``,
    ``--matrix`` and ``--json``."""
    if many:
        p.add_argument(
            "--env",
            action="append",
            metavar="FILE",
            default=[],
            help=f"an Environment JSON (repeatable: one column per file); default: {default}",
        )
    else:
        p.add_argument("--env", metavar="FILE", help=f"an Environment JSON; default: {default}")
    add_device_arg(p)
    add_python_arg(p)
    add_matrix_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        type=int,
        default=0,
        metavar="N",
        help="the GPU that runs the model (default: 0)",
    )


def add_matrix_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--matrix",
        action="append",
        metavar="FILE",
        default=[],
        help="an overlay of rules (repeatable)",
    )


def add_python_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--python",
        metavar="PATH",
        help="probe the packages of this interpreter or venv folder, as pip --python does "
        "(default: the one running quantdoctor)",
    )


#: Parameter counts a model quantdoctor sizes can have: a small VAE to the largest DiT.
PLAUSIBLE = (1e6, 1e13)


def type_error(message: str) -> Exception:
    import argparse  # only on a bad value: argparse reads that command line (cli._args)

    return argparse.ArgumentTypeError(message)


def param_count(text: str) -> int:
    """``12B``, ``12e9``, ``1.2e10``, ``450M`` or ``453076992``: a parameter count."""
    scale = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}
    t = text.strip().lower()
    factor = scale.get(t[-1:], 1.0)
    try:
        value = float(t[:-1] if t[-1:] in scale else t) * factor
    except ValueError:
        value = -1.0
    if not value > 0:  # also NaN
        raise type_error(f"{text!r} is not a parameter count; write it like 12B, 12e9 or 450M")
    if not PLAUSIBLE[0] <= value <= PLAUSIBLE[1]:
        hint = ""
        if factor == 1.0 and value < PLAUSIBLE[0]:
            for suffix, mult in (("B", 1e9), ("M", 1e6)):
                if PLAUSIBLE[0] <= value * mult <= PLAUSIBLE[1]:
                    hint = f" (did you mean {text.strip()}{suffix}?)"
                    break
        raise type_error(
            f"{text!r} is {value:g} parameters, not a model's size; give 1M to 10000B, "
            f"like 12B or 12e9{hint}"
        )
    return int(value)


def probe_context(python: str | None) -> Any:
    """The probe context for ``--python PATH`` (``None``: this interpreter)."""
    if not python:
        return None
    from quantdoctor.doctor._probe_python import python_context

    return python_context(python)


def check_device(env: dict[str, Any], device: int) -> None:
    """Bad input if ``--device N`` names a GPU this machine does not have."""
    gpus = env.get("gpus")
    if device and isinstance(gpus, list) and device >= len(gpus):
        have = f"GPUs 0..{len(gpus) - 1}" if gpus else "no GPU"
        raise InvalidInputError(f"--device {device}: this machine has {have}")


def collect(
    deep: bool, device: int, python: str | None = None, packages: Sequence[str] = ()
) -> dict[str, Any]:
    """Probe (``python``: another interpreter's packages; ``packages``: more to read), with
    a spinner on a terminal while the deep (slow) part runs."""
    from quantdoctor.doctor.probe import probe_dict

    ctx = probe_context(python)
    if deep and sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status("compiling and running a Triton test kernel ..."):
            return probe_dict(ctx, deep=True, device=device, packages=packages)
    return probe_dict(ctx, deep=deep, device=device, packages=packages)


def load_env(path: str | None, python: str | None = None, packages: Sequence[str] = ()) -> Any:
    """An Environment from a file, or the probed one (of ``--python``'s interpreter), with
    ``packages`` (those the matrix in hand names: ``matrix.packages()``) read too."""
    if path:
        from quantdoctor.rules.envfile import load_env_file

        return load_env_file(path)
    from quantdoctor.doctor.probe import probe_dict
    from quantdoctor.rules.models import Environment

    return Environment.model_validate(probe_dict(probe_context(python), packages=packages))


#: Environment files whose validated form is kept (a fleet given to ``matrix``).
KEEP_ENVS = 2048


def load_env_data(
    path: str | None,
    python: str | None = None,
    packages: Sequence[str] = (),
    *,
    prune: bool = True,
) -> dict[str, Any]:
    """The Environment JSON of a file (validated once per content, then read back from the
    cache as plain data), or the probed one (the probe's own output: no pydantic)."""
    if not path:
        from quantdoctor.doctor.probe import probe_dict

        return probe_dict(probe_context(python), packages=packages)
    from quantdoctor._dirs import code_digest, digest, read_entry, write_entry
    from quantdoctor.rules.untrusted import ENV_LIMIT, read_user_file

    try:
        text = read_user_file(path, "", InvalidInputError, ENV_LIMIT)
    except InvalidInputError:  # the validating reader says what is wrong, in its words
        return dict(load_env(path).to_json_dict())
    key = digest(code_digest(), text)
    cached = read_entry("env", key)
    if isinstance(cached, dict):
        return cached
    data: dict[str, Any] = load_env(path).to_json_dict()
    write_entry("env", key, data, keep=KEEP_ENVS, prune=prune)
    return data


def rules_inputs(overlays: Sequence[str] | None) -> list[Any]:
    """What the rules a command evaluates are made of, for a cache key: quantdoctor's own
    files (``code_digest``) and every overlay that applies (path, size, mtime): the user's
    config, ``QUANTDOCTOR_MATRIX`` and ``--matrix``. Editing any of them changes it."""
    import os

    from quantdoctor._dirs import code_digest, config_dir

    paths: list[str] = [
        os.path.join(config_dir(), "matrix.yaml"),
        *os.environ.get("QUANTDOCTOR_MATRIX", "").split(os.pathsep),
        *(overlays or []),
    ]
    return [code_digest(), [_stat(os.path.abspath(p)) for p in paths if p.strip()]]


def _stat(path: str) -> list[Any]:
    import os

    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return [path, None]
    return [path, st.st_size, st.st_mtime_ns]


def add_cache_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--no-cache", action="store_true", help=f"rebuild the {what} instead of reading it back"
    )


def load_matrix_args(args: argparse.Namespace) -> Any:
    from quantdoctor.rules.matrix import load_matrix
    from quantdoctor.rules.untrusted import OVERLAY_LIMIT, problem

    for f in args.matrix:  # missing, a directory, a FIFO, a device, too large
        why = problem(f, OVERLAY_LIMIT)
        if why:
            raise InvalidInputError(f"--matrix {f}: {why}")
    return load_matrix(extra=list(args.matrix) or None)


def check_choice(arg: str, value: str | None, valid: tuple[str, ...] | list[str]) -> str | None:
    """``value`` of option ``arg`` as the vocabulary spells it (``--engine bnb`` is
    bitsandbytes: ``rules.aliases``), or ``InvalidInputError`` naming the valid ones."""
    if value is None or value in valid:
        return value
    from quantdoctor.rules.core import check_choice as resolved

    return resolved(arg.lstrip("-"), value, valid, said=arg)


def dump_json(data: Any) -> None:
    from quantdoctor._json import dumps

    try:
        text = dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    except ValueError:  # inf or NaN from an overlay's numbers: not JSON, so null
        text = dumps(_finite(data), indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write(text + "\n")


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if data == data and abs(data) != float("inf") else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def clean(text: str) -> str:
    """Text from outside (a file, an overlay, a tool) made safe to print on a terminal."""
    from quantdoctor._printable import printable

    return printable(text)


def painter(stream: Any = None) -> Any:
    """``paint(text, style)`` for a command's own lines, styled as the report styles its
    (``_printable.styling``, rich's rule): colour on a terminal, bold and dim alone under
    NO_COLOR, the text alone on a pipe, under TERM=dumb or with FORCE_COLOR set empty; a
    non-empty FORCE_COLOR (or TTY_COMPATIBLE=1) styles a pipe too."""
    from quantdoctor._printable import paint, styling

    mode = styling(stream or sys.stdout)
    if not mode:
        return lambda text, style: text
    return lambda text, style: paint(text, style, mode)


def write_lines(lines: list[str]) -> None:
    """Lines whose outside text went through ``clean``: to the stream under the command's
    ``SafeStream``, so the colour codes ``painter`` added reach the terminal."""
    from quantdoctor._printable import raw_stream

    if lines:
        raw_stream(sys.stdout).write("\n".join(lines) + "\n")


#: How a rule's source reads to a user: the documents a pip install does not ship are
#: named with where they live (quantdoctor's repository), the seed by what it is.
_SOURCE_PREFIXES = (
    ("seed: ", "SD.Next's quantization guide (2024): "),
    ("engines.md", "quantdoctor's engine fact sheet (docs/reference/engines.md in its repository)"),
    ("evidence/", "a measured run, in quantdoctor's repository: docs/reference/evidence/"),
    ("benchmarks/results/", "quantdoctor's GPU runs, in its repository: benchmarks/results/"),
)


def plain_source(source: str) -> str:
    """A rule's source in words a user can follow (tags like ``META@F`` dropped)."""
    import re

    text = source
    for prefix, said in _SOURCE_PREFIXES:
        if text.startswith(prefix):
            text = said + text[len(prefix) :]
            break
    text = re.sub(
        r"(?<![\w/])(evidence|benchmarks/results)/",
        lambda m: (
            "in quantdoctor's repository: "
            + ("docs/reference/" if m.group(1) == "evidence" else "")
            + m.group(0)
        ),
        text,
    )
    text = re.sub(r"\s*\b[A-Z][A-Z0-9_]*@[A-Z0-9]+\b", "", text)  # evidence row tags
    text = re.sub(r"\b([a-z][\w-]*)@(\d[\w.]*):(\S+?):L(\d+)\b", r"\1 \2, \3 line \4", text)
    return text.replace("()", "").strip()


def plain_template(text: str) -> str:
    """A rule's message or fix as the rules list shows it: ``{plan.scheme}`` is
    ``<scheme>``, ``{packages.diffusers}`` is ``<diffusers version>``."""
    import re

    def word(m: re.Match[str]) -> str:
        path = m.group(1)
        head, _, rest = path.partition(".")
        if head == "packages":
            return f"<{rest} version>"
        if head in ("plan", "gpu", "torch", "triton"):
            return f"<{head if head != 'plan' else ''}{' ' if head != 'plan' else ''}{rest}>"
        return f"<{path}>"

    return re.sub(r"\{([a-z_][\w.-]*)\}", word, text)
