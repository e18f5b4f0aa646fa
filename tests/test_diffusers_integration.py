"""A diffusers transformer, built from a config in code, saved and loaded back quantized
with the config ``Plan.to_diffusers()`` returns; its output compared with the float model's."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from quantdoctor.errors import InvalidInputError  # noqa: E402
from quantdoctor.rules.models import Plan  # noqa: E402

CONFIG: dict[str, Any] = dict(
    patch_size=1,
    in_channels=32,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=32,
    num_attention_heads=2,
    joint_attention_dim=64,
    pooled_projection_dim=32,
    guidance_embeds=False,
    axes_dims_rope=(8, 12, 12),
)


def inputs(device: str = "cpu", dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    img_ids = torch.zeros(4, 4, 3)
    img_ids[..., 1] = torch.arange(4)[:, None]
    img_ids[..., 2] = torch.arange(4)[None, :]
    return {
        "hidden_states": torch.randn(1, 16, 32, generator=g).to(device, dtype),
        "encoder_hidden_states": torch.randn(1, 8, 64, generator=g).to(device, dtype),
        "pooled_projections": torch.randn(1, 32, generator=g).to(device, dtype),
        "timestep": torch.tensor([0.5]).to(device, dtype),
        "img_ids": img_ids.reshape(-1, 3).to(device),
        "txt_ids": torch.zeros(8, 3).to(device),
    }


def run(model: Any, x: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = model(**x, return_dict=False)[0]
    return out.float()


def rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.cpu() - ref.cpu()).norm() / ref.cpu().norm())


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor]:
    """The tiny transformer saved with save_pretrained, and its float32 output."""
    path = tmp_path_factory.mktemp("flux_tiny")
    torch.manual_seed(0)
    model = diffusers.FluxTransformer2DModel(**CONFIG).eval()
    model.save_pretrained(path)
    return path, run(model, inputs())


# ---- Plan.to_diffusers(), per engine ---------------------------------------------------


def test_to_diffusers_gives_bitsandbytes_its_config() -> None:
    nf4 = Plan(engine="bitsandbytes", scheme="nf4", mode="pre", dtype="float16").to_diffusers()
    assert type(nf4).__name__ == "BitsAndBytesConfig"
    assert nf4.load_in_4bit and nf4.bnb_4bit_quant_type == "nf4"
    assert nf4.bnb_4bit_compute_dtype == torch.float16
    int8 = Plan(engine="bitsandbytes", scheme="int8", mode="pre").to_diffusers()
    assert int8.load_in_8bit and not int8.load_in_4bit


@pytest.mark.parametrize(
    ("scheme", "weights"), [("qint8", "int8"), ("qint4", "int4"), ("qfloat8_e4m3fn", "float8")]
)
def test_to_diffusers_gives_quanto_its_weights_dtype(scheme: str, weights: str) -> None:
    config = Plan(engine="quanto", scheme=scheme, mode="pre").to_diffusers()
    assert type(config).__name__ == "QuantoConfig"
    assert config.weights_dtype == weights


def test_to_diffusers_refuses_quanto_e5m2_which_diffusers_cannot_spell() -> None:
    with pytest.raises(InvalidInputError, match=r"qfloat8_e5m2.*valid values are qint8"):
        Plan(engine="quanto", scheme="qfloat8_e5m2", mode="pre").to_diffusers()


@pytest.mark.parametrize(
    ("scheme", "config_class"),
    [("int8wo", "Int8WeightOnlyConfig"), ("float8dq", "Float8DynamicActivationFloat8WeightConfig")],
)
def test_to_diffusers_gives_torchao_a_config_instance(scheme: str, config_class: str) -> None:
    config = Plan(engine="torchao", scheme=scheme, mode="pre").to_diffusers()
    assert type(config).__name__ == "TorchAoConfig"
    assert type(config.quant_type).__name__ == config_class  # an instance, not the refused string


def test_to_diffusers_gives_gguf_its_compute_dtype() -> None:
    config = Plan(engine="gguf", scheme="Q4_K", dtype="float16").to_diffusers()
    assert type(config).__name__ == "GGUFQuantizationConfig"
    assert config.compute_dtype == torch.float16


def test_to_diffusers_tells_nncf_users_to_quantize_after_load() -> None:
    with pytest.raises(InvalidInputError, match=r"quantdoctor\.quantize"):
        Plan(engine="nncf", scheme="int8_asym").to_diffusers()


# ---- from_pretrained with that config, for real -------------------------------------------


@pytest.mark.parametrize(
    ("engine", "scheme", "layer", "bound"),
    [("quanto", "qint8", "QLinear", 0.03), ("torchao", "int8wo", "Linear", 0.03)],
)
def test_from_pretrained_with_the_plans_config_quantizes_on_load(
    saved: tuple[Path, torch.Tensor], engine: str, scheme: str, layer: str, bound: float
) -> None:
    path, ref = saved
    plan = Plan(engine=engine, scheme=scheme, mode="pre", dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = diffusers.FluxTransformer2DModel.from_pretrained(
            path, quantization_config=plan.to_diffusers(), torch_dtype=torch.float32
        )
    proj = model.transformer_blocks[0].attn.to_q
    assert type(proj).__name__ == layer
    assert type(proj.weight).__name__ != "Parameter"  # the engine's quantized tensor
    err = rel_err(run(model, inputs()), ref)
    assert 0 < err < bound, f"{engine} {scheme}: rel err {err:.4f}"


def test_from_single_file_loads_a_gguf_written_here_with_the_plans_config(
    saved: tuple[Path, torch.Tensor], tmp_path: Path
) -> None:
    from quantdoctor.engines import load_gguf, save_gguf

    path, ref = saved
    source = diffusers.FluxTransformer2DModel.from_pretrained(path, torch_dtype=torch.float32)
    gguf_file = tmp_path / "flux_tiny-Q8_0.gguf"
    assert save_gguf(source, gguf_file, "Q8_0") > 0
    plan = Plan(engine="gguf", scheme="Q8_0", dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = diffusers.FluxTransformer2DModel.from_single_file(
            str(gguf_file), config=str(path), quantization_config=plan.to_diffusers(),
            torch_dtype=torch.float32,
        )  # fmt: skip
    assert type(model.transformer_blocks[0].attn.to_q.weight).__name__ == "GGUFParameter"
    y = run(model, inputs())
    assert 0 < rel_err(y, ref) < 0.02
    # quantdoctor's own loader reads the same blocks and agrees with diffusers' (which
    # multiplies in half precision: a few 1e-4 apart, against 1e-2 of quantization error)
    ours = load_gguf(gguf_file, diffusers.FluxTransformer2DModel(**CONFIG).eval(), dtype="float32",
                     check=False)  # fmt: skip
    assert rel_err(run(ours, inputs()), y) < 2e-3


@pytest.mark.gpu
@pytest.mark.parametrize("scheme", ["nf4", "int8"])
def test_from_pretrained_with_bitsandbytes_config_on_the_gpu(
    saved: tuple[Path, torch.Tensor], scheme: str
) -> None:
    path, ref = saved
    plan = Plan(engine="bitsandbytes", scheme=scheme, mode="pre")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = diffusers.FluxTransformer2DModel.from_pretrained(
            path, quantization_config=plan.to_diffusers(), torch_dtype=torch.bfloat16
        ).to("cuda")
    assert type(model.transformer_blocks[0].attn.to_q).__name__ in ("Linear4bit", "Linear8bitLt")
    err = rel_err(run(model, inputs("cuda", torch.bfloat16)), ref)
    assert 0 < err < 0.3
