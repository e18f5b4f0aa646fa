"""Reading a GGUF header with the standard library only, bounded against hostile files.

The format (versions 2 and 3): magic ``GGUF``, u32 version, u64 tensor count, u64
key/value count, the key/values, then one info per tensor (name, dims, ggml type, offset
into the data region), padding to ``general.alignment``, then the data. Nothing says how
long the header is, so it is read as a stream through a small window: memory stays
bounded whatever the counts claim, large scalar arrays (token scores) are skipped with a
seek, and every count is checked against the bytes the file has left before a loop runs,
so a lying header fails in microseconds instead of looping for minutes.
"""

from __future__ import annotations

import os
import struct

from quantdoctor._fileio import open_regular, unreadable
from quantdoctor._ggml import BY_ID

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from typing import BinaryIO, NamedTuple
else:
    from quantdoctor._namedtuple import NamedTuple

GGUF_MAGIC = b"GGUF"
MAX_TENSORS = 1_000_000
MAX_KV = 65_536
MAX_KEY_BYTES = 65_536
MAX_STRING_BYTES = 16 * 1024 * 1024
MAX_ARRAY_LEN = 64 * 1024 * 1024
#: Array elements that must be visited one by one (strings, nested arrays), file-wide.
#: The largest tokenizer vocabularies hold ~256k strings.
MAX_VISITED_ELEMENTS = 4_000_000
MAX_ARRAY_DEPTH = 4
MAX_DIMS = 8
MAX_NAME_BYTES = 4096
#: Arrays longer than this are summarised, not kept (their strings are skipped unread).
KEEP_ARRAY_LEN = 64
#: Bytes of strings kept in memory (keys and values), file-wide: real headers keep a few
#: KB (a chat template is the longest); a file of gigabytes of strings is refused.
MAX_KEPT_BYTES = 64 * 1024 * 1024
_WINDOW = 1 << 16

#: ``general.file_type`` (gguf-py's ``LlamaFileType``) -> (name, the ggml type that holds
#: most of such a file, as llama.cpp's ``llama_model_quantize_impl`` picks its default
#: type; None where no one type does). ``_S``/``_M``/``_L`` mixes keep more sensitive
#: tensors in larger types around that default.
LLAMA_FILE_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("ALL_F32", "F32"),
    1: ("MOSTLY_F16", "F16"),
    2: ("MOSTLY_Q4_0", "Q4_0"),
    3: ("MOSTLY_Q4_1", "Q4_1"),
    7: ("MOSTLY_Q8_0", "Q8_0"),
    8: ("MOSTLY_Q5_0", "Q5_0"),
    9: ("MOSTLY_Q5_1", "Q5_1"),
    10: ("MOSTLY_Q2_K", "Q2_K"),
    11: ("MOSTLY_Q3_K_S", "Q3_K"),
    12: ("MOSTLY_Q3_K_M", "Q3_K"),
    13: ("MOSTLY_Q3_K_L", "Q3_K"),
    14: ("MOSTLY_Q4_K_S", "Q4_K"),
    15: ("MOSTLY_Q4_K_M", "Q4_K"),
    16: ("MOSTLY_Q5_K_S", "Q5_K"),
    17: ("MOSTLY_Q5_K_M", "Q5_K"),
    18: ("MOSTLY_Q6_K", "Q6_K"),
    19: ("MOSTLY_IQ2_XXS", "IQ2_XXS"),
    20: ("MOSTLY_IQ2_XS", "IQ2_XS"),
    21: ("MOSTLY_Q2_K_S", "Q2_K"),
    22: ("MOSTLY_IQ3_XS", "IQ3_S"),
    23: ("MOSTLY_IQ3_XXS", "IQ3_XXS"),
    24: ("MOSTLY_IQ1_S", "IQ1_S"),
    25: ("MOSTLY_IQ4_NL", "IQ4_NL"),
    26: ("MOSTLY_IQ3_S", "IQ3_S"),
    27: ("MOSTLY_IQ3_M", "IQ3_S"),
    28: ("MOSTLY_IQ2_S", "IQ2_S"),
    29: ("MOSTLY_IQ2_M", "IQ2_S"),
    30: ("MOSTLY_IQ4_XS", "IQ4_XS"),
    31: ("MOSTLY_IQ1_M", "IQ1_M"),
    32: ("MOSTLY_BF16", "BF16"),
    36: ("MOSTLY_TQ1_0", "TQ1_0"),
    37: ("MOSTLY_TQ2_0", "TQ2_0"),
    38: ("MOSTLY_MXFP4_MOE", "MXFP4"),
    39: ("MOSTLY_NVFP4", "NVFP4"),
    40: ("MOSTLY_Q1_0", "Q1_0"),
    1024: ("GUESSED", None),
}

# GGUF value type id -> struct code of fixed-size scalars.
_SCALARS: dict[int, str] = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9

Value = int | float | bool | str | list["Value"] | dict[str, int]


