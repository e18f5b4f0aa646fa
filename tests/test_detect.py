"""detect: real files written by the real writers are recognised from their headers alone.

Every file here is produced by the library that writes such files in the wild
(``safetensors.torch.save_file``, ``gguf.GGUFWriter``, ``save_pretrained``), from tiny
models quantized for real by bitsandbytes, optimum-quanto and torchao on the CPU.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quantdoctor.files.detect import Detection, detect

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

IN, OUT = 256, 512
LINEAR_PARAMS = IN * OUT + OUT


def _linear(dtype: Any = None) -> Any:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(IN, OUT))
    return model.to(dtype or torch.bfloat16)


def _save(path: Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> Path:
    safetensors_torch.save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata
    )
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Writers run lazily, once per module: ``files("quanto-qint4")`` -> its path."""
    root = tmp_path_factory.mktemp("detect")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = WRITERS[name](root / name)
        return made[name]

    return get


# ------------------------------------------------------------------------ writers


def _bnb4(kind: str) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        bnb = pytest.importorskip("bitsandbytes")
        d.mkdir()
        layer = bnb.nn.Linear4bit(IN, OUT, quant_type=kind, compute_dtype=torch.bfloat16)
        model = torch.nn.Sequential(layer).to("cpu")  # .to() quantizes, on the CPU too
        return _save(d / "model.safetensors", model.state_dict())

    return write


def _bnb8(d: Path) -> Path:
    bnb = pytest.importorskip("bitsandbytes")
    d.mkdir()
    layer = bnb.nn.Linear8bitLt(IN, OUT, has_fp16_weights=False)
    layer.weight = bnb.nn.Int8Params(
        torch.nn.Linear(IN, OUT).weight.data, requires_grad=False, has_fp16_weights=False
    )
    model = torch.nn.Sequential(layer).to("cpu")
    return _save(d / "model.safetensors", model.state_dict())


def _quanto(qtype: str, qmap: bool = False) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        quanto = pytest.importorskip("optimum.quanto")
        d.mkdir()
        model = _linear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quanto.quantize(model, weights=getattr(quanto, qtype))
            quanto.freeze(model)
        if qmap:  # as optimum-quanto's README saves it
            (d / "quanto_qmap.json").write_text(json.dumps(quanto.quantization_map(model)))
        return _save(d / "model.safetensors", model.state_dict())

    return write


def _torchao(config: str) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        quant = pytest.importorskip("torchao.quantization")
        support = pytest.importorskip("torchao.prototype.safetensors.safetensors_support")
        d.mkdir()
        model = _linear()
        quant.quantize_(model, getattr(quant, config)())
        tensors, metadata = support.flatten_tensor_state_dict(model.state_dict())
        return _save(d / "model.safetensors", tensors, metadata)

    return write


def _plain(dtype_name: str) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        d.mkdir()
        model = _linear(torch.float32)
        state = {k: v.to(getattr(torch, dtype_name)) for k, v in model.state_dict().items()}
        return _save(d / "model.safetensors", state)

    return write


