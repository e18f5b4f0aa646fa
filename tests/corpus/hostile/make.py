"""Re-create the hostile model files in this folder: python tests/corpus/hostile/make.py

Each file is a small safetensors or GGUF file that is truncated, random, or lies about
its sizes, counts, types or nesting; ``expected.json`` maps each file name to the words
``quantdoctor detect`` must say about it (exit 2, one line naming the file). The files are
kept in the repository, so the tests read exactly these bytes; this script says how each
was made. Only the standard library is used, so the bytes do not depend on a writer.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------- safetensors


def st(header: bytes | str | object, data: bytes = b"", length: int | None = None) -> bytes:
    """A safetensors file: u64 header length, the header, the data."""
    raw = (
        header
        if isinstance(header, bytes)
        else (header.encode() if isinstance(header, str) else json.dumps(header).encode())
    )
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def tensor(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


ONE = {"w": tensor("F32", [2], 0, 8)}

SAFETENSORS: dict[str, tuple[bytes, str]] = {
    "st-empty.safetensors": (b"", "too short for a safetensors file"),
    "st-five-bytes.safetensors": (b"\x10\x00\x00\x00\x00", "too short for a safetensors file"),
    "st-huge-header-length.safetensors": (
        st(ONE, b"\0" * 8, length=2**63),
        "exceeds the 100000000 byte limit",
    ),
    "st-header-past-end.safetensors": (st(ONE, b"\0" * 8, length=4096), "truncated: header length"),
    "st-header-length-zero.safetensors": (
        st(b"", length=0) + b"\0" * 8,
        "too short to hold a JSON",
    ),
    "st-not-json.safetensors": (st(b"{this is not json}"), "header is not valid JSON"),
    "st-not-utf8.safetensors": (st(b'{"\xff\xfe": 1}'), "not UTF-8"),
    "st-json-array.safetensors": (st("[1, 2, 3]"), "header JSON is not an object"),
    "st-deep-nesting.safetensors": (st("[" * 5_000 + "]" * 5_000), "nests too deeply"),
    "st-deep-objects.safetensors": (
        st('{"a":' * 5_000 + "1" + "}" * 5_000),
        "nests too deeply",
    ),
    "st-offsets-past-end.safetensors": (
        st({"w": tensor("F32", [1024], 0, 4096)}, b"\0" * 8),
        "lie outside the 8 bytes of data",
    ),
    "st-truncated-data.safetensors": (
        st({"w": tensor("F32", [4], 0, 16)}, b"\0" * 8),
        "lie outside the 8 bytes of data",
    ),
    "st-size-mismatch.safetensors": (
        st({"w": tensor("F32", [3], 0, 8)}, b"\0" * 8),
        "needs 12 bytes but its data_offsets span 8",
    ),
    "st-huge-shape.safetensors": (
        st({"w": tensor("F32", [2**62, 2**62], 0, 8)}, b"\0" * 8),
        "data_offsets span 8",
    ),
    "st-negative-shape.safetensors": (
        st({"w": tensor("F32", [-2], 0, 8)}, b"\0" * 8),
        "not a non-negative integer",
    ),
    "st-overlap.safetensors": (
        st({"a": tensor("F32", [2], 0, 8), "b": tensor("F32", [2], 4, 12)}, b"\0" * 12),
        "overlaps another tensor",
    ),
    "st-gap.safetensors": (
        st({"a": tensor("F32", [1], 0, 4), "b": tensor("F32", [1], 8, 12)}, b"\0" * 12),
        "leaves a gap",
    ),
    "st-trailing-data.safetensors": (st(ONE, b"\0" * 64), "the file holds 64"),
    "st-duplicate-keys.safetensors": (
        st('{"w": ' + json.dumps(ONE["w"]) + ', "w": ' + json.dumps(ONE["w"]) + "}", b"\0" * 8),
        "duplicate key 'w'",
    ),
    "st-unknown-dtype.safetensors": (
        st({"w": tensor("Q4_K", [2], 0, 8)}, b"\0" * 8),
        "unknown dtype 'Q4_K'",
    ),
    "st-metadata-not-strings.safetensors": (
        st({**ONE, "__metadata__": {"format": {"nested": True}}}, b"\0" * 8),
        "__metadata__ must map strings to strings",
    ),
    "st-offsets-not-ints.safetensors": (
        st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8.5]}}, b"\0" * 8),
        "data_offsets must be two integers",
    ),
    "st-bool-shape.safetensors": (
        st({"w": {"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}}, b"\0" * 8),
        "not a non-negative integer",
    ),
    "st-huge-integer.safetensors": (st('{"w": {"shape": [' + "9" * 5000 + "]}}"), "not valid JSON"),
    "st-too-many-dims.safetensors": (
        st({"w": tensor("F32", [1] * 40, 0, 4)}, b"\0" * 4),
        "at most 32 sizes",
    ),
    "st-torchao-bad-metadata.safetensors": (
        st({**ONE, "__metadata__": {"tensor_names": "[not json"}}, b"\0" * 8),
        "metadata 'tensor_names' is not valid JSON",
    ),
}


# ----------------------------------------------------------------------------- GGUF


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv_u32(key: str, value: int) -> bytes:
    return s(key) + struct.pack("<II", 4, value)


def kv_str(key: str, value: str) -> bytes:
    return s(key) + struct.pack("<I", 8) + s(value)


def info(name: str, shape: list[int], type_id: int, offset: int) -> bytes:
    out = s(name) + struct.pack("<I", len(shape))
    out += b"".join(struct.pack("<Q", d) for d in shape)
    return out + struct.pack("<IQ", type_id, offset)


def gguf(
    kvs: list[bytes],
    infos: list[bytes],
    data: bytes = b"",
    n_tensors: int | None = None,
    n_kv: int | None = None,
    version: int = 3,
    alignment: int = 32,
) -> bytes:
    head = b"GGUF" + struct.pack(
        "<IQQ",
        version,
        len(infos) if n_tensors is None else n_tensors,
        len(kvs) if n_kv is None else n_kv,
    )
    body = head + b"".join(kvs) + b"".join(infos)
    pad = -len(body) % alignment
    return body + b"\0" * pad + data


ARCH = kv_str("general.architecture", "flux")
F32_8 = info("w", [8], 0, 0)  # 8 x F32 = 32 bytes

GGUF: dict[str, tuple[bytes, str]] = {
    "gguf-magic-only.gguf": (b"GGUF", "too short for a GGUF file"),
    "gguf-bad-magic.gguf": (b"GGUX" + b"\0" * 60, "bad magic"),
    "gguf-version-1.gguf": (gguf([ARCH], [F32_8], b"\0" * 32, version=1), "version 1"),
    "gguf-version-99.gguf": (
        gguf([ARCH], [F32_8], b"\0" * 32, version=99),
        "unknown GGUF version 99",
    ),
    "gguf-huge-tensor-count.gguf": (
        gguf([ARCH], [F32_8], b"\0" * 32, n_tensors=2**63),
        "limits 1000000 and 65536",
    ),
    "gguf-lying-kv-count.gguf": (
        gguf([ARCH], [F32_8], b"\0" * 32, n_kv=60_000),
        "the counts in the header need more bytes than exist",
    ),
    "gguf-huge-string.gguf": (
        gguf([s("general.architecture")[:0] + struct.pack("<Q", 2**62) + b"abc"], []),
        "exceeds the limit",
    ),
    "gguf-string-past-end.gguf": (
        gguf([struct.pack("<Q", 4000) + b"general.name"], [], b"\0" * 32),
        "truncated",
    ),
    "gguf-unknown-value-type.gguf": (
        gguf([s("general.x") + struct.pack("<I", 77) + b"\0" * 8], []),
        "unknown value type 77",
    ),
    "gguf-huge-array.gguf": (
        gguf([s("tokenizer.scores") + struct.pack("<IIQ", 9, 6, 2**40)], []),
        "exceeds 67108864",
    ),
    "gguf-array-past-end.gguf": (
        gguf([s("tokenizer.scores") + struct.pack("<IIQ", 9, 6, 1_000_000)], []),
        "truncated",
    ),
    "gguf-deep-arrays.gguf": (
        gguf(
            [
                s("x")
                + struct.pack("<I", 9)
                + struct.pack("<IQ", 9, 1) * 40
                + struct.pack("<IQ", 4, 0)
            ],
            [],
        ),
        "arrays nest deeper than 4",
    ),
    "gguf-string-array-lies.gguf": (
        gguf([s("tokenizer.tokens") + struct.pack("<IIQ", 9, 8, 50_000_000)], [], b"\0" * 64),
        "truncated",
    ),
    "gguf-too-many-dims.gguf": (
        gguf([ARCH], [info("w", [1] * 12, 0, 0)], b"\0" * 32),
        "12 dimensions",
    ),
    "gguf-unknown-ggml-type.gguf": (
        gguf([ARCH], [info("w", [8], 200, 0)], b"\0" * 32),
        "unknown ggml type 200",
    ),
    "gguf-data-past-end.gguf": (
        gguf([ARCH], [info("w", [4096, 4096], 0, 0)], b"\0" * 32),
        "lies past the 32 bytes of data",
    ),
    "gguf-huge-offset.gguf": (gguf([ARCH], [info("w", [8], 0, 2**62)], b"\0" * 32), "lies past"),
    "gguf-misaligned.gguf": (
        gguf([ARCH], [info("w", [4], 0, 4)], b"\0" * 32),
        "offset 4 is not aligned",
    ),
    "gguf-duplicate-tensor.gguf": (
        gguf([ARCH], [info("w", [4], 0, 0), info("w", [4], 0, 32)], b"\0" * 64),
        "appears twice",
    ),
    "gguf-bad-alignment.gguf": (
        gguf([ARCH, kv_u32("general.alignment", 24)], [F32_8], b"\0" * 64),
        "is not a power of two",
    ),
    "gguf-partial-block.gguf": (
        gguf([ARCH], [info("w", [33], 8, 0)], b"\0" * 64),
        "Q8_0 needs rows of a multiple of 32",
    ),
    "gguf-not-utf8-key.gguf": (
        gguf([s(b"\xff\xfe") + struct.pack("<II", 4, 1)], []),
        "not valid UTF-8",
    ),
    "gguf-truncated-tensor-info.gguf": (
        b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + ARCH + F32_8[:-6],
        "truncated: the file ends inside tensor info #0",
    ),
}


# --------------------------------------------------------------------- anything else


def random_bytes(n: int, seed: int) -> bytes:
    # A fixed linear congruential sequence: the same bytes on every machine and Python.
    out = bytearray()
    x = seed
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        out.append(x >> 56)
    return bytes(out)


OTHER: dict[str, tuple[bytes, str]] = {
    "random.safetensors": (random_bytes(4096, 1), "safetensors"),
    "random.gguf": (random_bytes(4096, 2), "bad magic"),
    "random.bin": (random_bytes(4096, 3), "not a safetensors or GGUF file"),
    "gguf-magic-in-safetensors-name.safetensors": (
        gguf([ARCH], [F32_8], b"\0" * 32, version=99),
        "unknown GGUF version 99",
    ),
}


def main() -> int:
    expected: dict[str, str] = {}
    for name, (data, says) in {**SAFETENSORS, **GGUF, **OTHER}.items():
        (HERE / name).write_bytes(data)
        expected[name] = says
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"{len(expected)} hostile files written to {os.path.relpath(HERE)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
