"""GGUF block packers for the types gguf-py only dequantizes (K-quants, IQ4_NL, IQ4_XS).

gguf-py 0.19 quantizes F32/F16/BF16/Q8_0/Q5_1/Q5_0/Q4_1/Q4_0 but has no quantizer for
the K-quants or i-quants. These plain numpy packers (min/max or absmax scales per
sub-block, no llama.cpp importance search) write blocks in exactly the layout
``gguf.quants.dequantize`` reads, so a test or benchmark can make real K-quant files
and check a dequantizer against gguf-py's. Their rounding error is larger than
llama.cpp's quantize tool would give; their layout is the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from quantdoctor._ggml import BY_NAME
from quantdoctor.engines.gguf_dequant import _IQ4_KVALUES, QK_K
from quantdoctor.errors import InvalidInputError

_KVALUES = np.array(_IQ4_KVALUES, dtype=np.float32)

Array = Any  # numpy arrays; numpy's stubs cannot express the shapes that matter here


def _f16(x: Array) -> Array:
    """fp16 values as their bytes: ``(n,)`` -> ``(n, 2)`` uint8."""
    return np.ascontiguousarray(x.astype(np.float16)).view(np.uint8).reshape(-1, 2)


def _div(a: Array, b: Array) -> Array:
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape, np.float32), where=b != 0)


def _pack_crumbs(q: Array) -> Array:
    """2-bit codes ``(n, 256)`` at position ``h*128 + s*32 + j`` -> ``(n, 64)`` bytes."""
    n = q.shape[0]
    q = q.reshape(n, 2, 4, 32).astype(np.uint8)
    shifts = np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)
    return np.bitwise_or.reduce(q << shifts, axis=2).reshape(n, 64)


def _pack_nibbles(q: Array, group: int) -> Array:
    """4-bit codes, each ``2*group`` values as low nibbles then high nibbles of ``group`` bytes."""
    n = q.shape[0]
    q = q.reshape(n, -1, 2, group).astype(np.uint8)
    return (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(n, -1)


def _pack_bits(bits: Array, planes: int) -> Array:
    """One bit per value at position ``s*32 + j`` -> 32 bytes, bit ``s`` of byte ``j``."""
    n = bits.shape[0]
    b = bits.reshape(n, planes, 32).astype(np.uint8)
    shifts = np.arange(planes, dtype=np.uint8).reshape(1, planes, 1)
    return np.bitwise_or.reduce(b << shifts, axis=1)


def _scale_min_k4(sc: Array, mn: Array) -> Array:
    """Eight 6-bit scales and mins -> the 12 bytes Q4_K and Q5_K store them in."""
    s = np.zeros((sc.shape[0], 12), np.uint8)
    s[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] & 0x30) << 2)
    s[:, 4:8] = mn[:, 0:4] | ((mn[:, 4:8] & 0x30) << 2)
    s[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((mn[:, 4:8] & 0x0F) << 4)
    return s


def _affine(x: Array, levels: int, scale_bits: int) -> tuple[Array, Array, Array, Array, Array]:
    """Min/max codes for sub-blocks ``x (n, k, m)``: d, dmin (n,), scales, mins (n, k), q."""
    top = (1 << scale_bits) - 1
    lo = np.minimum(x.min(-1), 0.0)
    hi = np.maximum(x.max(-1), lo)
    scale = (hi - lo) / levels
    d = (scale.max(-1) / top).astype(np.float16).astype(np.float32)
    dmin = ((-lo).max(-1) / top).astype(np.float16).astype(np.float32)
    sc = np.clip(np.ceil(_div(scale, d[:, None])), 0, top).astype(np.uint8)
    mn = np.clip(np.ceil(_div(-lo, dmin[:, None])), 0, top).astype(np.uint8)
    step = (d[:, None] * sc)[..., None]
    offset = (dmin[:, None] * mn)[..., None]
    q = np.clip(np.rint(_div(x + offset, step)), 0, levels).astype(np.uint8)
    return d, dmin, sc, mn, q


def _q2_k(x: Array) -> Array:
    n = x.shape[0]
    d, dmin, sc, mn, q = _affine(x.reshape(n, 16, 16), 3, 4)
    scales = (sc | (mn << 4)).astype(np.uint8)
    return np.concatenate([scales, _pack_crumbs(q.reshape(n, QK_K)), _f16(d), _f16(dmin)], 1)


def _q4_k(x: Array) -> Array:
    n = x.shape[0]
    d, dmin, sc, mn, q = _affine(x.reshape(n, 8, 32), 15, 6)
    qs = _pack_nibbles(q.reshape(n, QK_K), 32)
    return np.concatenate([_f16(d), _f16(dmin), _scale_min_k4(sc, mn), qs], 1)


def _q5_k(x: Array) -> Array:
    n = x.shape[0]
    d, dmin, sc, mn, q = _affine(x.reshape(n, 8, 32), 31, 6)
    q = q.reshape(n, QK_K)
    qh = _pack_bits(q >> 4, 8)
    qs = _pack_nibbles(q & 0x0F, 32)
    return np.concatenate([_f16(d), _f16(dmin), _scale_min_k4(sc, mn), qh, qs], 1)


def _symmetric(x: Array, qmax: int, scale_max: int) -> tuple[Array, Array, Array]:
    """Absmax codes for sub-blocks ``x (n, k, m)`` in ``[-qmax-1, qmax]``: d, scales, q."""
    scale = np.abs(x).max(-1) / qmax
    d = (scale.max(-1) / scale_max).astype(np.float16).astype(np.float32)
    sc = np.clip(np.rint(_div(scale, d[:, None])), 0, scale_max).astype(np.int32)
    step = (d[:, None] * sc)[..., None]
    q = np.clip(np.rint(_div(x, step)), -qmax - 1, qmax).astype(np.int32)
    return d, sc, q


def _q3_k(x: Array) -> Array:
    n = x.shape[0]
    d, sc, q = _symmetric(x.reshape(n, 16, 16), 3, 31)
    u = (q.reshape(n, QK_K) + 4).astype(np.uint8)  # 0..7: low 2 bits in qs, bit 2 in hmask
    s6 = (sc + 32).astype(np.uint8)
    scales = np.zeros((n, 12), np.uint8)
    scales[:, :8] = (s6[:, :8] & 0x0F) | ((s6[:, 8:] & 0x0F) << 4)
    high = (s6 >> 4).reshape(n, 4, 4)  # scale i = s*4 + k: bits 2s of byte 8 + k
    scales[:, 8:] = np.bitwise_or.reduce(high << np.array([0, 2, 4, 6], np.uint8)[None, :, None], 1)
    return np.concatenate([_pack_bits(u >> 2, 8), _pack_crumbs(u & 3), scales, _f16(d)], 1)


def _q6_k(x: Array) -> Array:
    n = x.shape[0]
    d, sc, q = _symmetric(x.reshape(n, 16, 16), 31, 127)
    u = (q.reshape(n, QK_K) + 32).astype(np.uint8)  # 0..63
    low = (u & 0x0F).reshape(n, 2, 2, 64)  # position h*128 + s*64 + t
    ql = (low[:, :, 0] | (low[:, :, 1] << 4)).reshape(n, 128)
    high = (u >> 4).reshape(n, 2, 4, 32)  # position h*128 + s*32 + j
    shifts = np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)
    qh = np.bitwise_or.reduce(high << shifts, axis=2).reshape(n, 64)
    scales = sc.astype(np.int8).view(np.uint8)
    return np.concatenate([ql, qh, scales, _f16(d)], 1)


def _nearest_kvalue(y: Array) -> Array:
    return np.abs(y[..., None] - _KVALUES).argmin(-1).astype(np.uint8)


def _iq4_nl(x: Array) -> Array:
    d = (np.abs(x).max(-1) / 127).astype(np.float16).astype(np.float32)
    q = _nearest_kvalue(_div(x, d[:, None]))
    return np.concatenate([_f16(d), _pack_nibbles(q, 16)], 1)


def _iq4_xs(x: Array) -> Array:
    n = x.shape[0]
    xs = x.reshape(n, 8, 32)
    scale = np.abs(xs).max(-1) / 127
    d = (scale.max(-1) / 31).astype(np.float16).astype(np.float32)
    sc = np.clip(np.rint(_div(scale, d[:, None])), 0, 31).astype(np.int32)
    q = _nearest_kvalue(_div(xs, (d[:, None] * sc)[..., None]))
    s6 = (sc + 32).astype(np.uint16)
    scales_h = np.bitwise_or.reduce((s6 >> 4) << (2 * np.arange(8, dtype=np.uint16)), axis=1)
    low = (s6 & 0x0F).astype(np.uint8).reshape(n, 4, 2)
    scales_l = low[:, :, 0] | (low[:, :, 1] << 4)
    head = np.ascontiguousarray(scales_h.astype(np.uint16)).view(np.uint8).reshape(n, 2)
    return np.concatenate([_f16(d), head, scales_l, _pack_nibbles(q.reshape(n, QK_K), 16)], 1)


_PACKERS: dict[str, Callable[[Array], Array]] = {
    "Q2_K": _q2_k,
    "Q3_K": _q3_k,
    "Q4_K": _q4_k,
    "Q5_K": _q5_k,
    "Q6_K": _q6_k,
    "IQ4_NL": _iq4_nl,
    "IQ4_XS": _iq4_xs,
}

#: The GGML types packed here (gguf-py quantizes the others).
TYPES: tuple[str, ...] = tuple(_PACKERS)


def pack(values: Array, qtype: str) -> Array:
    """``values`` (rows, cols; cols a multiple of the block) as GGUF ``qtype`` blocks:
    a ``uint8`` array of shape (rows, cols // block * block_bytes), as gguf-py returns."""
    fn = _PACKERS.get(qtype)
    if fn is None:
        raise InvalidInputError(f"GGUF type {qtype}: no packer; valid types are {', '.join(TYPES)}")
    block, size = BY_NAME[qtype].block, BY_NAME[qtype].block_bytes
    x = np.asarray(values, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] % block:
        raise InvalidInputError(
            f"GGUF {qtype}: values of shape {x.shape} do not split into rows of "
            f"{block}-value blocks"
        )
    blocks = fn(x.reshape(-1, block))
    assert blocks.shape[1] == size, (qtype, blocks.shape)
    return np.ascontiguousarray(blocks).reshape(x.shape[0], -1)


def quantize(values: Array, qtype: str) -> Array:
    """GGUF blocks of ``values`` in any type: gguf-py's quantizer if it has one, else ``pack``."""
    if qtype in _PACKERS:
        return pack(values, qtype)
    import gguf

    return gguf.quants.quantize(
        np.asarray(values, dtype=np.float32), gguf.GGMLQuantizationType[qtype]
    )
