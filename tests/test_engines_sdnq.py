"""SDNQ applied for real: sdnq_post_load_quant through quantdoctor.quantize, diffusers'
SDNQConfig through Plan.to_diffusers(), and prequantized folders saved, detected and loaded.

Tiny models built here; outputs compared with the bf16 model's, stored bytes with the
matrix's layout (block = sdnq's automatic group of 2**(bits+2) inputs, block_bytes = the
packed codes plus an fp32 scale, and an fp32 zero point for unsigned types).
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# sdnq compiles its dequantize with torch.compile when it can; Inductor's C++ builds take
# minutes on a 2-core CI machine, so the CPU tests run sdnq's eager path (read at import).
os.environ.setdefault("SDNQ_USE_TORCH_COMPILE", "0")
torch = pytest.importorskip("torch")
pytest.importorskip("sdnq")
pytest.importorskip("diffusers")

from quantdoctor import detect, explain, quantize  # noqa: E402
from quantdoctor.engines import get_adapter  # noqa: E402
from quantdoctor.engines.sdnq import load_prequantized, sdnq_weights  # noqa: E402
from quantdoctor.errors import IncompatiblePlanError  # noqa: E402
from quantdoctor.rules.matrix import load_matrix  # noqa: E402
from quantdoctor.rules.models import Environment, Plan  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def cpu_env(**packages: str | None) -> Environment:
    names = ("sdnq", "diffusers", "accelerate", "transformers", "openvino", "safetensors")
    return Environment.model_validate(
        {
            "os": "linux",
            "wsl": False,
            "arch": platform.machine(),
            "python": platform.python_version(),
            "backend": "cpu",
            "torch": {"version": torch.__version__, "cuda": None, "hip": None, "xpu": False},
            "gpus": [],
            "triton": None,
            "packages": {**{n: _version(n) for n in names}, **packages},
        }
    )


class Net(torch.nn.Module):
    """Two Linear layers whose input width (1024) is a whole number of every group size."""

    def __init__(self) -> None:
        super().__init__()
        self.l0 = torch.nn.Linear(1024, 1024)
        self.l1 = torch.nn.Linear(1024, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l1(torch.nn.functional.gelu(self.l0(x)))


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.float() - ref.float()).norm() / ref.float().norm())


@contextmanager
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# scheme, max relative error against bf16 (about twice what sdnq 0.2.8 gave on this model)
POST_CASES = [
    ("int8", 0.02),
    ("uint8", 0.02),
    ("uint4", 0.15),
    ("int4", 0.15),
    ("float8_e4m3fn", 0.07),
    ("float4_e2m1fn", 0.25),
    ("uint2", 0.6),
]


@pytest.mark.parametrize(("scheme", "max_err"), POST_CASES)
def test_post_mode_quantizes_within_error_and_stores_the_matrix_layout(
    scheme: str, max_err: float
) -> None:
    torch.manual_seed(0)
    model = Net().to(torch.bfloat16).eval()
    x = torch.randn(8, 1024, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    with torch.no_grad():
        ref = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = quantize(model, Plan(engine="sdnq", scheme=scheme, mode="post"), env=cpu_env())
    with torch.no_grad():
        y = out(x)
    assert type(out.l0).__name__ == "SDNQLinear" and type(out.l1).__name__ == "SDNQLinear"
    assert rel_err(y, ref) < max_err
    spec = load_matrix(defaults=False).engines["sdnq"].schemes[scheme]
    state = out.state_dict()
    stored = sum(
        t.numel() * t.element_size()
        for name, t in state.items()
        if name.rsplit(".", 1)[-1] in ("weight", "scale", "zero_point")
    )
    weights = 1024 * 1024 + 1024 * 256
    assert spec.block_bytes is not None
    assert stored == weights * spec.block_bytes / spec.block
    assert state["l0.bias"].dtype == torch.bfloat16  # biases are not quantized


def test_the_adapter_passes_sdnq_its_own_spelling_of_every_scheme() -> None:
    sdnq_common = pytest.importorskip("sdnq.common")
    for scheme, spec in load_matrix(defaults=False).engines["sdnq"].schemes.items():
        assert spec.api == scheme and scheme in sdnq_common.accepted_weight_dtypes
        info = sdnq_common.dtype_dict[scheme]
        assert info["num_bits"] == spec.bits
        assert ("int" if info["is_integer"] else "float") == spec.family


def test_small_layers_stay_unquantized_as_sdnq_decides() -> None:
    """sdnq skips layers under 16384 weights or 32 input channels (utils.py:107-124)."""
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 2048), torch.nn.Linear(1024, 15), torch.nn.Linear(1024, 32)
    )
    with quiet():
        quantize(model, Plan(engine="sdnq", scheme="int8"), env=cpu_env())
    assert [type(m).__name__ for m in model] == ["Linear", "Linear", "SDNQLinear"]


def test_quantizing_twice_is_refused_by_sdnq_and_explained() -> None:
    model = Net().to(torch.bfloat16)
    with quiet():
        quantize(model, Plan(engine="sdnq", scheme="int8"), env=cpu_env())
        with pytest.raises(RuntimeError, match="pre-quantized") as info:
            get_adapter("sdnq").apply(
                model, Plan(engine="sdnq", scheme="int8"), example_input=None, progress=None
            )
    assert "sdnq.mode.post" in [m.rule for m in explain(str(info.value))]


def test_a_blocked_plan_leaves_the_module_alone() -> None:
    model = Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(IncompatiblePlanError, match=r"sdnq\.not-installed"):
        quantize(model, Plan(engine="sdnq", scheme="int8"), env=cpu_env(sdnq=None))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_to_diffusers_is_sdnq_config_with_the_scheme() -> None:
    import sdnq

    config = Plan(engine="sdnq", scheme="uint4", mode="pre").to_diffusers()
    assert isinstance(config, sdnq.SDNQConfig)
    assert config.weights_dtype == "uint4" and config.quant_method == "sdnq"
    assert config.use_quantized_matmul is False


# ---------------------------------------------------------------- through diffusers

FLUX = dict(
    patch_size=1,
    in_channels=64,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=64,
    num_attention_heads=2,
    joint_attention_dim=256,
    pooled_projection_dim=128,
    guidance_embeds=False,
    axes_dims_rope=(8, 28, 28),
)


def flux_inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    bf = torch.bfloat16
    img_ids = torch.zeros(16, 3)
    img_ids[:, 1] = torch.arange(16) // 4
    img_ids[:, 2] = torch.arange(16) % 4
    return dict(
        hidden_states=torch.randn(1, 16, 64, generator=gen).to(bf),
        encoder_hidden_states=torch.randn(1, 8, 256, generator=gen).to(bf),
        pooled_projections=torch.randn(1, 128, generator=gen).to(bf),
        timestep=torch.tensor([0.5]).to(bf),
        img_ids=img_ids,
        txt_ids=torch.zeros(8, 3),
    )


def run_flux(model: Any) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = model(**flux_inputs(), return_dict=False)[0]
    return out


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("flux") / "bf16"
    FluxTransformer2DModel(**FLUX).to(torch.bfloat16).save_pretrained(path)
    return path


def test_pre_mode_then_save_detect_and_load_prequantized(flux_dir: Path, tmp_path: Path) -> None:
    from diffusers import FluxTransformer2DModel

    ref = run_flux(FluxTransformer2DModel.from_pretrained(flux_dir, torch_dtype=torch.bfloat16))
    plan = Plan(engine="sdnq", scheme="uint4", mode="pre")
    with quiet():
        model = FluxTransformer2DModel.from_pretrained(
            flux_dir, quantization_config=plan.to_diffusers(), torch_dtype=torch.bfloat16
        )
    y = run_flux(model)
    assert sum(type(m).__name__ == "SDNQLinear" for m in model.modules()) >= 10
    assert rel_err(y, ref) < 0.2

    saved = tmp_path / "flux-sdnq-uint4"
    model.save_pretrained(saved)
    found = detect(saved)
    assert (found.engine, found.scheme, found.component) == ("sdnq", "uint4", "transformer")
    assert found.plan == {
        "engine": "sdnq",
        "scheme": "uint4",
        "mode": "prequantized",
        "component": "transformer",
    }
    single = detect(saved / "diffusion_pytorch_model.safetensors")
    assert single.engine == "sdnq"  # packed uint4: the header alone cannot name the scheme

    with quiet():
        loaded = load_prequantized(saved)
    assert type(loaded).__name__ == "FluxTransformer2DModel"
    assert sum(type(m).__name__ == "SDNQLinear" for m in loaded.modules()) >= 10
    assert rel_err(run_flux(loaded), y) < 0.01  # the same codes (bf16 rounding apart)


def test_a_unet_quantizes_while_loading_through_diffusers(tmp_path: Path) -> None:
    """SD.Next's docs call UNets post-only; diffusers' SDNQConfig quantizes one's Linears."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    UNet2DConditionModel(
        block_out_channels=(64, 128),
        layers_per_block=1,
        cross_attention_dim=128,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        sample_size=8,
        attention_head_dim=8,
        norm_num_groups=32,
    ).save_pretrained(tmp_path / "unet")
    plan = Plan(engine="sdnq", scheme="int8", mode="pre", component="unet")
    with quiet():
        unet = UNet2DConditionModel.from_pretrained(
            tmp_path / "unet", quantization_config=plan.to_diffusers(), torch_dtype=torch.bfloat16
        )
    kinds = [type(m).__name__ for m in unet.modules()]
    assert "SDNQLinear" in kinds and "Conv2d" in kinds  # convolutions need quant_conv=True
    sample = torch.randn(1, 4, 8, 8, dtype=torch.bfloat16)
    with torch.no_grad():
        out = unet(sample, 1, torch.randn(1, 4, 128, dtype=torch.bfloat16)).sample
    assert out.shape == sample.shape and bool(torch.isfinite(out).all())


