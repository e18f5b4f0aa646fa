"""GGUF dequantization in torch, on whatever device the quantized bytes live.

Each function takes the raw blocks as a ``uint8`` tensor of shape ``(n_blocks, type_size)``
and writes their ``float32`` values into ``out`` of shape ``(n_blocks, block_size)``. They
compute what gguf-py's numpy dequantizers (``gguf.quants``) compute, the same float32
operations in the same order, so the results match them bit for bit (the tests check
that); integer codes are widened to float32 once, straight into ``out``, and the scales
are applied there in place. Only torch ops that exist on CPU and CUDA are used.

On a GPU a tensor is dequantized in one go. On the CPU it goes through in steps
(``_step_values``: ``CPU_STEP_VALUES`` a thread) written into one output allocated once, in
the caller's dtype, so the temporaries of a step stay in cache and are reused instead of
being allocated (and page-faulted) at the size of the whole tensor; and on the cores that
no other process holds, one at least: torch's intra-op threads collapse when another
process holds a core (issue #17: 31x slower with the second core busy), and help where
many cores are free (a 16-core host: one thread took 2.75x diffusers' time for a layer's
forward, every idle core 0.87x).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING

from quantdoctor._ggml import BY_NAME
from quantdoctor.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

QK_K = 256

_IQ4_KVALUES = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)


#: Values dequantized per step on the CPU, per thread at work, up to ``CPU_STEP_MAX``.
#: Measured at 3072x12288 (benchmarks/gguf_cpu_step.py): on one thread 256Ki-1Mi values all
#: beat gguf-py's numpy; smaller steps pay torch's per-op cost (~5 us, ~60 ops a K-quant
#: step); with more threads each one's share of a step shrinks: 1Mi a thread, at most 8Mi,
#: took at most 1.17x the best step's time (12 of 16 cases within 1.07x) at 1, 4, 8 and 16
#: threads on a 16-core host, where a fixed 512Ki took up to 2.4x.
CPU_STEP_VALUES = 1 << 20
CPU_STEP_MAX = 1 << 23


def _shifts(values: tuple[int, ...], like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    return _constant(values, like.device, shape)


@lru_cache(maxsize=64)
def _constant(
    values: tuple[int, ...], device: torch.device, shape: tuple[int, ...]
) -> torch.Tensor:
    """A small uint8 constant, made once per device (not once per step)."""
    import torch

    return torch.tensor(values, dtype=torch.uint8, device=device).reshape(shape)


def _half(b: torch.Tensor) -> torch.Tensor:
    """Two bytes per row -> the fp16 value they hold, as float32 of shape ``(n, 1)``."""
    import torch

    return b.contiguous().view(torch.float16).to(torch.float32)


def _planes(
    q: torch.Tensor, group: int, shifts: tuple[int, ...], mask: int, at: int = 0
) -> torch.Tensor:
    """``((q >> s) & mask) << at`` for each shift ``s``, each plane of ``group`` bytes in
    turn: ``(n, k, len(shifts), group)`` codes (nibbles, 2-bit crumbs, bits), moved to bit
    ``at`` (the high bits of a 5- or 6-bit code).

    One shift by a number per plane, then one ``cat``: torch's shift by a broadcast tensor
    of shifts is several times slower than these together."""
    import torch

    src = q.contiguous().reshape(q.shape[0], -1, 1, group)
    placed, width = mask << at, mask.bit_length()
    parts = []
    for s in shifts:
        if s > at:
            part = src >> (s - at)
        elif s < at:
            part = src * (1 << (at - s))  # uint8 wraps: the bits above 7 fall off, as in <<
        else:
            part = src
        parts.append(part if at == 0 and s + width == 8 else part & placed)
    return torch.cat(parts, dim=2)


def _scale(out: torch.Tensor, codes: torch.Tensor, d: torch.Tensor, offset: int = 0) -> None:
    """``out = d * (codes - offset)``: gguf-py's ``d * q.astype(float32)`` with ``q`` the
    signed code (``codes - offset`` is exact in float32, so the product is the same)."""
    out.copy_(codes.reshape(out.shape))
    if offset:
        out.sub_(offset)
    out.mul_(d)


def _affine(out: torch.Tensor, codes: torch.Tensor, d: torch.Tensor, m: torch.Tensor) -> None:
    """``out = d * codes + m`` (Q4_1, Q5_1) in gguf-py's order."""
    out.copy_(codes.reshape(out.shape))
    out.mul_(d).add_(m)


