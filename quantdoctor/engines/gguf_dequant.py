"""GGUF dequantization in torch, on whatever device the quantized bytes live.

Each function takes the raw blocks as a ``uint8`` tensor of shape ``(n_blocks, type_size)``
and returns ``float32`` values of shape ``(n_blocks, block_size)``. They mirror gguf-py's
numpy dequantizers (``gguf.quants``) step for step, in float32, so the results match
them bit for bit; the tests check that. Only torch ops that exist on CPU and CUDA are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from quantdoctor._ggml import BY_NAME
from quantdoctor.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

QK_K = 256

_IQ4_KVALUES = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)


def _shifts(values: tuple[int, ...], like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    import torch

    return torch.tensor(values, dtype=torch.uint8, device=like.device).reshape(shape)


def _half(b: torch.Tensor) -> torch.Tensor:
    """Two bytes per row -> the fp16 value they hold, as float32 of shape ``(n, 1)``."""
    import torch

    return b.contiguous().view(torch.float16).to(torch.float32)


def _nibbles(qs: torch.Tensor, group: int) -> torch.Tensor:
    """Low nibbles of each ``group`` bytes, then their high nibbles: ``(n, k, 2, group)``."""
    n = qs.shape[0]
    return (qs.reshape(n, -1, 1, group) >> _shifts((0, 4), qs, (1, 1, 2, 1))) & 0x0F


def _bits(qh: torch.Tensor, width: int) -> torch.Tensor:
    """Bit ``i`` of a little-endian bit field, for each row: ``(n, 8 * bytes)`` of 0/1."""
    n = qh.shape[0]
    shifts = _shifts(tuple(range(8)), qh, (1, 1, 8))
    return ((qh.reshape(n, -1, 1) >> shifts) & 1).reshape(n, width)


def _f32(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    return blocks.contiguous().view(torch.float32)


def _bf16(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    return blocks.contiguous().view(torch.bfloat16).to(torch.float32)


def _q8_0(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    d = _half(blocks[:, :2])
    x = blocks[:, 2:].contiguous().view(torch.int8).to(torch.float32)
    return x * d


def _q4_0(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    n = blocks.shape[0]
    d = _half(blocks[:, :2])
    q = _nibbles(blocks[:, 2:], 16).reshape(n, -1).to(torch.int8) - 8
    return d * q.to(torch.float32)


def _q4_1(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    n = blocks.shape[0]
    d, m = _half(blocks[:, :2]), _half(blocks[:, 2:4])
    q = _nibbles(blocks[:, 4:], 16).reshape(n, -1).to(torch.float32)
    return d * q + m


def _q5_0(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    n = blocks.shape[0]
    d = _half(blocks[:, :2])
    qh = _bits(blocks[:, 2:6], 32)
    ql = _nibbles(blocks[:, 6:], 16).reshape(n, -1)
    q = (ql | (qh << 4)).to(torch.int8) - 16
    return d * q.to(torch.float32)


def _q5_1(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    n = blocks.shape[0]
    d, m = _half(blocks[:, :2]), _half(blocks[:, 2:4])
    qh = _bits(blocks[:, 4:8], 32)
    ql = _nibbles(blocks[:, 8:], 16).reshape(n, -1)
    return d * (ql | (qh << 4)).to(torch.float32) + m


def _q2_k(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    n = blocks.shape[0]
    scales, qs = blocks[:, :16], blocks[:, 16:80]
    d, dmin = _half(blocks[:, 80:82]), _half(blocks[:, 82:84])
    dl = (d * (scales & 0x0F).to(torch.float32)).reshape(n, 16, 1)
    ml = (dmin * (scales >> 4).to(torch.float32)).reshape(n, 16, 1)
    q = (qs.reshape(n, -1, 1, 32) >> _shifts((0, 2, 4, 6), qs, (1, 1, 4, 1))) & 3
    q = q.reshape(n, 16, 16).to(torch.float32)
    return (dl * q - ml).reshape(n, QK_K)


def _q3_k(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    n = blocks.shape[0]
    hmask, qs, scales = blocks[:, :32], blocks[:, 32:96], blocks[:, 96:108]
    d = _half(blocks[:, 108:110])
    low = (scales[:, :8].reshape(n, 1, 8) >> _shifts((0, 4), scales, (1, 2, 1))).reshape(n, 16)
    high = (scales[:, 8:].reshape(n, 1, 4) >> _shifts((0, 2, 4, 6), scales, (1, 4, 1))).reshape(
        n, 16
    )
    sc = ((low & 0x0F) | ((high & 0x03) << 4)).to(torch.int8) - 32
    dl = (d * sc.to(torch.float32)).reshape(n, 16, 1)
    ql = (qs.reshape(n, -1, 1, 32) >> _shifts((0, 2, 4, 6), qs, (1, 1, 4, 1))).reshape(n, 16, 16)
    qh = (hmask.reshape(n, -1, 1, 32) >> _shifts(tuple(range(8)), hmask, (1, 1, 8, 1))).reshape(
        n, 16, 16
    )
    ql = ql & 3
    qh = (qh & 1) ^ 1  # the offset is zero where the mask bit is set
    q = ql.to(torch.int8) - (qh << 2).to(torch.int8)
    return (dl * q.to(torch.float32)).reshape(n, QK_K)


def _k_scale_min(scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The eight 6-bit scales and mins packed into 12 bytes (Q4_K, Q5_K)."""
    import torch

    n = scales.shape[0]
    s = scales.reshape(n, 3, 4)
    d, m, m_d = s[:, 0], s[:, 1], s[:, 2]
    sc = torch.cat([d & 0x3F, (m_d & 0x0F) | ((d >> 2) & 0x30)], dim=-1)
    mn = torch.cat([m & 0x3F, (m_d >> 4) | ((m >> 2) & 0x30)], dim=-1)
    return sc.to(torch.float32), mn.to(torch.float32)


