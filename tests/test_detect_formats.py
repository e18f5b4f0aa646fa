"""detect agrees with the real readers, knows real key layouts, and offers plans check takes.

GGUF files carry every ggml type gguf-py knows, written by ``gguf.GGUFWriter`` (raw
blocks where gguf-py cannot quantize) and read back by ``gguf.GGUFReader``; key layouts
come from tiny models built by diffusers and transformers and saved with their own
``save_pretrained``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quantdoctor.cli import main
from quantdoctor.files import _gguf_header
from quantdoctor.files.detect import Detection, checked, detect
from quantdoctor.rules.models import Plan

gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")


# ---------------------------------------------------------------------- GGUF types


@pytest.fixture(scope="module")
def every_type(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tensor of each ggml type, as raw blocks, in one GGUF written by gguf-py."""
    path = tmp_path_factory.mktemp("gguf") / "every-type.gguf"
    writer = gguf.GGUFWriter(str(path), arch="flux")
    writer.add_uint32("test.count", 7)
    writer.add_array("test.scores", [0.5] * 300)  # long arrays are skipped, not kept
    writer.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(100)])
    rng = np.random.default_rng(0)
    for qtype in gguf.GGMLQuantizationType:
        if qtype not in gguf.GGML_QUANT_SIZES:
            continue
        _, nbytes = gguf.GGML_QUANT_SIZES[qtype]
        rows, blocks = 3, 2
        raw = rng.integers(0, 255, size=(rows, blocks * nbytes), dtype=np.uint8)
        writer.add_tensor(f"blk.{qtype.name}.weight", raw, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_every_ggml_type_is_read_as_gguf_py_reads_it(every_type: Path) -> None:
    header = _gguf_header.read_header(every_type)
    reader = gguf.GGUFReader(str(every_type))
    theirs = {
        t.name: (
            t.tensor_type.name,
            tuple(int(d) for d in t.shape),
            int(t.data_offset),
            int(t.n_bytes),
        )
        for t in reader.tensors
    }
    ours = {
        t.name: (t.type_name, t.shape, header.data_start + t.offset, t.nbytes)
        for t in header.tensors
    }
    assert ours == theirs
    assert header.metadata["test.count"] == 7
    assert header.metadata["test.scores"] == {"array_type": 6, "length": 300}
    assert header.metadata["tokenizer.ggml.tokens"] == {"array_type": 8, "length": 100}


def test_every_ggml_type_is_named_in_the_detection(every_type: Path) -> None:
    found = detect(every_type)
    assert set(found.dtypes) == {t.name for t in gguf.GGML_QUANT_SIZES}
    assert found.tensors == len(gguf.GGML_QUANT_SIZES)
    assert found.bytes == sum(6 * n for _, n in gguf.GGML_QUANT_SIZES.values())


# --------------------------------------------------------- real key layouts


def _save(model: Any, d: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(d)
    return d


def _sd3(d: Path) -> Path:
    diffusers = pytest.importorskip("diffusers")
    return _save(
        diffusers.SD3Transformer2DModel(
            sample_size=8,
            patch_size=2,
            in_channels=4,
            num_layers=1,
            attention_head_dim=8,
            num_attention_heads=2,
            joint_attention_dim=16,
            caption_projection_dim=16,
            pooled_projection_dim=16,
            out_channels=4,
            pos_embed_max_size=16,
        ),
        d,
    )


def _unet(sdxl: bool) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        diffusers = pytest.importorskip("diffusers")
        extra: dict[str, Any] = {"cross_attention_dim": 768}
        if sdxl:
            extra = {
                "cross_attention_dim": 32,
                "addition_embed_type": "text_time",
                "addition_time_embed_dim": 8,
                "projection_class_embeddings_input_dim": 32 + 6 * 8,
            }
        model = diffusers.UNet2DConditionModel(
            sample_size=8,
            block_out_channels=(32, 32),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            norm_num_groups=8,
            attention_head_dim=4,
            **extra,
        )
        return _save(model, d)

    return build


def _vae(d: Path) -> Path:
    diffusers = pytest.importorskip("diffusers")
    return _save(
        diffusers.AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4), d
    )


def _clip(d: Path) -> Path:
    transformers = pytest.importorskip("transformers")
    config = transformers.CLIPTextConfig(
        vocab_size=100,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=16,
    )
    return _save(transformers.CLIPTextModel(config), d)


LAYOUTS: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "sd3": (_sd3, "transformer", "sd3"),
    "sd1-unet": (_unet(sdxl=False), "unet", "sd1"),
    "sdxl-unet": (_unet(sdxl=True), "unet", "sdxl"),
    "vae": (_vae, "vae", "kl"),
    "clip": (_clip, "text_encoder", "clip"),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_a_real_model_folder_is_recognised_by_its_layout(tmp_path: Path, name: str) -> None:
    build, component, architecture = LAYOUTS[name]
    folder = build(tmp_path / name)
    found = detect(folder)
    assert found.format == "diffusers"
    assert found.component == component
    weights = next(folder.glob("*.safetensors"))
    alone = detect(weights)  # the weights file alone: only its key names to go on
    assert (alone.component, alone.architecture) == (component, architecture)
    assert alone.parameters == found.parameters > 0


# ------------------------------------------------------------ plans check takes


def _gguf_with(path: Path, type_name: str) -> Path:
    qtype = gguf.GGMLQuantizationType[type_name]
    _, nbytes = gguf.GGML_QUANT_SIZES[qtype]
    writer = gguf.GGUFWriter(str(path), arch="flux")
    raw = np.zeros((4, 2 * nbytes), dtype=np.uint8)
    writer.add_tensor("double_blocks.0.img_attn.qkv.weight", raw, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_detected_plan_is_one_check_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _gguf_with(tmp_path / "flux-q4k.gguf", "Q4_K")
    assert main(["detect", str(path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan == {
        "engine": "gguf",
        "scheme": "Q4_K",
        "mode": "prequantized",
        "component": "transformer",
    }
    args = [f"--{k}={v}" for k, v in plan.items()]
    env = tmp_path / "env.json"
    env.write_text(json.dumps({"os": "linux", "backend": "cpu"}))
    code = main(["check", *args, "--env", str(env), "--json"])
    verdict = json.loads(capsys.readouterr().out)
    assert code in (0, 1, 3), "check took the plan (2 would be bad input)"
    assert verdict["plan"]["scheme"] == "Q4_K" and verdict["plan"]["mode"] == "prequantized"


@pytest.mark.parametrize("type_name", ["IQ2_XXS", "TQ1_0"])
def test_a_type_the_matrix_does_not_know_offers_no_plan_but_says_why(
    tmp_path: Path, type_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _gguf_with(tmp_path / "odd.gguf", type_name)
    assert detect(path).scheme == type_name, "detect still names what the file holds"
    assert main(["detect", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scheme"] == type_name and out["plan"] is None
    assert any(f"gguf {type_name} is not a plan" in n for n in out["notes"])
    assert main(["detect", str(path)]) == 0
    assert "check it:" not in capsys.readouterr().out


def test_checked_keeps_a_plan_the_matrix_knows() -> None:
    found = Detection(path="x.gguf", format="gguf", engine="gguf", scheme="Q8_0", component="unet")
    assert checked(found).plan == found.plan
    assert checked(found).to_plan() == Plan(
        engine="gguf", scheme="Q8_0", mode="prequantized", component="unet"
    )