LOAD_TEXT_ENCODER = textwrap.dedent(
    """
    import sys, torch, warnings
    warnings.filterwarnings("ignore")
    if sys.argv[2] == "import":
        import sdnq
    from transformers import CLIPTextModel
    model = CLIPTextModel.from_pretrained(sys.argv[1], torch_dtype=torch.bfloat16)
    saved = torch.load(sys.argv[1] + "/ref.pt")
    with torch.no_grad():
        y = model(saved["ids"]).last_hidden_state.float()
    ref = saved["ref"].float()
    kinds = {type(m).__name__ for m in model.modules()}
    print("SDNQLinear" in kinds, float((y - ref).norm() / ref.norm()))
    """
)


def test_a_prequantized_text_encoder_misloads_unless_sdnq_is_imported_first(
    tmp_path: Path,
) -> None:
    """transformers skips an SDNQ quantization_config it does not know (a warning) and
    loads the codes as plain weights; quantdoctor's loader imports sdnq first."""
    import sdnq
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    config = CLIPTextConfig(
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=1000,
        max_position_embeddings=32,
    )
    CLIPTextModel(config).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    with quiet():
        model = CLIPTextModel.from_pretrained(
            tmp_path / "bf16",
            quantization_config=sdnq.SDNQConfig(weights_dtype="int8"),
            torch_dtype=torch.bfloat16,
        )
    saved = tmp_path / "te-sdnq"
    model.save_pretrained(saved)
    ids = torch.randint(0, 1000, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.save({"ids": ids, "ref": model(ids).last_hidden_state}, saved / "ref.pt")
    found = detect(saved)
    assert (found.engine, found.scheme, found.component) == ("sdnq", "int8", "text_encoder")

    def load(how: str) -> tuple[bool, float, str]:
        run = subprocess.run(
            [sys.executable, "-c", LOAD_TEXT_ENCODER, str(saved), how],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        sdnq_layers, err = run.stdout.split()[-2:]
        return sdnq_layers == "True", float(err), run.stderr

    quantized, err, log = load("plain")
    assert not quantized and err > 0.5  # mis-loaded: int8 codes read as weights
    matches = [m.rule for m in explain(log)]
    assert "sdnq.text-encoder.import-first" in matches
    quantized, err, _ = load("import")
    assert quantized and err == 0.0
    with quiet():
        assert torch.equal(
            load_prequantized(saved)(ids).last_hidden_state, model(ids).last_hidden_state
        )


def test_sdnq_tensor_names_are_recognised() -> None:
    tensors = {
        "a.weight": ("I8", (64, 64)),
        "a.scale": ("F32", (64, 1)),
        "b.weight": ("U8", (2048,)),
        "b.scale": ("F32", (64, 1, 1)),
        "b.zero_point": ("F32", (64, 1, 1)),
        "c.weight": ("U8", (64, 64)),
        "c.scale": ("F32", (64, 1)),
        "c.zero_point": ("F32", (64, 1)),
        "d.weight": ("F8_E4M3", (64, 64)),
        "d.scale": ("F32", (64, 1)),
        "norm.scale": ("F32", (64,)),  # a norm's parameter: no weight beside it
        "e.weight": ("BF16", (64, 64)),
        "e.scale": ("F32", (64,)),  # not a code dtype: not SDNQ
    }
    assert sdnq_weights(tensors) == {
        "int8": ["a.weight"],
        None: ["b.weight"],
        "uint8": ["c.weight"],
        "float8_e4m3fn": ["d.weight"],
    }


# ---------------------------------------------------------------- on a CUDA GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    ("scheme", "max_err"), [("int8", 0.02), ("uint4", 0.15), ("float8_e4m3fn", 0.07)]
)
def test_quantize_on_gpu(scheme: str, max_err: float) -> None:
    from quantdoctor.doctor.probe import probe

    torch.manual_seed(0)
    model = Net().cuda().to(torch.bfloat16).eval()
    x = torch.randn(8, 1024, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        ref = model(x)
    with quiet():
        out = quantize(model, Plan(engine="sdnq", scheme=scheme), env=probe())
    with torch.no_grad():
        y = out(x)
    assert y.device.type == "cuda" and out.l0.weight.device.type == "cuda"
    assert type(out.l0).__name__ == "SDNQLinear"
    assert rel_err(y, ref) < max_err
