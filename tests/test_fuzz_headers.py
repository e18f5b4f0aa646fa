"""Both header parsers, fuzzed: whatever the bytes, a header or one ``UnreadableFileError``.

Three kinds of input: random bytes; headers built from the format's own pieces with
values a lying writer would use; and real files (written by ``safetensors`` and
``gguf.GGUFWriter``) with bytes changed and cut. Where the safetensors parser accepts a
file, the safetensors library must load it too and see the same tensors (the parser's
promise: it accepts what the loader would open). Hostile files found here belong in
tests/corpus/hostile.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantdoctor.errors import UnreadableFileError
from quantdoctor.files import _gguf_header, _safetensors_header

safetensors = pytest.importorskip("safetensors")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")

#: A longer campaign: QUANTDOCTOR_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz_headers.py
FUZZ = settings(
    max_examples=int(os.environ.get("QUANTDOCTOR_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: Examples that go through a file on disk and gguf-py's reader cost more: a third as many.
FUZZ_FILES = settings(FUZZ, max_examples=max(FUZZ.max_examples // 3, 1))


def parse_safetensors(data: bytes) -> _safetensors_header.SafetensorsHeader | None:
    try:
        return _safetensors_header.read_from(io.BytesIO(data), len(data), "fuzz.safetensors")
    except UnreadableFileError as err:
        assert str(err).startswith("fuzz.safetensors: ") and "\n" not in str(err)
        return None


def parse_gguf(data: bytes) -> _gguf_header.GGUFHeader | None:
    try:
        return _gguf_header.read_from(io.BytesIO(data), len(data), "fuzz.gguf")
    except UnreadableFileError as err:
        assert str(err).startswith("fuzz.gguf: ") and "\n" not in str(err)
        return None


# ---------------------------------------------------------------------- mutations


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few bytes overwritten, a run inserted or removed, or cut short."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["set", "insert", "delete", "u64"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:  # a size or count field replaced by a lie
            lie = draw(st.sampled_from([0, 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1]))
            data[at : at + 8] = struct.pack("<Q", lie)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


# -------------------------------------------------------------------- safetensors


def _real_safetensors() -> bytes:
    tensors = {
        "double_blocks.0.img_attn.qkv.weight": np.arange(24, dtype=np.float32).reshape(4, 6),
        "double_blocks.0.img_attn.qkv.weight.absmax": np.ones(3, dtype=np.float32),
        "ids": np.arange(5, dtype=np.int64),
        "flags": np.zeros((2, 2), dtype=np.uint8),
    }
    return bytes(safetensors_numpy.save(tensors, metadata={"format": "pt"}))


REAL_SAFETENSORS = _real_safetensors()


def _library_tensors(data: bytes) -> dict[str, tuple[str, tuple[int, ...]]] | None:
    try:
        loaded = safetensors.deserialize(data)
    except Exception:  # the library's own refusal, whatever its type
        return None
    return {name: (t["dtype"], tuple(t["shape"])) for name, t in loaded}


def _agrees_with_the_library(data: bytes, header: _safetensors_header.SafetensorsHeader) -> None:
    theirs = _library_tensors(data)
    assert theirs is not None, "the parser accepted a file the safetensors library refuses"
    assert theirs == {t.name: (t.dtype, t.shape) for t in header.tensors}


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_never_crash_the_safetensors_parser(data: bytes) -> None:
    parse_safetensors(data)


@FUZZ
@given(mutated(REAL_SAFETENSORS))
def test_a_damaged_safetensors_file_is_refused_or_read_as_the_library_reads_it(
    data: bytes,
) -> None:
    header = parse_safetensors(data)
    if header is not None:
        _agrees_with_the_library(data, header)


DTYPES = [*sorted(_safetensors_header.DTYPE_BITS), "Q4_K", "", "f32"]
SIZES = st.one_of(st.integers(0, 8), st.sampled_from([-1, 2**31, 2**62, 2**64]))
JUNK = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=4), st.just([])
)


@st.composite
def lying_headers(draw: st.DrawFn) -> bytes:
    """A header built from the format's fields: honest, or with one kind of lie in it.

    Honest headers matter as much as lies: they are where the parser and the library
    must agree, tensor by tensor.
    """
    lie = draw(st.sampled_from([None, None, "shape", "offsets", "entry", "metadata", "length"]))
    header: dict[str, Any] = {}
    offset = 0
    for i in range(draw(st.integers(0, 4))):
        dtype = draw(st.sampled_from(sorted(_safetensors_header.DTYPE_BITS)))
        shape: Any = draw(st.lists(st.integers(0, 4), max_size=3))
        numel = int(np.prod(shape)) if shape else 1
        nbytes = -(-numel * _safetensors_header.DTYPE_BITS[dtype] // 8)
        begin = offset
        if lie == "shape" and draw(st.booleans()):
            shape = draw(st.lists(SIZES, max_size=3) | st.just([True]) | JUNK)
        if lie == "offsets" and draw(st.booleans()):
            begin = draw(st.integers(-2, 64))
            nbytes = draw(st.integers(0, 16) | st.sampled_from([2**40, -4]))
        entry: dict[str, Any] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [begin, begin + nbytes],
        }
        if lie == "entry" and draw(st.booleans()):
            field = draw(st.sampled_from(["data_offsets", "extra", "dtype", "shape"]))
            entry[field] = draw(JUNK | st.sampled_from(DTYPES))
        header[draw(st.sampled_from([f"t{i}", f"t{i}", "__metadata__", ""]))] = entry
        offset = begin + nbytes
    if lie == "metadata" or draw(st.booleans()):
        values = st.text(max_size=4) | (JUNK if lie == "metadata" else st.text(max_size=4))
        header["__metadata__"] = draw(st.dictionaries(st.text(max_size=4), values, max_size=2))
    raw = json.dumps(header).encode() + b" " * draw(st.integers(0, 3))
    data_len = max(offset, 0) if lie is None else draw(st.integers(0, 64))
    length = len(raw) + (draw(st.sampled_from([-1, 1, 2**40])) if lie == "length" else 0)
    return struct.pack("<Q", max(length, 0)) + raw + b"\0" * data_len


@FUZZ
@given(lying_headers())
def test_a_lying_safetensors_header_is_refused_exactly_when_the_library_refuses_it(
    data: bytes,
) -> None:
    # These headers stay inside the parser's own bounds (no duplicate keys, rank <= 3),
    # so it must refuse exactly what the library refuses: no stricter, no laxer.
    header = parse_safetensors(data)
    if header is None:
        assert _library_tensors(data) is None, "the parser refused a file the library loads"
        return
    _agrees_with_the_library(data, header)
    assert sum(t.nbytes for t in header.tensors) == header.data_bytes


# ---------------------------------------------------------------------------- GGUF


def _real_gguf() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "real.gguf"
        writer = gguf.GGUFWriter(str(path), arch="flux")
        writer.add_string("general.name", "fuzz")
        writer.add_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"])
        writer.add_array("nested", [[1, 2], [3]])
        writer.add_uint32("general.alignment", 32)
        data = np.ones((2, 32), dtype=np.float32)
        q8 = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
        writer.add_tensor(
            "double_blocks.0.img_attn.qkv.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0
        )
        writer.add_tensor("final_layer.linear.bias", np.zeros(4, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


REAL_GGUF = _real_gguf()


def _holds_together(header: _gguf_header.GGUFHeader, size: int) -> None:
    for t in header.tensors:
        assert header.data_start + t.offset + t.nbytes <= size
        assert t.offset % header.alignment == 0


def test_the_real_gguf_reads_as_gguf_py_reads_it() -> None:
    header = parse_gguf(REAL_GGUF)
    assert header is not None
    assert [(t.name, t.type_name) for t in header.tensors] == [
        ("double_blocks.0.img_attn.qkv.weight", "Q8_0"),
        ("final_layer.linear.bias", "F32"),
    ]
    assert header.metadata["nested"] == [[1, 2], [3]]


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_never_crash_the_gguf_parser(data: bytes) -> None:
    parse_gguf(b"GGUF" + struct.pack("<I", 3) + data)
    parse_gguf(data)


@FUZZ
@given(mutated(REAL_GGUF))
def test_a_damaged_gguf_file_is_refused_or_holds_together(data: bytes) -> None:
    header = parse_gguf(data)
    if header is not None:
        _holds_together(header, len(data))


def _reader_tensors(data: bytes) -> dict[str, tuple[str, tuple[int, ...], int]]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.gguf"
        path.write_bytes(data)
        reader = gguf.GGUFReader(str(path))
        return {
            t.name: (t.tensor_type.name, tuple(int(v) for v in t.shape), int(t.data_offset))
            for t in reader.tensors
        }


def _our_tensors(header: _gguf_header.GGUFHeader) -> dict[str, tuple[str, tuple[int, ...], int]]:
    return {t.name: (t.type_name, t.shape, header.data_start + t.offset) for t in header.tensors}


@FUZZ_FILES
@given(mutated(REAL_GGUF))
def test_a_damaged_gguf_file_the_parser_accepts_reads_as_gguf_py_reads_it(data: bytes) -> None:
    header = parse_gguf(data)
    if header is not None:
        assert _our_tensors(header) == _reader_tensors(data)


KV_VALUES = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda v: ("uint32", v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: ("int64", v)),
    st.floats(width=32, allow_nan=False).map(lambda v: ("float32", v)),
    st.booleans().map(lambda v: ("bool", v)),
    st.text(max_size=20).map(lambda v: ("string", v)),
    st.lists(st.integers(0, 100), max_size=80).map(lambda v: ("array", v)),
    st.lists(st.text(max_size=5), min_size=1, max_size=5).map(lambda v: ("array", v)),
)
QTYPES = sorted(gguf.GGML_QUANT_SIZES, key=lambda q: q.value)


@st.composite
def written_gguf(draw: st.DrawFn) -> bytes:
    """A GGUF file as gguf.GGUFWriter writes it: random keys, values and tensor types."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "w.gguf"
        writer = gguf.GGUFWriter(str(path), arch=draw(st.sampled_from(["flux", "sd3", "t5"])))
        keys = draw(
            st.lists(
                st.from_regex(r"[a-z]{1,8}\.[a-z_]{1,8}", fullmatch=True), unique=True, max_size=5
            )
        )
        for key in keys:
            kind, value = draw(KV_VALUES)
            getattr(writer, f"add_{kind}")(key, value)
        for i in range(draw(st.integers(0, 4))):
            qtype = draw(st.sampled_from(QTYPES))
            _, nbytes = gguf.GGML_QUANT_SIZES[qtype]
            rows, blocks = draw(st.integers(1, 3)), draw(st.integers(1, 2))
            raw = np.zeros((rows, blocks * nbytes), dtype=np.uint8)
            writer.add_tensor(f"t{i}.weight", raw, raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


@FUZZ_FILES
@given(written_gguf())
def test_every_file_gguf_writer_writes_is_read_as_gguf_py_reads_it(data: bytes) -> None:
    header = parse_gguf(data)
    assert header is not None, "the parser refused a file gguf-py wrote"
    assert _our_tensors(header) == _reader_tensors(data)
