"""``quantdoctor detect PATH [--json]``: what a model file is, from its header alone.

Exit 0 when the file was read, 2 (one line naming the file and the problem) when it is
missing, truncated, corrupt or hostile.
"""

from __future__ import annotations

import sys

from quantdoctor.files.detect import Detection, checked, detect

TYPE_CHECKING = False  # typing costs the fast paths ~2 ms of imports
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", help="a .safetensors or .gguf file, a sharded index, or a diffusers folder"
    )
    parser.add_argument("--json", action="store_true", help="print the detection as JSON")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n:.1f} TB"


def _count(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _architecture(d: Detection) -> str:
    if not d.architecture:
        return ""
    named = " ".join(x for x in (d.architecture, d.variant) if x)
    return f" ({named}, {d.layout} layout)" if d.layout else f" ({named})"


def render(d: Detection, indent: str = "") -> list[str]:
    what = (d.engine and f"{d.engine} {d.scheme or '(scheme unknown)'}") or "not quantized"
    lines = [
        f"{indent}{d.path}",
        f"{indent}  format: {d.format}",
        f"{indent}  quantization: {what}",
        f"{indent}  component: {d.component or 'unknown'}" + _architecture(d),
        f"{indent}  parameters: {_count(d.parameters)} in {d.tensors} tensors, "
        f"{_size(d.bytes)} of data",
    ]
    if d.dtypes:
        top = ", ".join(f"{k} {_size(v)}" for k, v in list(d.dtypes.items())[:4])
        lines.append(f"{indent}  storage: {top}")
    lines.extend(f"{indent}  note: {n}" for n in d.notes)
    if d.plan:
        args = " ".join(f"--{k} {v}" for k, v in d.plan.items())
        lines.append(f"{indent}  check it: quantdoctor check {args}")
    for part in d.parts:
        lines.extend(render(part, indent + "  "))
    return lines


def run(args: argparse.Namespace) -> int:
    found = detect(args.path)
    if found.plan is not None or found.parts:
        found = checked(found)  # reads the matrix: only when there is a plan to offer
    if args.json:
        from quantdoctor._json import dumps

        sys.stdout.write(dumps(found.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(render(found)) + "\n")
    return 0
