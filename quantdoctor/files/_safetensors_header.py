"""Reading a safetensors header with the standard library only, bounded against hostile files.

The format: an unsigned little-endian 64-bit header length N, N bytes of UTF-8 JSON
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``),
then the tensor data. Only the 8 + N header bytes are read. The checks are the ones the
safetensors library applies when it opens a file (header at most 100 MB, offsets
contiguous and covering the data exactly, sizes matching dtype x shape), so a file this
module accepts is one the loader would open, and one it refuses gets a sentence instead
of a Rust panic or a traceback. Two bounds are this module's own, stricter than the
library: a key given twice (the library keeps the last, hiding a tensor) and more than
``MAX_RANK`` dimensions.
"""

from __future__ import annotations

import os
import struct

from quantdoctor._fileio import open_regular, read_exact, unreadable
from quantdoctor._json import loads

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from typing import Any, BinaryIO, NamedTuple
else:
    from quantdoctor._namedtuple import NamedTuple

#: The safetensors library's own limit (``MAX_HEADER_SIZE`` in safetensors' Rust code).
MAX_HEADER_BYTES = 100_000_000
#: No real model has more; it bounds the work done per header.
MAX_TENSORS = 1_000_000
#: Real tensors have at most a handful of dimensions; this bounds shape products.
MAX_RANK = 32

#: Bits per element of each safetensors dtype (sub-byte float types included).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "F8_E8M0": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}


class TensorEntry(NamedTuple):
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int
    #: elements, the product of ``shape`` (computed once: headers hold thousands)
    numel: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


class SafetensorsHeader(NamedTuple):
    tensors: tuple[TensorEntry, ...]
    metadata: dict[str, str]
    header_bytes: int
    data_bytes: int


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {dup[:80]!r}")
    return out


def _entry(path: str | os.PathLike[str], name: str, info: object, data_bytes: int) -> TensorEntry:
    # Checks are written out (``type(x) is int`` rather than isinstance: no bools) because
    # they run once per tensor, thousands of times per header.
    if type(info) is not dict:
        raise unreadable(path, f"tensor {name[:120]!r}: header entry is not an object")
    # Other fields are ignored, as the safetensors library ignores them.
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if type(dtype) is not str or dtype not in DTYPE_BITS:
        raise unreadable(path, f"tensor {name[:120]!r}: unknown dtype {str(dtype)[:40]!r}")
    bits_each = DTYPE_BITS[dtype]
    if type(shape) is not list or len(shape) > MAX_RANK:
        raise unreadable(
            path, f"tensor {name[:120]!r}: shape must be a list of at most {MAX_RANK} sizes"
        )
    numel = 1
    for d in shape:
        if type(d) is not int or d < 0:
            raise unreadable(
                path, f"tensor {name[:120]!r}: shape has a size that is not a non-negative integer"
            )
        numel *= d
    if type(offsets) is not list or len(offsets) != 2:
        raise unreadable(path, f"tensor {name[:120]!r}: data_offsets must be two integers")
    begin, end = offsets
    if type(begin) is not int or type(end) is not int:
        raise unreadable(path, f"tensor {name[:120]!r}: data_offsets must be two integers")
    if not 0 <= begin <= end <= data_bytes:
        raise unreadable(
            path,
            f"tensor {name[:120]!r}: data_offsets [{begin}, {end}] lie outside the "
            f"{data_bytes} bytes of data in the file (truncated or lying header)",
        )
    entry = TensorEntry(name, dtype, tuple(shape), begin, end, numel)
    bits = numel * bits_each
    if bits % 8:
        # safetensors refuses these too: sub-byte tensors must end on a byte boundary
        raise unreadable(
            path,
            f"tensor {name[:120]!r}: {numel} x {dtype} is {bits} bits, not a whole number of bytes",
        )
    expected = bits // 8
    if expected != end - begin:
        # A lying shape can multiply out to hundreds of digits: keep the line readable.
        needs = f"{expected}" if expected < 10**18 else f"more than {10**18:.0e}"
        raise unreadable(
            path,
            f"tensor {name[:120]!r}: {dtype} x {str(list(shape))[:80]} needs {needs} bytes "
            f"but its data_offsets span {end - begin}",
        )
    return entry


