"""Reading a safetensors header with the standard library only, bounded against hostile files.

The format: an unsigned little-endian 64-bit header length N, N bytes of UTF-8 JSON
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``),
then the tensor data. Only the 8 + N header bytes are read. The checks are the ones the
safetensors library applies when it opens a file (header at most 100 MB, offsets
contiguous and covering the data exactly, sizes matching dtype x shape), so a file this
module accepts is one the loader would open, and one it refuses gets a sentence instead
of a Rust panic or a traceback.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Any

from quantdoctor.doctor._fileio import open_regular, read_exact, unreadable

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


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class SafetensorsHeader:
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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(path: str | os.PathLike[str], name: str, info: object, data_bytes: int) -> TensorEntry:
    where = f"tensor {name[:120]!r}"
    if not isinstance(info, dict):
        raise unreadable(path, f"{where}: header entry is not an object")
    unknown = set(info) - {"dtype", "shape", "data_offsets"}
    if unknown:
        raise unreadable(path, f"{where}: unexpected field {sorted(unknown)[0][:40]!r}")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise unreadable(path, f"{where}: unknown dtype {str(dtype)[:40]!r}")
    if not isinstance(shape, list) or len(shape) > MAX_RANK:
        raise unreadable(path, f"{where}: shape must be a list of at most {MAX_RANK} sizes")
    if not all(_is_int(d) and d >= 0 for d in shape):
        raise unreadable(path, f"{where}: shape has a size that is not a non-negative integer")
    if not (
        isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
    ):
        raise unreadable(path, f"{where}: data_offsets must be two integers")
    begin, end = offsets
    if not 0 <= begin <= end <= data_bytes:
        raise unreadable(
            path,
            f"{where}: data_offsets [{begin}, {end}] lie outside the {data_bytes} bytes "
            "of data in the file (truncated or lying header)",
        )
    entry = TensorEntry(name, dtype, tuple(shape), begin, end)
    expected = -(-entry.numel * DTYPE_BITS[dtype] // 8)
    if expected != end - begin:
        raise unreadable(
            path,
            f"{where}: {dtype} x {list(shape)} needs {expected} bytes "
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
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
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
        if size < 8:
            raise unreadable(path, f"truncated: {size} bytes is too short for a safetensors file")
        (n,) = struct.unpack("<Q", read_exact(f, 8, path, "the header length"))
        if n > MAX_HEADER_BYTES:
            raise unreadable(
                path, f"header length {n} exceeds the {MAX_HEADER_BYTES} byte limit"
            )
        if n > size - 8:
            raise unreadable(
                path, f"truncated: header length {n} but only {size - 8} bytes follow it"
            )
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
