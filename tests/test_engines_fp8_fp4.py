"""The new engines that run on a CPU, applied for real to tiny models built here:
layerwise casting (FP8 storage, diffusers' hooks), NVIDIA ModelOpt (weights quantized and
compressed) and BFL's fp8r/nvfp4 layouts (diffusers' own BFL layers). Outputs are compared
with the float model's; weights must take fewer bytes."""

from __future__ import annotations

import importlib.metadata as md
import io
import platform
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from quantdoctor import quantize  # noqa: E402
from quantdoctor.errors import IncompatiblePlanError, InvalidInputError  # noqa: E402
from quantdoctor.rules.models import Environment, Plan  # noqa: E402

_PACKAGES = ("diffusers", "accelerate", "nvidia-modelopt", "transformers", "kernels", "auto-round")


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def cpu_env() -> Environment:
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
            "packages": {name: _version(name) for name in _PACKAGES},
        }
    )


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l0 = torch.nn.Linear(256, 512)
        self.l1 = torch.nn.Linear(512, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l1(torch.nn.functional.gelu(self.l0(x)))


def make_model(dtype: torch.dtype = torch.float32) -> MLP:
    torch.manual_seed(0)
    return MLP().eval().to(dtype)


def make_input(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(16, 256, generator=torch.Generator().manual_seed(1)).to(dtype)


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.float() - ref.float()).norm() / ref.float().norm())


def weight_bytes(module: torch.nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.tell()


# ---------------------------------------------------------------- layerwise casting
@pytest.mark.parametrize(("scheme", "bound"), [("float8_e4m3fn", 0.06), ("float8_e5m2", 0.12)])
def test_layerwise_casting_stores_float8_and_computes_in_the_plan_dtype(
    scheme: str, bound: float
) -> None:
    model, x = make_model(torch.bfloat16), make_input(torch.bfloat16)
    with torch.no_grad():
        ref = model(x)
    before = weight_bytes(model)
    plan = Plan(engine="layerwise_casting", scheme=scheme, dtype="bfloat16")
    model = quantize(model, plan, env=cpu_env())
    assert model.l0.weight.dtype == getattr(torch, scheme)
    with torch.no_grad():
        out = model(x)
    assert out.dtype == torch.bfloat16
    assert rel_err(out, ref) < bound
    assert weight_bytes(model) < 0.6 * before
    assert model.l0.weight.dtype == getattr(torch, scheme)  # back to storage after the forward


def _tiny_flux() -> Any:
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 6, 6],
    ).to(torch.bfloat16)


def _flux_input() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return {
        "hidden_states": torch.randn(1, 16, 16, generator=g).to(torch.bfloat16),
        "encoder_hidden_states": torch.randn(1, 8, 32, generator=g).to(torch.bfloat16),
        "pooled_projections": torch.randn(1, 32, generator=g).to(torch.bfloat16),
        "timestep": torch.tensor([1.0]),
        "img_ids": torch.zeros(16, 3),
        "txt_ids": torch.zeros(8, 3),
    }


def test_layerwise_casting_of_a_diffusers_model_keeps_its_own_skip_patterns() -> None:
    model, inputs = _tiny_flux(), _flux_input()
    with torch.no_grad():
        ref = model(**inputs).sample
    model = quantize(model, Plan(engine="layerwise_casting", scheme="float8_e4m3fn"), env=cpu_env())
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert dtypes["transformer_blocks.0.attn.to_q.weight"] == torch.float8_e4m3fn
    assert all(
        d == torch.bfloat16 for n, d in dtypes.items() if ".norm" in n or n.startswith("norm")
    )
    with torch.no_grad():
        out = model(**inputs).sample
    assert rel_err(out, ref) < 0.05