def _affine_sub(out: torch.Tensor, codes: torch.Tensor, dl: torch.Tensor, ml: torch.Tensor) -> None:
    """``out = dl * codes - ml`` per sub-block (K-quants), in gguf-py's order."""
    n = out.shape[0]
    view = out.view(n, dl.shape[1], -1)
    view.copy_(codes.reshape(view.shape))
    view.mul_(dl).sub_(ml)


def _f32(blocks: torch.Tensor, out: torch.Tensor) -> None:
    import torch

    out.copy_(blocks.contiguous().view(torch.float32))


def _f16(blocks: torch.Tensor, out: torch.Tensor) -> None:
    import torch

    out.copy_(blocks.contiguous().view(torch.float16))


def _bf16(blocks: torch.Tensor, out: torch.Tensor) -> None:
    import torch

    out.copy_(blocks.contiguous().view(torch.bfloat16))


def _q8_0(blocks: torch.Tensor, out: torch.Tensor) -> None:
    import torch

    out.copy_(blocks[:, 2:].view(torch.int8))
    out.mul_(_half(blocks[:, :2]))


def _q4_0(blocks: torch.Tensor, out: torch.Tensor) -> None:
    _scale(out, _planes(blocks[:, 2:], 16, (0, 4), 0x0F), _half(blocks[:, :2]), 8)


def _q4_1(blocks: torch.Tensor, out: torch.Tensor) -> None:
    d, m = _half(blocks[:, :2]), _half(blocks[:, 2:4])
    _affine(out, _planes(blocks[:, 4:], 16, (0, 4), 0x0F), d, m)


def _five_bit(blocks: torch.Tensor, qh_at: int) -> torch.Tensor:
    """Q5_0/Q5_1 codes: four bytes of high bits at ``qh_at``, then 16 bytes of nibbles."""
    n = blocks.shape[0]
    # bit i of the little-endian u32 is bit i % 8 of byte i // 8: planes of one byte
    qh = _planes(blocks[:, qh_at : qh_at + 4], 1, tuple(range(8)), 1, at=4).reshape(n, 32)
    ql = _planes(blocks[:, qh_at + 4 :], 16, (0, 4), 0x0F).reshape(n, 32)
    return ql.bitwise_or_(qh)


def _q5_0(blocks: torch.Tensor, out: torch.Tensor) -> None:
    _scale(out, _five_bit(blocks, 2), _half(blocks[:, :2]), 16)


def _q5_1(blocks: torch.Tensor, out: torch.Tensor) -> None:
    d, m = _half(blocks[:, :2]), _half(blocks[:, 2:4])
    _affine(out, _five_bit(blocks, 4), d, m)


def _q2_k(blocks: torch.Tensor, out: torch.Tensor) -> None:
    import torch

    n = blocks.shape[0]
    scales = blocks[:, :16]
    d, dmin = _half(blocks[:, 80:82]), _half(blocks[:, 82:84])
    dl = (d * (scales & 0x0F).to(torch.float32)).reshape(n, 16, 1)
    ml = (dmin * (scales >> 4).to(torch.float32)).reshape(n, 16, 1)
    _affine_sub(out, _planes(blocks[:, 16:80], 32, (0, 2, 4, 6), 3), dl, ml)


def _q3_k(blocks: torch.Tensor, out: torch.Tensor) -> None:
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
    # gguf-py: q = ql - 4 * (1 - bit), bit the hmask bit; q + 4 = ql | bit << 2 (0..7)
    code = _planes(qs, 32, (0, 2, 4, 6), 3).reshape(n, 16, 16)
    code.bitwise_or_(_planes(hmask, 32, tuple(range(8)), 1, at=2).reshape(n, 16, 16))
    view = out.view(n, 16, 16)
    view.copy_(code)
    view.sub_(4).mul_(dl)