class GGUFTensor(NamedTuple):
    name: str
    shape: tuple[int, ...]
    type_id: int
    type_name: str
    offset: int
    numel: int
    nbytes: int


class GGUFHeader(NamedTuple):
    version: int
    byteorder: str
    metadata: dict[str, Value]
    tensors: tuple[GGUFTensor, ...]
    alignment: int
    data_start: int
    file_size: int


class _Stream:
    """Sequential reads through a bounded window, with bounds checked against the file size."""

    def __init__(self, f: BinaryIO, size: int, path: str | os.PathLike[str], order: str) -> None:
        self._f, self.size, self.path, self.order = f, size, path, order
        self.pos = 0
        self._buf = b""
        self._buf_at = 0

    def left(self) -> int:
        return self.size - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.left():
            raise unreadable(self.path, f"truncated: the file ends inside {what}")
        offset = self.pos - self._buf_at
        if offset + n > len(self._buf):
            self._f.seek(self.pos)
            self._buf = self._f.read(max(n, _WINDOW))
            self._buf_at, offset = self.pos, 0
            if len(self._buf) < n:
                raise unreadable(self.path, f"truncated: the file ends inside {what}")
        self.pos += n
        return self._buf[offset : offset + n]

    def skip(self, n: int, what: str) -> None:
        if n > self.left():
            raise unreadable(self.path, f"truncated: the file ends inside {what}")
        self.pos += n

    def scalar(self, code: str, what: str) -> int | float | bool:
        size = struct.calcsize(code)
        value: int | float | bool = struct.unpack(self.order + code, self.take(size, what))[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar("I", what))

    def u64(self, what: str) -> int:
        return int(self.scalar("Q", what))

    def _length(self, what: str, limit: int) -> int:
        n = self.u64(what)
        if n > limit:
            raise unreadable(self.path, f"{what}: string length {n} exceeds the limit of {limit}")
        return n

    def skip_string(self, what: str, limit: int) -> None:
        self.skip(self._length(what, limit), what)

    def string(self, what: str, limit: int, budget: _Budget | None = None) -> str:
        n = self._length(what, limit)
        if budget is not None:
            budget.kept_bytes += n
            if budget.kept_bytes > MAX_KEPT_BYTES:
                raise unreadable(
                    self.path, f"{what}: metadata strings exceed {MAX_KEPT_BYTES} bytes in all"
                )
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise unreadable(self.path, f"{what}: not valid UTF-8") from None


class _Budget:
    """What one header may cost: array items visited, string bytes kept in memory."""

    def __init__(self) -> None:
        self.visited = 0
        self.kept_bytes = 0


def _array(s: _Stream, what: str, depth: int, budget: _Budget) -> Value:
    if depth > MAX_ARRAY_DEPTH:
        raise unreadable(s.path, f"{what}: arrays nest deeper than {MAX_ARRAY_DEPTH}")
    item_type = s.u32(what)
    count = s.u64(what)
    if count > MAX_ARRAY_LEN:
        raise unreadable(s.path, f"{what}: array of {count} items exceeds {MAX_ARRAY_LEN}")
    if item_type in _SCALARS:
        code = _SCALARS[item_type]
        size = struct.calcsize(code)
        if count <= KEEP_ARRAY_LEN:
            raw = s.take(size * count, what)
            return list(struct.unpack(f"{s.order}{count}{code}", raw))
        s.skip(size * count, what)  # token scores and the like: not needed, not read
        return {"array_type": item_type, "length": count}
    if item_type not in (_STRING, _ARRAY):
        raise unreadable(s.path, f"{what}: unknown array item type {item_type}")
    # Each string or sub-array takes at least 8 bytes: refuse a count the file cannot hold
    # before looping over it.
    if count * 8 > s.left():
        raise unreadable(s.path, f"truncated: {what} claims {count} items past the end of file")
    budget.visited += count
    if budget.visited > MAX_VISITED_ELEMENTS:
        raise unreadable(s.path, f"{what}: more than {MAX_VISITED_ELEMENTS} array items in all")
    if count > KEEP_ARRAY_LEN:  # a vocabulary: walked over, not read
        for _ in range(count):
            if item_type == _STRING:
                s.skip_string(what, MAX_STRING_BYTES)
            else:
                _array(s, what, depth + 1, budget)
        return {"array_type": item_type, "length": count}
    return [
        s.string(what, MAX_STRING_BYTES, budget)
        if item_type == _STRING
        else _array(s, what, depth + 1, budget)
        for _ in range(count)
    ]


def _value(s: _Stream, vtype: int, what: str, budget: _Budget) -> Value:
    if vtype in _SCALARS:
        return s.scalar(_SCALARS[vtype], what)
    if vtype == _STRING:
        return s.string(what, MAX_STRING_BYTES, budget)
    if vtype == _ARRAY:
        return _array(s, what, 1, budget)
    raise unreadable(s.path, f"{what}: unknown value type {vtype}")


