"""The one GGML type table (``quantdoctor/_ggml.py``): it is gguf-py's, and the header
reader, the dequantizer, the loader and the matrix's gguf schemes all take it from there."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from quantdoctor import load_matrix
from quantdoctor._ggml import BY_ID, BY_NAME, GGML_TYPES

ROOT = Path(__file__).resolve().parent.parent


def test_the_table_is_gguf_pys() -> None:
    gguf = pytest.importorskip("gguf")
    theirs = {t.name: (t.value, *gguf.GGML_QUANT_SIZES[t]) for t in gguf.GGML_QUANT_SIZES}
    ours = {t.name: (t.id, t.block, t.block_bytes) for t in GGML_TYPES}
    assert ours == theirs
    assert list(BY_ID) == sorted(BY_ID) and len(BY_NAME) == len(GGML_TYPES)


def test_plain_floats_are_the_float_types_stored_one_value_a_block() -> None:
    assert [t.name for t in GGML_TYPES if t.plain_float] == ["F32", "F16", "F64", "BF16"]
    assert all(t.block_bytes * 8 == t.bits for t in GGML_TYPES if t.block == 1)


def test_the_matrix_gguf_schemes_name_only_their_type() -> None:
    raw = yaml.safe_load((ROOT / "quantdoctor" / "matrix.yaml").read_text(encoding="utf-8"))
    schemes = raw["engines"]["gguf"]["schemes"]
    assert schemes and all(spec == {"ggml": name} for name, spec in schemes.items())


def test_the_matrix_gguf_schemes_take_their_storage_from_the_table() -> None:
    matrix = load_matrix(defaults=False)
    for name, spec in matrix.engines["gguf"].schemes.items():
        t = BY_NAME[name]
        assert (spec.api, spec.family, spec.bits, spec.block, spec.block_bytes) == (
            t.name, t.family, t.bits, t.block, t.block_bytes
        )  # fmt: skip
        plain = matrix.scheme("gguf", name)  # the cached plain data says the same
        assert (plain.bits, plain.block, plain.block_bytes) == (t.bits, t.block, t.block_bytes)
    assert matrix.scheme("gguf", "Q4_K").bytes_per_weight() == 144 / 256


def test_every_gguf_scheme_is_dequantized_in_torch_and_the_loader_agrees() -> None:
    pytest.importorskip("torch")
    from quantdoctor.engines.gguf_dequant import TYPES
    from quantdoctor.engines.gguf_loader import FLOAT_TYPES

    assert set(load_matrix(defaults=False).engines["gguf"].schemes) == set(TYPES)
    assert set(FLOAT_TYPES) >= {"F32", "F16", "BF16"}