def _k_scale_min(scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The eight 6-bit scales and mins packed into 12 bytes (Q4_K, Q5_K)."""
    import torch

    n = scales.shape[0]
    s = scales.reshape(n, 3, 4)
    d, m, m_d = s[:, 0], s[:, 1], s[:, 2]
    sc = torch.cat([d & 0x3F, (m_d & 0x0F) | ((d >> 2) & 0x30)], dim=-1)
    mn = torch.cat([m & 0x3F, (m_d >> 4) | ((m >> 2) & 0x30)], dim=-1)
    return sc.to(torch.float32), mn.to(torch.float32)


def _k_scales(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_K/Q5_K: each sub-block's scale ``d * sc`` and offset ``dmin * m``, ``(n, 8, 1)``."""
    n = blocks.shape[0]
    d, dmin = _half(blocks[:, :2]), _half(blocks[:, 2:4])
    sc, mn = _k_scale_min(blocks[:, 4:16])
    return (d * sc).reshape(n, -1, 1), (dmin * mn).reshape(n, -1, 1)


def _q4_k(blocks: torch.Tensor, out: torch.Tensor) -> None:
    dl, dm = _k_scales(blocks)
    _affine_sub(out, _planes(blocks[:, 16:], 32, (0, 4), 0x0F), dl, dm)


def _q5_k(blocks: torch.Tensor, out: torch.Tensor) -> None:
    n = blocks.shape[0]
    dl, dm = _k_scales(blocks)
    code = _planes(blocks[:, 48:], 32, (0, 4), 0x0F).reshape(n, 8, 32)
    code.bitwise_or_(_planes(blocks[:, 16:48], 32, tuple(range(8)), 1, at=4).reshape(n, 8, 32))
    _affine_sub(out, code, dl, dm)


def _q6_k(blocks: torch.Tensor, out: torch.Tensor) -> None:
    import torch

    n = blocks.shape[0]
    d = _half(blocks[:, 208:210])
    dl = (d * blocks[:, 192:208].contiguous().view(torch.int8).to(torch.float32)).reshape(n, 16, 1)
    code = _planes(blocks[:, :128], 64, (0, 4), 0x0F).reshape(n, -1, 32)
    code.bitwise_or_(_planes(blocks[:, 128:192], 32, (0, 2, 4, 6), 3, at=4).reshape(n, -1, 32))
    view = out.view(n, 16, 16)
    view.copy_(code.reshape(n, 16, 16))
    view.sub_(32).mul_(dl)


def _kvalues(like: torch.Tensor) -> torch.Tensor:
    return _kvalue_table(like.device)


@lru_cache(maxsize=8)
def _kvalue_table(device: torch.device) -> torch.Tensor:
    import torch

    return torch.tensor(_IQ4_KVALUES, dtype=torch.float32, device=device)


def _lookup(out: torch.Tensor, codes: torch.Tensor) -> None:
    """``out`` = the IQ4 non-linear values of ``codes`` (0..15)."""
    import torch

    flat = out.view(-1)
    torch.index_select(_kvalues(codes), 0, codes.reshape(-1).to(torch.int32), out=flat)


def _iq4_nl(blocks: torch.Tensor, out: torch.Tensor) -> None:
    _lookup(out, _planes(blocks[:, 2:], 16, (0, 4), 0x0F))
    out.mul_(_half(blocks[:, :2]))


def _iq4_xs(blocks: torch.Tensor, out: torch.Tensor) -> None:
    import torch

    n = blocks.shape[0]
    d = _half(blocks[:, :2])
    scales_h = blocks[:, 2].to(torch.int32) | (blocks[:, 3].to(torch.int32) << 8)
    scales_l = blocks[:, 4:8]
    low = (scales_l.reshape(n, -1, 1) >> _shifts((0, 4), scales_l, (1, 1, 2))).reshape(n, -1)
    low = low & 0x0F
    shifts = torch.arange(0, 16, 2, dtype=torch.int32, device=blocks.device).reshape(1, 8)
    high = ((scales_h.reshape(n, 1) >> shifts) & 0x03).to(torch.uint8)
    sc = (low | (high << 4)).to(torch.int8) - 32
    dl = (d * sc.to(torch.float32)).reshape(n, -1, 1)
    _lookup(out, _planes(blocks[:, 8:], 16, (0, 4), 0x0F))
    out.view(n, 8, 32).mul_(dl)


_DEQUANT: dict[str, Callable[[torch.Tensor, torch.Tensor], None]] = {
    "F32": _f32,
    "F16": _f16,
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
    blocks = raw.reshape(-1, size)
    n = blocks.shape[0]
    dtype = dtype or torch.float32
    if blocks.device.type != "cpu":
        values = torch.empty((n, block), dtype=torch.float32, device=blocks.device)
        fn(blocks, values)
        return (values if dtype == torch.float32 else values.to(dtype)).reshape(shape)
    out = torch.empty((n, block), dtype=dtype)
    with _idle_threads() as threads:
        step = max(1, _step_values(threads) // block)
        # float32 is written in place; another dtype goes through one step-sized buffer
        buffer = None if dtype == torch.float32 else torch.empty((min(step, n), block))
        for start in range(0, n, step):
            stop = min(start + step, n)
            target = out[start:stop] if buffer is None else buffer[: stop - start]
            fn(blocks[start:stop], target)
            if buffer is not None:
                out[start:stop].copy_(target)
    return out.reshape(shape)


def _step_values(threads: int) -> int:
    """Values dequantized per step on the CPU with ``threads`` threads."""
    return min(CPU_STEP_VALUES * threads, CPU_STEP_MAX)


@contextmanager
def _idle_threads() -> Iterator[int]:
    """Torch's CPU ops on as many threads as cores are idle now, at most torch's own count,
    at least one (the number given to the block); its thread count back after the block."""
    import torch

    threads = torch.get_num_threads()
    wanted = max(1, min(threads, _idle_cores()))
    if wanted != threads:
        torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        if wanted != threads:
            torch.set_num_threads(threads)


#: How long a count of idle cores stands (seconds): counting this process's threads costs
#: ~30 us a thread (torch keeps one per core), more than a small layer's dequantization.
IDLE_FOR = 1.0
#: Threads of this process counted at most: an app of more counts only this one (fewer
#: threads taken, never more), and a count costs at most ~8 ms a second.
MAX_OWN_THREADS = 256
_idle: list[float] = []  # [when counted, idle cores] once counted


def _idle_cores() -> int:
    """Cores no other process holds now (cached for ``IDLE_FOR`` seconds); 1 where unknown."""
    now = time.monotonic()
    if _idle and now - _idle[0] < IDLE_FOR:
        return int(_idle[1])
    busy = _busy_cores()
    idle = 1 if busy is None else int((os.cpu_count() or 1) - busy)
    _idle[:] = [now, idle]
    return idle


def _busy_cores() -> float | None:
    """Cores other processes hold now: Linux's count of runnable threads (``/proc/loadavg``'s
    fourth field) less this process's own (``_own_running``), else the load average, else
    None (one thread).

    This process's own threads are left out, not only this one: torch's idle intra-op
    threads spin for a while after each op (OpenMP's wait policy) and count as runnable,
    which read as a busy machine right after any torch op (a forward's previous layer)
    and cost a 16-core host 2.75x diffusers' time for a GGUF layer's forward."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            running = int(f.read().split()[3].split("/")[0])
        return max(running - _own_running(), 0)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _own_running() -> int:
    """This process's threads that are running or runnable (``R`` in
    ``/proc/self/task/*/stat``), this one among them: at least one (only this one where
    the process has more than ``MAX_OWN_THREADS``)."""
    tasks = os.listdir("/proc/self/task")
    if len(tasks) > MAX_OWN_THREADS:
        return 1
    count = 0
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the thread ended while counting
            continue
        # "pid (comm) S ...": comm may hold spaces and parentheses; the state follows the last ")"
        end = stat.rfind(b")")
        count += stat[end + 2 : end + 3] == b"R"
    return max(count, 1)