def _q4_k(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    n = blocks.shape[0]
    d, dmin = _half(blocks[:, :2]), _half(blocks[:, 2:4])
    sc, mn = _k_scale_min(blocks[:, 4:16])
    dl = (d * sc).reshape(n, -1, 1)
    dm = (dmin * mn).reshape(n, -1, 1)
    q = _nibbles(blocks[:, 16:], 32).reshape(n, -1, 32).to(torch.float32)
    return (dl * q - dm).reshape(n, QK_K)


def _q5_k(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    n = blocks.shape[0]
    d, dmin = _half(blocks[:, :2]), _half(blocks[:, 2:4])
    sc, mn = _k_scale_min(blocks[:, 4:16])
    qh, qs = blocks[:, 16:48], blocks[:, 48:]
    dl = (d * sc).reshape(n, -1, 1)
    dm = (dmin * mn).reshape(n, -1, 1)
    ql = _nibbles(qs, 32).reshape(n, -1, 32)
    hi = (qh.reshape(n, -1, 1, 32) >> _shifts(tuple(range(8)), qh, (1, 1, 8, 1))) & 1
    q = (ql | (hi.reshape(n, -1, 32) << 4)).to(torch.float32)
    return (dl * q - dm).reshape(n, QK_K)


def _q6_k(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    n = blocks.shape[0]
    ql, qh, scales = blocks[:, :128], blocks[:, 128:192], blocks[:, 192:208]
    d = _half(blocks[:, 208:210])
    dl = (d * scales.contiguous().view(torch.int8).to(torch.float32)).reshape(n, 16, 1)
    low = ((ql.reshape(n, -1, 1, 64) >> _shifts((0, 4), ql, (1, 1, 2, 1))) & 0x0F).reshape(
        n, -1, 32
    )
    high = ((qh.reshape(n, -1, 1, 32) >> _shifts((0, 2, 4, 6), qh, (1, 1, 4, 1))) & 0x03).reshape(
        n, -1, 32
    )
    q = (low | (high << 4)).to(torch.int8) - 32
    return (dl * q.reshape(n, 16, -1).to(torch.float32)).reshape(n, QK_K)


def _kvalues(like: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.tensor(_IQ4_KVALUES, dtype=torch.float32, device=like.device)


def _iq4_nl(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    d = _half(blocks[:, :2])
    q = _nibbles(blocks[:, 2:], 16).reshape(n, -1)
    return d * _kvalues(blocks)[q.long()]


def _iq4_xs(blocks: torch.Tensor) -> torch.Tensor:
    import torch

    n = blocks.shape[0]
    d = _half(blocks[:, :2])
    scales_h = blocks[:, 2].to(torch.int32) | (blocks[:, 3].to(torch.int32) << 8)
    scales_l = blocks[:, 4:8]
    qs = blocks[:, 8:]
    low = (scales_l.reshape(n, -1, 1) >> _shifts((0, 4), scales_l, (1, 1, 2))).reshape(n, -1)
    low = low & 0x0F
    shifts = torch.arange(0, 16, 2, dtype=torch.int32, device=blocks.device).reshape(1, 8)
    high = ((scales_h.reshape(n, 1) >> shifts) & 0x03).to(torch.uint8)
    sc = (low | (high << 4)).to(torch.int8) - 32
    dl = (d * sc.to(torch.float32)).reshape(n, -1, 1)
    q = _nibbles(qs, 16).reshape(n, -1, 32)
    return (dl * _kvalues(blocks)[q.long()]).reshape(n, -1)


_DEQUANT: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "F32": _f32,
    "F16": _half,
    "BF16": _bf16,
    "Q8_0": _q8_0,
    "Q4_0": _q4_0,
    "Q4_1": _q4_1,
    "Q5_0": _q5_0,
    "Q5_1": _q5_1,
    "Q2_K": _q2_k,
    "Q3_K": _q3_k,
    "Q4_K": _q4_k,
    "Q5_K": _q5_k,
    "Q6_K": _q6_k,
    "IQ4_NL": _iq4_nl,
    "IQ4_XS": _iq4_xs,
}

#: The GGML types this module dequantizes in torch.
TYPES: tuple[str, ...] = tuple(_DEQUANT)


def dequantize(
    raw: torch.Tensor,
    qtype: str,
    shape: tuple[int, ...],
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The values of a GGUF tensor from its raw bytes, on the bytes' device.

    ``raw`` is a ``uint8`` tensor of the tensor's bytes (any shape); ``shape`` is the
    logical shape (rows, columns) in torch order. Computed in float32, returned in
    ``dtype`` (float32 when omitted).
    """
    import torch

    fn = _DEQUANT.get(qtype)
    if fn is None:
        raise InvalidInputError(
            f"GGUF type {qtype}: no torch dequantizer; valid types are {', '.join(TYPES)}"
        )
    if raw.dtype != torch.uint8:
        raise InvalidInputError(f"GGUF {qtype} data: expected uint8 bytes, got {raw.dtype}")
    block, size = BY_NAME[qtype].block, BY_NAME[qtype].block_bytes
    numel = math.prod(shape)
    if numel % block or raw.numel() != numel // block * size:
        raise InvalidInputError(
            f"GGUF {qtype} data: {raw.numel()} bytes do not hold a tensor of shape {shape} "
            f"({numel // max(block, 1) * size} expected)"
        )
    values = fn(raw.reshape(-1, size)).reshape(shape)
    return values if dtype is None or dtype == torch.float32 else values.to(dtype)
