"""GGUF: the torch dequantizer agrees with gguf-py's, and real GGUF files load into modules.

gguf-py has no K-quant or IQ4 quantizer, so those blocks come from
``quantdoctor.engines.gguf_pack`` and, independently of any packer, from random bytes
(every code pattern) with sane fp16 scales. The reference is always
``gguf.quants.dequantize``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
gguf = pytest.importorskip("gguf")

from quantdoctor._ggml import BY_NAME  # noqa: E402
from quantdoctor.engines.gguf_dequant import dequantize  # noqa: E402
from quantdoctor.engines.gguf_loader import GGUFLinear, load_gguf, save_gguf  # noqa: E402
from quantdoctor.engines.gguf_pack import pack, quantize  # noqa: E402
from quantdoctor.errors import InvalidInputError, UnreadableFileError  # noqa: E402

ALL_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0",
             "Q6_K", "Q5_K", "Q4_K", "Q3_K", "Q2_K", "IQ4_NL", "IQ4_XS"]  # fmt: skip
K_TYPES = ["Q6_K", "Q5_K", "Q4_K", "Q3_K", "Q2_K", "IQ4_NL", "IQ4_XS"]

#: Byte offsets of each block's fp16 scales (d, dmin): random bytes there would be inf/NaN.
HALF_OFFSETS = {
    "Q8_0": (0,), "Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2),
    "Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,),
    "IQ4_NL": (0,), "IQ4_XS": (0,),
}  # fmt: skip

#: Relative error of our plain packers on Gaussian values (a bound, about 1.5x measured).
PACK_ERROR = {"Q6_K": 0.03, "Q5_K": 0.06, "Q4_K": 0.12, "Q3_K": 0.3, "Q2_K": 0.5,
              "IQ4_NL": 0.13, "IQ4_XS": 0.13}  # fmt: skip


def values(rows: int = 8, cols: int = 512, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)


def reference(blocks: np.ndarray, qtype: str) -> np.ndarray:
    return gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType[qtype])


def as_bytes(blocks: np.ndarray, device: str = "cpu") -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(blocks).view(np.uint8).reshape(-1).copy()).to(
        device
    )


def random_blocks(qtype: str, n_blocks: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    size = BY_NAME[qtype].block_bytes
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in HALF_OFFSETS[qtype]:
        scales = rng.uniform(0.001, 0.1, size=n_blocks).astype(np.float16)
        raw[:, off : off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return raw


@pytest.mark.parametrize("qtype", ALL_TYPES)
def test_torch_dequantizer_matches_gguf_py_bit_for_bit(qtype: str) -> None:
    x = values()
    blocks = quantize(x, qtype)
    ref = reference(blocks, qtype).reshape(x.shape)
    got = dequantize(as_bytes(blocks), qtype, x.shape)
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), ref)


@pytest.mark.parametrize("qtype", sorted(HALF_OFFSETS))
def test_torch_dequantizer_matches_gguf_py_on_every_code_pattern(qtype: str) -> None:
    block = BY_NAME[qtype].block
    raw = random_blocks(qtype, 64)
    shape = (64 * block // 256, 256) if block == 256 else (64, block)
    ref = reference(raw, qtype).reshape(shape)
    got = dequantize(as_bytes(raw), qtype, shape)
    np.testing.assert_array_equal(got.numpy(), ref)


@pytest.mark.parametrize("qtype", K_TYPES)
def test_packed_k_quant_blocks_decode_close_to_their_values(qtype: str) -> None:
    x = values(16, 1024, seed=3)
    blocks = pack(x, qtype)
    assert blocks.dtype == np.uint8
    assert blocks.shape == (16, 1024 // BY_NAME[qtype].block * BY_NAME[qtype].block_bytes)
    err = np.linalg.norm(reference(blocks, qtype).reshape(x.shape) - x) / np.linalg.norm(x)
    assert 0 < err < PACK_ERROR[qtype], f"{qtype}: rel err {err:.3f}"


def test_dequantize_names_the_type_and_the_valid_ones() -> None:
    with pytest.raises(InvalidInputError, match=r"IQ2_XXS.*valid types are F32"):
        dequantize(torch.zeros(66, dtype=torch.uint8), "IQ2_XXS", (1, 256))
    with pytest.raises(InvalidInputError, match="do not hold a tensor"):
        dequantize(torch.zeros(33, dtype=torch.uint8), "Q8_0", (1, 32))


def test_pack_refuses_rows_that_do_not_split_into_blocks() -> None:
    with pytest.raises(InvalidInputError, match="Q4_K"):
        pack(values(2, 300), "Q4_K")


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj_in = torch.nn.Linear(256, 512)
        self.norm = torch.nn.LayerNorm(512)
        self.proj_out = torch.nn.Linear(512, 256)
        self.head = torch.nn.Linear(256, 40)  # 40 outputs: rows still hold whole blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.proj_out(torch.nn.functional.gelu(self.norm(self.proj_in(x)))))


def tiny() -> Tiny:
    torch.manual_seed(0)
    return Tiny().eval()


@pytest.mark.parametrize(("qtype", "bound"), [("Q4_K", 0.15), ("Q6_K", 0.05), ("Q8_0", 0.02)])
def test_a_real_gguf_file_loads_into_a_module_that_keeps_the_blocks(
    tmp_path: Path, qtype: str, bound: float
) -> None:
    src, x = tiny(), torch.randn(4, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = src(x)
    path = tmp_path / f"tiny-{qtype}.gguf"
    assert save_gguf(src, path, qtype) == 3
    fresh = Tiny().eval()
    load_gguf(path, fresh, dtype="float32", check=False)
    assert isinstance(fresh.proj_in, GGUFLinear) and fresh.proj_in.qtype == qtype
    assert fresh.proj_in.qweight.dtype == torch.uint8
    t = BY_NAME[qtype]
    assert fresh.proj_in.qweight.numel() == 512 * 256 // t.block * t.block_bytes
    assert isinstance(fresh.norm, torch.nn.LayerNorm)
    assert torch.equal(fresh.norm.weight, src.norm.weight)  # float tensors are copied as they are
    with torch.no_grad():
        y = fresh(x)
    err = float((y - ref).norm() / ref.norm())
    assert 0 < err < bound, f"{qtype}: rel err {err:.4f}"


def test_load_gguf_names_the_tensors_a_module_lacks(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    save_gguf(tiny(), path, "Q8_0")
    other = torch.nn.Sequential(torch.nn.Linear(256, 512))
    before = other[0].weight.detach().clone()
    with pytest.raises(InvalidInputError, match=r"not in the module: .*proj_in"):
        load_gguf(path, other, check=False)
    assert torch.equal(other[0].weight, before)


def test_load_gguf_calls_a_truncated_file_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    save_gguf(tiny(), path, "Q8_0")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UnreadableFileError, match=r"cut\.gguf"):
        load_gguf(path, tiny(), check=False)


def test_load_gguf_checks_the_plan_first(tmp_path: Path) -> None:
    from quantdoctor.errors import IncompatiblePlanError
    from quantdoctor.rules.models import Environment

    path = tmp_path / "tiny.gguf"
    save_gguf(tiny(), path, "Q8_0")
    no_gguf = Environment.model_validate({"packages": {"gguf": None}})
    module = tiny()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(IncompatiblePlanError, match="gguf"):
        load_gguf(path, module, env=no_gguf)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


@pytest.mark.gpu
@pytest.mark.parametrize("qtype", ALL_TYPES)
def test_torch_dequantizer_on_cuda_matches_gguf_py(qtype: str) -> None:
    x = values(64, 1024)
    blocks = quantize(x, qtype)
    got = dequantize(as_bytes(blocks, "cuda"), qtype, x.shape)
    assert got.device.type == "cuda"
    np.testing.assert_array_equal(got.cpu().numpy(), reference(blocks, qtype).reshape(x.shape))


@pytest.mark.gpu
def test_gguf_layers_dequantize_on_the_gpu(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    src = tiny()
    save_gguf(src, path, "Q4_K")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = load_gguf(path, Tiny().eval(), dtype="bfloat16", device="cuda", check=False)
    assert isinstance(module.proj_in, GGUFLinear)
    assert module.proj_in.qweight.device.type == "cuda"
    x = torch.randn(4, 256, device="cuda")
    with torch.no_grad():
        y = module(x)
        ref = src.cuda()(x)
    assert y.device.type == "cuda"
    assert float((y.float() - ref).norm() / ref.norm()) < 0.15


@pytest.mark.parametrize("qtype", ["Q8_0", "Q5_0", "Q4_K", "Q3_K", "IQ4_XS", "BF16"])
def test_cpu_steps_and_their_remainder_give_the_same_values(
    qtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quantdoctor.engines import gguf_dequant

    x = values(24, 768, seed=5)
    blocks = quantize(x, qtype)
    ref = reference(blocks, qtype).reshape(x.shape)
    monkeypatch.setattr(gguf_dequant, "CPU_STEP_VALUES", 5 * 256)  # 14 steps, the last short
    threads = torch.get_num_threads()
    got = dequantize(as_bytes(blocks), qtype, x.shape)
    np.testing.assert_array_equal(got.numpy(), ref)
    half = dequantize(as_bytes(blocks), qtype, x.shape, torch.bfloat16)
    assert half.dtype == torch.bfloat16 and torch.equal(half, got.to(torch.bfloat16))
    assert torch.get_num_threads() == threads  # the idle cores while dequantizing, then back


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux's /proc")
def test_this_process_threads_at_work_are_not_counted_as_a_busy_machine() -> None:
    """torch's threads spin after each op and read as runnable: the dequantizer counts
    the cores other processes hold, not this process's own threads (issue #17: a busy
    count right after every op kept a 16-core host's GGUF forward on one thread)."""
    import threading

    from quantdoctor.engines import gguf_dequant

    alone = gguf_dequant._own_running()
    assert alone >= 1  # this thread, at least
    a = torch.randn(384, 384)
    stop = threading.Event()

    def work() -> None:  # matrix products release the GIL: this thread stays runnable
        while not stop.is_set():
            a @ a

    worker = threading.Thread(target=work)
    worker.start()
    pairs = []
    try:
        seen = max(gguf_dequant._own_running() for _ in range(50))
        for _ in range(50):  # every runnable thread but this one, then what the count gives
            with open("/proc/loadavg", encoding="ascii") as f:
                others_and_ours = int(f.read().split()[3].split("/")[0]) - 1
            pairs.append((others_and_ours, gguf_dequant._busy_cores()))
    finally:
        stop.set()
        worker.join()
    assert seen >= 2  # this thread and the worker
    if max(everything for everything, _ in pairs) + 1 < 2:
        pytest.skip("this /proc/loadavg does not count runnable threads (a sandboxed kernel)")
    # the worker stays runnable: leaving it out counts fewer than every other thread
    assert any(busy is not None and busy < everything for everything, busy in pairs), pairs