class CastsToStoredDtype(torch.nn.Module):
    """A block whose forward casts its input to a layer's weight dtype (as some embedders do)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = torch.nn.Linear(8, 8)
        self.inner = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(self.gate.weight.dtype))


class Wrapper(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.casts = CastsToStoredDtype()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.casts(x)


def test_a_module_that_casts_inputs_to_its_weight_dtype_needs_a_skip_pattern() -> None:
    from diffusers.hooks import apply_layerwise_casting

    from quantdoctor import explain

    x = torch.randn(2, 8).to(torch.bfloat16)
    bare = Wrapper().to(torch.bfloat16)
    apply_layerwise_casting(bare, torch.float8_e4m3fn, torch.bfloat16, skip_modules_pattern=())
    with pytest.raises(RuntimeError) as err:
        bare(x)
    assert explain(str(err.value))[0].rule == "layerwise_casting.skip-patterns"
    skipped = Wrapper().to(torch.bfloat16)
    apply_layerwise_casting(
        skipped, torch.float8_e4m3fn, torch.bfloat16, skip_modules_pattern=("gate",)
    )
    assert skipped(x).dtype == torch.bfloat16


# ---------------------------------------------------------------- modelopt
modelopt_needed = pytest.mark.skipif(
    _version("nvidia-modelopt") is None, reason="nvidia-modelopt is not installed"
)


@modelopt_needed
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    ("scheme", "bound", "dtype"),
    [
        ("INT8", 0.02, "int8"),
        ("FP8", 0.08, "float8_e4m3fn"),
        ("INT4", 0.20, "uint8"),
        ("NVFP4", 0.25, "uint8"),
    ],
)
def test_modelopt_quantizes_and_compresses_weights_on_cpu(
    scheme: str, bound: float, dtype: str
) -> None:
    model, x = make_model(), make_input()
    with torch.no_grad():
        ref = model(x)
    before = weight_bytes(model)
    model = quantize(model, Plan(engine="modelopt", scheme=scheme, dtype="float32"), env=cpu_env())
    assert model.l0.weight.dtype == getattr(torch, dtype)
    with torch.no_grad():
        assert rel_err(model(x), ref) < bound
    assert weight_bytes(model) < 0.45 * before


# ---------------------------------------------------------------- bfl
@pytest.mark.parametrize(("scheme", "bound"), [("fp8r", 0.06), ("nvfp4", 0.25)])
def test_bfl_layouts_run_through_diffusers_own_layers(scheme: str, bound: float) -> None:
    from diffusers.quantizers.bfl.utils import QUANTIZED_LINEARS

    model, x = make_model(torch.bfloat16), make_input(torch.bfloat16)
    with torch.no_grad():
        ref = model(x)
    before = weight_bytes(model)
    plan = Plan(engine="bfl", scheme=scheme, mode="post")
    model = quantize(model, plan, env=cpu_env(), example_input=x)
    assert isinstance(model.l0, QUANTIZED_LINEARS[scheme])
    with torch.no_grad():
        assert rel_err(model(x), ref) < bound
    assert weight_bytes(model) < (0.75 if scheme == "fp8r" else 0.45) * before


def test_bfl_nvfp4_without_example_input_names_the_argument() -> None:
    model = make_model(torch.bfloat16)
    with pytest.raises(InvalidInputError, match="example_input"):
        quantize(model, Plan(engine="bfl", scheme="nvfp4", mode="post"), env=cpu_env())
    assert isinstance(model.l0, torch.nn.Linear)


def test_a_prequantized_bfl_plan_says_how_the_checkpoint_loads() -> None:
    with pytest.raises(InvalidInputError, match="from_single_file"):
        quantize(make_model(), Plan(engine="bfl", scheme="fp8r"), env=cpu_env())


def test_nunchaku_lite_is_refused_on_this_cpu_before_anything_loads() -> None:
    model = make_model()
    with pytest.raises(IncompatiblePlanError, match=r"nunchaku_lite\.cuda-only"):
        quantize(model, Plan(engine="nunchaku_lite", scheme="svdq_w4a4_nvfp4"), env=cpu_env())