def _gguf_file(path: Path, tensors: dict[str, tuple[Any, str]], arch: str | None = "flux") -> Path:
    """A GGUF as ComfyUI-GGUF writes one: architecture KV, tensors in their ggml types."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch=arch or "")
    if arch is None:  # stable-diffusion.cpp files carry no architecture
        writer.kv_data[0].pop("general.architecture", None)
    for name, (array, type_name) in tensors.items():
        qtype = gguf.GGMLQuantizationType[type_name]
        data = np.asarray(array, dtype=np.float32)
        if type_name in ("F32",):
            writer.add_tensor(name, data)
        elif type_name == "F16":
            writer.add_tensor(name, data.astype(np.float16))
        else:
            packed = gguf.quants.quantize(data, qtype)
            writer.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _rand(*shape: int) -> Any:
    import numpy as np

    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _gguf_flux(qtype: str) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        d.mkdir()
        tensors = {
            "double_blocks.0.img_attn.qkv.weight": (_rand(3 * 64, 256), qtype),
            "double_blocks.0.img_mlp.0.weight": (_rand(256, 256), qtype),
            "double_blocks.0.img_attn.norm.key_norm.scale": (_rand(64), "F32"),
            "final_layer.linear.weight": (_rand(64, 256), "F16"),
        }
        return _gguf_file(d / "flux.gguf", tensors)

    return write


def _gguf_t5(d: Path) -> Path:
    d.mkdir()
    tensors = {
        "enc.blk.0.attn_q.weight": (_rand(64, 64), "Q8_0"),
        "token_embd.weight": (_rand(100, 64), "Q8_0"),
        "enc.output_norm.weight": (_rand(64), "F32"),
    }
    return _gguf_file(d / "t5.gguf", tensors, arch="t5encoder")


def _gguf_no_arch(d: Path) -> Path:
    d.mkdir()
    tensors = {
        "input_blocks.0.0.weight": (_rand(320, 32), "Q8_0"),
        "output_blocks.11.0.skip_connection.weight": (_rand(320, 64), "Q4_0"),
        "label_emb.0.0.weight": (_rand(64, 64), "Q4_0"),
    }
    return _gguf_file(d / "sdxl.gguf", tensors, arch=None)


def _keys(names: list[str], shape: tuple[int, ...] = (8, 8)) -> Callable[[Path], Path]:
    """A plain checkpoint with the given parameter names (layout tests need names only)."""

    def write(d: Path) -> Path:
        d.mkdir()
        return _save(d / "model.safetensors", {n: torch.zeros(shape) for n in names})

    return write


def _tiny_flux_folder(d: Path) -> Path:
    diffusers = pytest.importorskip("diffusers")
    model = diffusers.FluxTransformer2DModel(
        patch_size=1,
        in_channels=32,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=32,
        num_attention_heads=2,
        joint_attention_dim=64,
        pooled_projection_dim=32,
        axes_dims_rope=(8, 12, 12),
    ).to(torch.bfloat16)
    model.save_pretrained(d)
    return d


def _tiny_flux_sharded(d: Path) -> Path:
    diffusers = pytest.importorskip("diffusers")
    src = _tiny_flux_folder(d.with_name(d.name + "-src"))
    model = diffusers.FluxTransformer2DModel.from_pretrained(src)
    model.save_pretrained(d, max_shard_size="200KB")
    return d


def _tiny_t5_folder(d: Path) -> Path:
    transformers = pytest.importorskip("transformers")
    config = transformers.T5Config(
        vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4
    )
    transformers.T5EncoderModel(config).save_pretrained(d)
    return d


def _diffusers_quanto_folder(d: Path, src: Path | None = None) -> Path:
    diffusers = pytest.importorskip("diffusers")
    src = _tiny_flux_folder(src or d.with_name(d.name + "-src"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = diffusers.FluxTransformer2DModel.from_pretrained(
            src, quantization_config=diffusers.QuantoConfig(weights_dtype="int8")
        )
    # diffusers' save_pretrained refuses quanto models; its own config writer records the
    # quantization_config, and the weights are saved the way quanto's docs do.
    d.mkdir()
    model.save_config(d)
    _save(d / "diffusion_pytorch_model.safetensors", model.state_dict())
    return d


def _pipeline_folder(d: Path) -> Path:
    d.mkdir()
    _diffusers_quanto_folder(d / "transformer", src=d.with_name(d.name + "-src"))
    _tiny_t5_folder(d / "text_encoder")
    (d / "scheduler").mkdir()
    (d / "scheduler" / "scheduler_config.json").write_text("{}")
    index = {
        "_class_name": "FluxPipeline",
        "transformer": ["diffusers", "FluxTransformer2DModel"],
        "text_encoder": ["transformers", "T5EncoderModel"],
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "tokenizer": [None, None],
    }
    (d / "model_index.json").write_text(json.dumps(index))
    return d


WRITERS: dict[str, Callable[[Path], Path]] = {
    "bnb-nf4": _bnb4("nf4"),
    "bnb-fp4": _bnb4("fp4"),
    "bnb-int8": _bnb8,
    "quanto-qint8": _quanto("qint8"),
    "quanto-qint4": _quanto("qint4"),
    "quanto-qint2": _quanto("qint2"),
    "quanto-qfloat8": _quanto("qfloat8"),
    "quanto-qint4-qmap": _quanto("qint4", qmap=True),
    "torchao-int8wo": _torchao("Int8WeightOnlyConfig"),
    "torchao-int8dq": _torchao("Int8DynamicActivationInt8WeightConfig"),
    "torchao-float8wo": _torchao("Float8WeightOnlyConfig"),
    "plain-bf16": _plain("bfloat16"),
    "plain-fp8": _plain("float8_e4m3fn"),
    "gguf-flux-q8": _gguf_flux("Q8_0"),
    "gguf-flux-q4": _gguf_flux("Q4_0"),
    "gguf-t5": _gguf_t5,
    "gguf-no-arch": _gguf_no_arch,
    "flux-folder": _tiny_flux_folder,
    "flux-sharded": _tiny_flux_sharded,
    "t5-folder": _tiny_t5_folder,
    "quanto-flux-folder": _diffusers_quanto_folder,
    "pipeline": _pipeline_folder,
    "flux-bfl": _keys(
        [
            "double_blocks.0.img_attn.norm.key_norm.scale",
            "double_blocks.0.img_attn.qkv.weight",
            "img_in.weight",
        ]
    ),
    "sd3": _keys(
        [
            "joint_blocks.0.context_block.adaLN_modulation.1.bias",
            "joint_blocks.0.x_block.attn.qkv.weight",
        ]
    ),
    "sd1-unet": _keys(["input_blocks.0.0.weight", "output_blocks.11.0.skip_connection.weight"]),
    "sdxl-unet": _keys(["input_blocks.0.0.weight", "label_emb.0.0.weight"]),
    "vae": _keys(
        [
            "encoder.conv_in.weight",
            "encoder.down.0.block.0.conv1.weight",
            "decoder.conv_in.weight",
            "decoder.up.0.block.0.conv1.weight",
        ]
    ),
    "clip": _keys(
        [
            "text_model.encoder.layers.0.self_attn.q_proj.weight",
            "text_model.embeddings.token_embedding.weight",
        ]
    ),
    "all-in-one": _keys(
        [
            "model.diffusion_model.input_blocks.0.0.weight",
            "model.diffusion_model.output_blocks.11.0.skip_connection.weight",
            "first_stage_model.encoder.conv_in.weight",
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
        ]
    ),
    "prefixed-flux": _keys(
        [
            "model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale",
            "model.diffusion_model.double_blocks.0.img_attn.qkv.weight",
            "model.diffusion_model.img_in.weight",
        ]
    ),
}


def _check(d: Detection, engine: str | None, scheme: str | None) -> None:
    assert (d.engine, d.scheme) == (engine, scheme)


# -------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    ("name", "engine", "scheme"),
    [
        ("bnb-nf4", "bitsandbytes", "nf4"),
        ("bnb-fp4", "bitsandbytes", "fp4"),
        ("bnb-int8", "bitsandbytes", "int8"),
        ("quanto-qint8", "quanto", "qint8"),
        ("quanto-qint4", "quanto", "qint4"),
        ("quanto-qint2", "quanto", "qint2"),
        ("quanto-qfloat8", "quanto", "qfloat8_e4m3fn"),
        ("quanto-qint4-qmap", "quanto", "qint4"),
        ("torchao-int8wo", "torchao", "int8wo"),
        ("torchao-int8dq", "torchao", "int8dq"),
        ("torchao-float8wo", "torchao", "float8wo"),
    ],
)
def test_engine_and_scheme_are_named_from_a_real_quantized_file(
    files: Callable[[str], Path], name: str, engine: str, scheme: str
) -> None:
    found = detect(files(name))
    _check(found, engine, scheme)
    assert found.format == "safetensors"
    assert found.parameters == LINEAR_PARAMS, "the unpacked parameter count of one Linear"
    assert found.plan == {"engine": engine, "scheme": scheme, "mode": "prequantized"}


@pytest.mark.parametrize("name", ["bnb-nf4", "quanto-qint4", "torchao-int8wo", "gguf-flux-q8"])
def test_the_detected_plan_is_one_check_accepts(files: Callable[[str], Path], name: str) -> None:
    plan = detect(files(name)).to_plan()
    assert plan is not None
    assert plan.mode == "prequantized"


def test_bytes_are_the_tensor_data_in_the_file(files: Callable[[str], Path]) -> None:
    path = files("quanto-qint8")
    found = detect(path)
    header = 8 + int.from_bytes(path.read_bytes()[:8], "little")
    assert found.bytes == path.stat().st_size - header
    assert found.dtypes["I8"] == IN * OUT


@pytest.mark.parametrize("qtype", ["qint4", "qint2"])
def test_quanto_layers_narrower_than_the_group_size_read_as_the_same_scheme(
    tmp_path: Path, qtype: str
) -> None:
    """No quanto_qmap.json: 64, 100 and 300 input features get one scale per row, 160 and
    256 get groups of 32 and 128 (quanto's rule); all are one scheme, counted unpacked."""
    quanto = pytest.importorskip("optimum.quanto")
    widths = (64, 100, 160, 256, 300)
    model = torch.nn.Sequential(*(torch.nn.Linear(w, 48) for w in widths)).to(torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quanto.quantize(model, weights=getattr(quanto, qtype))
        quanto.freeze(model)
    found = detect(_save(tmp_path / "model.safetensors", model.state_dict()))
    _check(found, "quanto", qtype)
    assert not any("mixed" in n for n in found.notes), found.notes
    assert found.parameters == sum(w * 48 + 48 for w in widths)


def test_plain_bf16_weights_are_not_quantized(files: Callable[[str], Path]) -> None:
    found = detect(files("plain-bf16"))
    _check(found, None, None)
    assert found.plan is None and found.to_plan() is None
    assert found.parameters == LINEAR_PARAMS


def test_plain_fp8_weights_are_named_fp8_not_an_engine(files: Callable[[str], Path]) -> None:
    found = detect(files("plain-fp8"))
    _check(found, None, None)
    assert any("fp8 weights (float8_e4m3fn), not an engine" in n for n in found.notes)


def test_gguf_scheme_is_the_quantized_type_holding_most_bytes(
    files: Callable[[str], Path],
) -> None:
    found = detect(files("gguf-flux-q8"))
    assert (found.format, found.engine, found.scheme) == ("gguf", "gguf", "Q8_0")
    assert (found.component, found.architecture) == ("transformer", "flux")
    assert found.parameters == 3 * 64 * 256 + 256 * 256 + 64 + 64 * 256
    assert set(found.dtypes) == {"Q8_0", "F32", "F16"}
    assert found.plan == {
        "engine": "gguf",
        "scheme": "Q8_0",
        "mode": "prequantized",
        "component": "transformer",
    }


def test_gguf_bytes_follow_the_block_sizes(files: Callable[[str], Path]) -> None:
    found = detect(files("gguf-flux-q4"))
    q4_weights = 3 * 64 * 256 + 256 * 256
    assert found.dtypes["Q4_0"] == q4_weights // 32 * 18


def test_gguf_text_encoder_is_named_by_its_architecture(files: Callable[[str], Path]) -> None:
    found = detect(files("gguf-t5"))
    assert (found.component, found.architecture, found.scheme) == (
        "text_encoder",
        "t5encoder",
        "Q8_0",
    )


def test_gguf_without_architecture_is_recognised_from_tensor_names(
    files: Callable[[str], Path],
) -> None:
    found = detect(files("gguf-no-arch"))
    assert (found.component, found.architecture) == ("unet", "sdxl")
    assert found.scheme == "Q4_0" or found.scheme == "Q8_0"
    assert any(n.startswith("tensor types by bytes: ") for n in found.notes)


@pytest.mark.parametrize(
    ("name", "component", "architecture"),
    [
        ("flux-bfl", "transformer", "flux"),
        ("sd3", "transformer", "sd3"),
        ("sd1-unet", "unet", "sd"),
        ("sdxl-unet", "unet", "sdxl"),
        ("vae", "vae", "kl"),
        ("clip", "text_encoder", "clip"),
        ("all-in-one", "all_in_one", "sd"),
        ("prefixed-flux", "transformer", "flux"),
    ],
)
def test_component_is_recognised_from_key_layout(
    files: Callable[[str], Path], name: str, component: str, architecture: str
) -> None:
    found = detect(files(name))
    assert (found.component, found.architecture) == (component, architecture)


def test_a_diffusers_folder_is_read_through_its_config(files: Callable[[str], Path]) -> None:
    found = detect(files("flux-folder"))
    assert found.format == "diffusers"
    assert (found.component, found.architecture) == ("transformer", "flux")
    assert found.engine is None
    model_file = found.path
    assert Path(model_file).is_dir()


def test_a_sharded_index_adds_up_its_shards(files: Callable[[str], Path]) -> None:
    folder = files("flux-sharded")
    index = next(folder.glob("*.safetensors.index.json"))
    shards = detect(index)
    whole = detect(files("flux-folder"))
    assert shards.format == "safetensors-sharded"
    assert any(n.endswith("shards") and not n.startswith("1 ") for n in shards.notes)
    assert (shards.parameters, shards.tensors) == (whole.parameters, whole.tensors)
    assert shards.component == "transformer"


def test_a_transformers_text_encoder_folder_is_a_t5_text_encoder(
    files: Callable[[str], Path],
) -> None:
    found = detect(files("t5-folder"))
    assert (found.component, found.architecture) == ("text_encoder", "t5")


def test_a_quantized_diffusers_folder_takes_the_engine_from_its_config(
    files: Callable[[str], Path],
) -> None:
    found = detect(files("quanto-flux-folder"))
    _check(found, "quanto", "qint8")
    assert found.component == "transformer"


def test_a_pipeline_folder_names_the_quantized_component(files: Callable[[str], Path]) -> None:
    found = detect(files("pipeline"))
    _check(found, "quanto", "qint8")
    assert found.component == "transformer"
    assert found.architecture == "FluxPipeline"
    assert {Path(p.path).name for p in found.parts} == {"transformer", "text_encoder"}
    assert found.parameters == sum(p.parameters for p in found.parts)


def test_detect_never_writes(files: Callable[[str], Path]) -> None:
    path = files("bnb-nf4")
    before = (path.stat().st_mtime_ns, path.read_bytes())
    detect(path)
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


def test_cli_detect_json_gives_the_plan(
    files: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from quantdoctor.cli import main

    assert main(["detect", str(files("gguf-flux-q8")), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["plan"]["scheme"] == "Q8_0"
    assert out["format"] == "gguf"


def test_cli_detect_human_output_says_how_to_check_it(
    files: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from quantdoctor.cli import main

    assert main(["detect", str(files("quanto-qint8"))]) == 0
    out = capsys.readouterr().out
    assert "quanto qint8" in out
    assert "quantdoctor check --engine quanto --scheme qint8 --mode prequantized" in out
