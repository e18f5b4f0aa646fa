"""The stable vocabulary: spelled the same in the CLI, the JSON, the YAML and the tests.

Engines and schemes are not here: they are the matrix's (``engines:`` in matrix.yaml and
its overlays), so that adding one touches the matrix and the engine's module only.
"""

from __future__ import annotations

from collections.abc import Iterable

MODES: tuple[str, ...] = ("pre", "post", "prequantized")
OFFLOADS: tuple[str, ...] = ("none", "model", "sequential", "balanced", "group")
COMPONENTS: tuple[str, ...] = ("transformer", "unet", "text_encoder", "vae", "all_in_one")
DTYPES: tuple[str, ...] = ("bfloat16", "float16", "float32")
BACKENDS: tuple[str, ...] = (
    "cuda",
    "rocm",
    "zluda",
    "xpu",
    "directml",
    "mps",
    "cpu",
    "openvino",
)
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