def test_idle_cores_are_counted_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    from quantdoctor.engines import gguf_dequant

    calls: list[int] = []

    def busy() -> float:
        calls.append(1)
        return 0.0

    monkeypatch.setattr(gguf_dequant, "_busy_cores", busy)
    monkeypatch.setattr(gguf_dequant, "_idle", [])
    monkeypatch.setattr(gguf_dequant, "IDLE_FOR", 60.0)
    x = values(8, 256, seed=3)
    blocks = as_bytes(quantize(x, "Q8_0"))
    for _ in range(5):
        dequantize(blocks, "Q8_0", x.shape)
    assert len(calls) == 1
    monkeypatch.setattr(gguf_dequant, "IDLE_FOR", 0.0)
    dequantize(blocks, "Q8_0", x.shape)
    assert len(calls) == 2


def test_a_process_of_many_threads_counts_only_this_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting is bounded: past MAX_OWN_THREADS the count is this thread alone, which
    reads the machine as busier than it is (fewer threads, never more)."""
    from quantdoctor.engines import gguf_dequant

    if not Path("/proc/self/task").is_dir():
        pytest.skip("reads Linux's /proc")
    monkeypatch.setattr(gguf_dequant, "MAX_OWN_THREADS", 0)
    assert gguf_dequant._own_running() == 1