def _check_layout(path: str | os.PathLike[str], entries: list[TensorEntry], data: int) -> None:
    """Offsets must tile the data region with no gap or overlap, as safetensors requires."""
    position = 0
    for e in sorted(entries, key=lambda t: (t.begin, t.end)):
        if e.begin != position:
            problem = "overlaps another tensor" if e.begin < position else "leaves a gap"
            raise unreadable(path, f"tensor {e.name[:120]!r}: data_offsets {problem}")
        position = e.end
    if position != data:
        raise unreadable(
            path,
            f"the header describes {position} bytes of tensor data but the file holds {data}"
            + (" (truncated)" if position > data else ""),
        )


def parse_header(raw: bytes, path: str | os.PathLike[str], data_bytes: int) -> SafetensorsHeader:
    """Validate the JSON header bytes of a file whose data region holds ``data_bytes``."""
    try:
        text = raw.decode("utf-8")
        header = loads(text)
        # A tensor named twice hides one of them. Every tensor entry holds one
        # "data_offsets", so fewer entries than that word's count means a name repeats
        # (or the word sits inside a string): only then is the slower, exact parse run.
        if isinstance(header, dict) and len(header) - ("__metadata__" in header) < text.count(
            '"data_offsets"'
        ):
            loads(text, object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise unreadable(path, "header is not UTF-8 text (not a safetensors file?)") from None
    except RecursionError:
        # The C JSON parser guards its recursion, so ``[[[[...`` ends here, not in a crash;
        # anything nested but shallower fails the schema checks below.
        raise unreadable(path, "header JSON nests too deeply") from None
    except ValueError as err:  # JSONDecodeError, duplicate keys, int-digit limit
        raise unreadable(path, f"header is not valid JSON: {str(err)[:160]}") from None
    if not isinstance(header, dict):
        raise unreadable(path, "header JSON is not an object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise unreadable(path, "__metadata__ must map strings to strings")
    if len(header) > MAX_TENSORS:
        raise unreadable(path, f"header lists {len(header)} tensors (limit {MAX_TENSORS})")
    entries = [_entry(path, name, info, data_bytes) for name, info in header.items()]
    _check_layout(path, entries, data_bytes)
    return SafetensorsHeader(tuple(entries), metadata, len(raw), data_bytes)


def read_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """Read and validate the header of the safetensors file at ``path``; never reads tensors."""
    f, size = open_regular(path)
    with f:
        return read_from(f, size, path)


def read_from(f: BinaryIO, size: int, path: str | os.PathLike[str]) -> SafetensorsHeader:
    """The header of a safetensors file of ``size`` bytes open as ``f`` at its start."""
    if size < 8:
        raise unreadable(path, f"truncated: {size} bytes is too short for a safetensors file")
    (n,) = struct.unpack("<Q", read_exact(f, 8, path, "the header length"))
    if n > MAX_HEADER_BYTES:
        raise unreadable(path, f"header length {n} exceeds the {MAX_HEADER_BYTES} byte limit")
    if n > size - 8:
        raise unreadable(path, f"truncated: header length {n} but only {size - 8} bytes follow it")
    if n < 2:
        raise unreadable(path, f"header length {n} is too short to hold a JSON object")
    raw = read_exact(f, n, path, "the JSON header")
    # The format allows trailing spaces as padding after the JSON.
    return parse_header(raw.rstrip(b" "), path, size - 8 - n)


def looks_like_safetensors(prefix: bytes) -> bool:
    """Whether the first bytes could start a safetensors file (length, then ``{``)."""
    if len(prefix) < 9:
        return False
    (n,) = struct.unpack("<Q", prefix[:8])
    return 2 <= n <= MAX_HEADER_BYTES and prefix[8:9] == b"{"