def _tensor(s: _Stream, index: int) -> tuple[str, tuple[int, ...], int, int]:
    what = f"tensor info #{index}"
    name = s.string(what, MAX_NAME_BYTES)
    n_dims = s.u32(what)
    if n_dims > MAX_DIMS:
        raise unreadable(s.path, f"tensor {name[:120]!r}: {n_dims} dimensions (limit {MAX_DIMS})")
    shape = tuple(s.u64(what) for _ in range(n_dims))
    type_id = s.u32(what)
    offset = s.u64(what)
    return name, shape, type_id, offset


def _sized(path: str | os.PathLike[str], raw: tuple[str, tuple[int, ...], int, int]) -> GGUFTensor:
    name, shape, type_id, offset = raw
    where = f"tensor {name[:120]!r}"
    ggml = BY_ID.get(type_id)
    if ggml is None:
        raise unreadable(path, f"{where}: unknown ggml type {type_id}")
    type_name, block, block_bytes = ggml.name, ggml.block, ggml.block_bytes
    numel = 1
    for d in shape:
        numel *= d
    if shape and shape[0] % block:
        raise unreadable(
            path, f"{where}: {type_name} needs rows of a multiple of {block}, got {shape[0]}"
        )
    return GGUFTensor(name, shape, type_id, type_name, offset, numel, numel // block * block_bytes)


def _open_stream(f: BinaryIO, size: int, path: str | os.PathLike[str]) -> tuple[_Stream, int]:
    if size < 24:
        raise unreadable(path, f"truncated: {size} bytes is too short for a GGUF file")
    f.seek(0)
    head = f.read(8)
    if head[:4] != GGUF_MAGIC:
        raise unreadable(path, "not a GGUF file (bad magic)")
    little, big = struct.unpack("<I", head[4:8])[0], struct.unpack(">I", head[4:8])[0]
    # gguf-py's own rule: a big-endian file shows its version in the high half when read LE.
    order, version = ("<", little) if little & 0xFFFF else (">", big)
    if version == 1:
        raise unreadable(path, "GGUF version 1 is not supported (llama.cpp dropped it in 2023)")
    if version not in (2, 3):
        raise unreadable(path, f"unknown GGUF version {version}")
    s = _Stream(f, size, path, order)
    s.pos = 8
    return s, version


def read_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Read and validate the header of the GGUF file at ``path``; never reads tensor data."""
    f, size = open_regular(path)
    with f:
        return read_from(f, size, path)


def read_from(f: BinaryIO, size: int, path: str | os.PathLike[str]) -> GGUFHeader:
    """The header of a GGUF file of ``size`` bytes open as ``f`` (``path`` names it in errors)."""
    s, version = _open_stream(f, size, path)
    n_tensors = s.u64("the tensor count")
    n_kv = s.u64("the key/value count")
    if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
        raise unreadable(
            path,
            f"header claims {n_tensors} tensors and {n_kv} keys "
            f"(limits {MAX_TENSORS} and {MAX_KV})",
        )
    # A key/value takes at least 8 + 4 + 1 bytes, a tensor info at least 8 + 4 + 4 + 8.
    if n_kv * 13 + n_tensors * 24 > s.left():
        raise unreadable(path, "truncated: the counts in the header need more bytes than exist")
    metadata: dict[str, Value] = {}
    budget = _Budget()
    for i in range(n_kv):
        key = s.string(f"key #{i}", MAX_KEY_BYTES, budget)
        what = f"value of {key[:120]!r}"
        metadata[key] = _value(s, s.u32(what), what, budget)
    raw = [_tensor(s, i) for i in range(n_tensors)]
    info_end = s.pos
    alignment = metadata.get("general.alignment", 32)
    if (
        not isinstance(alignment, int)
        or isinstance(alignment, bool)
        or alignment <= 0
        or alignment & (alignment - 1)
        or alignment > 1 << 20
    ):
        raise unreadable(path, f"general.alignment {alignment!r} is not a power of two")
    data_start = -(-info_end // alignment) * alignment
    data_bytes = size - data_start
    tensors = tuple(_sized(path, t) for t in raw)
    names: set[str] = set()
    for t in tensors:
        if t.name in names:
            raise unreadable(path, f"tensor {t.name[:120]!r} appears twice")
        names.add(t.name)
        if t.offset % alignment:
            raise unreadable(path, f"tensor {t.name[:120]!r}: offset {t.offset} is not aligned")
        if t.offset + t.nbytes > data_bytes:
            raise unreadable(
                path,
                f"tensor {t.name[:120]!r}: data at {t.offset}..{t.offset + t.nbytes} lies past "
                f"the {max(data_bytes, 0)} bytes of data in the file (truncated or lying header)",
            )
    return GGUFHeader(version, s.order, metadata, tensors, alignment, data_start, size)


def looks_like_gguf(prefix: bytes) -> bool:
    return prefix[:4] == GGUF_MAGIC
