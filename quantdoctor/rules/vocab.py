"""The stable vocabulary: spelled the same in the CLI, the JSON, the YAML and the tests.

Engines and schemes are not here: they are the matrix's (``engines:`` in matrix.yaml and
its overlays), so that adding one touches the matrix and the engine's module only.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs the probe's fast path ~2 ms of imports
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import NamedTuple
else:
    from quantdoctor._namedtuple import NamedTuple

MODES: tuple[str, ...] = ("pre", "post", "prequantized")
OFFLOADS: tuple[str, ...] = ("none", "model", "sequential", "balanced", "group")
COMPONENTS: tuple[str, ...] = ("transformer", "unet", "text_encoder", "vae", "all_in_one")
DTYPES: tuple[str, ...] = ("bfloat16", "float16", "float32")
#: A rule's severity (``Rule.severity``), strongest first.
SEVERITIES: tuple[str, ...] = ("block", "warn", "info")
#: The values of each plan facet the vocabulary fixes (engines and schemes are the matrix's).
FACET_VALUES: dict[str, tuple[str, ...]] = {
    "mode": MODES,
    "offload": OFFLOADS,
    "component": COMPONENTS,
    "dtype": DTYPES,
}


class Backend(NamedTuple):
    """A row of ``BACKEND_TABLE``."""

    name: str
    vendor: str | None
    accelerator: bool
    triton: str | None


#: Every backend, once: (name, the GPU vendor whose devices it numbers (None: any or
#: none), whether it runs the model on an accelerator, Triton's device kind there (None:
#: Triton has no backend for it)). Rules select on these as facts: ``backend.vendor``,
#: ``backend.accelerator``, ``backend.triton``; the probe numbers GPUs by the vendor.
BACKEND_TABLE: tuple[Backend, ...] = (
    Backend("cuda", "nvidia", True, "cuda"),
    Backend("rocm", "amd", True, "hip"),
    Backend("zluda", "amd", True, None),  # CUDA's API on AMD GPUs; Triton has no ZLUDA target
    Backend("xpu", "intel", True, "xpu"),
    Backend("directml", None, True, None),  # any vendor's GPU through DirectX 12
    Backend("mps", "apple", True, None),
    Backend("cpu", None, False, None),
    Backend("openvino", None, False, None),  # torch on the CPU, OpenVINO's runtime for nncf
)
BACKENDS: tuple[str, ...] = tuple(row.name for row in BACKEND_TABLE)
BACKEND_ROWS: dict[str, Backend] = {row.name: row for row in BACKEND_TABLE}
OS_NAMES: tuple[str, ...] = ("linux", "windows", "darwin")


def suggest(value: str, valid: Iterable[str]) -> str:
    """``valid values are a, b, c`` plus ``did you mean x?`` when one is close."""
    import difflib  # only on the error path

    options = list(valid)
    text = "valid values are " + ", ".join(options)
    # a prefix names its word ("win" is windows, though difflib finds darwin closer)
    close = [o for o in options if value and o.lower().startswith(value.lower())][:1]
    close = close or difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    if not close:
        lowered = {o.lower(): o for o in options}
        if value.lower() in lowered:
            close = [lowered[value.lower()]]
    if close:
        text += f" (did you mean {close[0]}?)"
    return text


def canonical_name(name: str) -> str:
    """A distribution name as PyPI normalises it (``packaging.utils.canonicalize_name``,
    ``re.sub(r"[-_.]+", "-", name).lower()``): ``Optimum_Quanto`` -> ``optimum-quanto``."""
    name = name.replace("_", "-").replace(".", "-")
    while "--" in name:
        name = name.replace("--", "-")
    return name.lower()


#: A rule id: dotted lower-case words like ``quanto.offload.balanced``
#: (``^[a-z0-9_]+(\.[a-z0-9_\-]+)+$``, read by ``is_rule_id``: the command line reads
#: every cached rule's id, and ``re`` costs a process half its start-up).
def is_rule_id(text: str) -> bool:
    """Whether ``text`` is a rule id (the pattern above; ``$`` takes one final newline)."""
    if text.endswith("\n"):
        text = text[:-1]
    head, dot, rest = text.partition(".")
    if not dot or not head or "-" in head or "" in rest.split("."):
        return False
    # what is left once the separators go must be ASCII lower-case letters and digits
    plain = text.replace(".", "").replace("-", "").replace("_", "")
    return not plain or (plain.isascii() and plain.isalnum() and plain == plain.lower())
