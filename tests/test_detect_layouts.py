"""detect names each popular model family in each layout it ships in.

diffusers layouts: the key names and shapes of the real model classes with the released
configurations (``tests/data/layouts``, written by ``generate.py`` there from diffusers
0.42.1 and transformers 5.24 on the meta device), turned into safetensors headers over
sparse files: the files have the released size, and no tensor data is ever written or
read. Original layouts: the keys the original checkpoints carry, as ComfyUI's and
diffusers' own recognisers read them; where diffusers names the family from the same
keys (``infer_diffusers_model_type``), detect must agree.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from quantdoctor.files._layouts import LAYOUTS
from quantdoctor.files.detect import detect

LAYOUT_DATA = Path(__file__).parent / "data" / "layouts"
BYTES = {"BF16": 2, "F32": 4, "F8_E4M3": 1, "U8": 1, "I8": 1, "F8_E8M0": 1}


def sparse_safetensors(
    path: Path,
    tensors: dict[str, tuple[str, list[int]]],
    metadata: dict[str, str] | None = None,
) -> Path:
    """A safetensors file with this header and a sparse (never written) data region."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = BYTES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return path


def released(name: str) -> dict[str, Any]:
    with gzip.open(LAYOUT_DATA / f"{name}.json.gz", "rt", encoding="utf-8") as f:
        record: dict[str, Any] = json.load(f)
    return record


def released_file(tmp_path: Path, name: str) -> Path:
    tensors = {k: ("BF16", v) for k, v in released(name)["tensors"].items()}
    return sparse_safetensors(tmp_path / f"{name}.safetensors", tensors)


# name -> (component, architecture, variant) detect must give for the diffusers layout
DIFFUSERS_LAYOUTS: dict[str, tuple[str, str, str | None]] = {
    "flux1-dev": ("transformer", "flux", "dev"),
    "flux1-schnell": ("transformer", "flux", None),
    "flux2-dev": ("transformer", "flux2", "dev"),
    "flux2-klein-4b": ("transformer", "flux2", "klein-4B"),
    "chroma": ("transformer", "chroma", None),
    "sd3-medium": ("transformer", "sd3", None),
    "sd35-large": ("transformer", "sd3", "3.5-large"),
    "wan21-t2v-1.3b": ("transformer", "wan", "1.3B"),
    "wan21-i2v-14b": ("transformer", "wan", "14B"),
    "wan22-t2v-a14b": ("transformer", "wan", "14B"),
    "wan22-ti2v-5b": ("transformer", "wan", "2.2-5B"),
    "hunyuanvideo": ("transformer", "hunyuanvideo", None),
    "hunyuanvideo15": ("transformer", "hunyuanvideo15", None),
    "ltxv": ("transformer", "ltxv", None),
    "ltx2": ("transformer", "ltx2", None),
    "lumina2": ("transformer", "lumina2", None),
    "z-image": ("transformer", "z-image", None),
    "hidream-i1": ("transformer", "hidream", None),
    "qwen-image": ("transformer", "qwen-image", None),
    "cosmos-predict2-2b": ("transformer", "cosmos-predict2", "2B"),
    "auraflow": ("transformer", "auraflow", None),
    "sana-1600m": ("transformer", "sana", None),
    "mochi1": ("transformer", "mochi", None),
    "sd15-unet": ("unet", "sd1", None),
    "sd21-unet": ("unet", "sd2", None),
    "sdxl-unet": ("unet", "sdxl", None),
    "vae-sd": ("vae", "kl", "4ch (SD 1/2/XL)"),
    "vae-flux1": ("vae", "kl", "16ch (Flux.1 / SD3)"),
    "vae-flux2": ("vae", "flux2", None),
    "vae-wan21": ("vae", "wan", None),
    "vae-wan22": ("vae", "wan22", None),
    "vae-qwen-image": ("vae", "wan", None),
    "vae-hunyuanvideo": ("vae", "hunyuanvideo", None),
    "vae-ltxv": ("vae", "ltxv", None),
    "vae-mochi": ("vae", "mochi", None),
    "vae-dc-ae": ("vae", "dc-ae", None),
    "t5-xxl": ("text_encoder", "t5", None),
    "umt5-xxl": ("text_encoder", "umt5", None),
    "clip-l": ("text_encoder", "clip", "L"),
    "clip-g": ("text_encoder", "clip", "bigG"),
    "gemma2-2b": ("text_encoder", "gemma2", None),
    "qwen3-4b": ("text_encoder", "qwen3", None),
    "llama3-8b": ("text_encoder", "llama", None),
    "qwen25-vl-7b": ("text_encoder", "qwen2.5-vl", "qwen2"),
    "mistral3-24b": ("text_encoder", "mistral3", "llama"),
    "gemma3-12b": ("text_encoder", "gemma3", "gemma3"),
}


def test_every_generated_layout_has_an_expectation() -> None:
    assert {p.name.removesuffix(".json.gz") for p in LAYOUT_DATA.glob("*.json.gz")} == set(
        DIFFUSERS_LAYOUTS
    )


@pytest.mark.parametrize("name", sorted(DIFFUSERS_LAYOUTS))
def test_a_released_model_in_its_library_layout_is_named(tmp_path: Path, name: str) -> None:
    path = released_file(tmp_path, name)
    found = detect(path)
    assert (found.component, found.architecture, found.variant) == DIFFUSERS_LAYOUTS[name]
    assert found.recognised_by, "every recognition names where its markers come from"
    assert found.parameters == sum(_numel(s) for s in released(name)["tensors"].values()), (
        "every tensor is a parameter of an unquantized file"
    )


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _bytes_read() -> int:
    """Bytes this process has read through read() calls (Linux's /proc/self/io)."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux's /proc/self/io")
def test_detect_is_flat_in_file_size(tmp_path: Path) -> None:
    """A 33 GB (sparse) Wan 14B is recognised from its header alone: detect reads no more
    of it than of the same header over a few KB of data (counted in bytes, not timed)."""
    big = released_file(tmp_path, "wan21-i2v-14b")
    assert big.stat().st_size > 25e9
    tiny = sparse_safetensors(
        tmp_path / "tiny.safetensors",
        {k: ("BF16", [1] * len(v)) for k, v in released("wan21-i2v-14b")["tensors"].items()},
    )
    assert tiny.stat().st_size < 1e6

    def read_by(path: Path) -> int:
        before = _bytes_read()
        found = detect(path)
        assert found.architecture, found
        return _bytes_read() - before

    detect(big), detect(tiny)  # warm: modules, caches
    with open(big, "rb") as f:
        header = int.from_bytes(f.read(8), "little")
    big_read, tiny_read = read_by(big), read_by(tiny)
    assert big_read <= header + 64 * 1024, f"read {big_read} bytes of a {header}-byte header"
    assert big_read <= tiny_read + 64 * 1024, (big_read, tiny_read)


# --------------------------------------------------------------- original layouts


def _keys(*names: str, shape: list[int] | None = None) -> dict[str, tuple[str, list[int]]]:
    return {n: ("BF16", shape or [8, 8]) for n in names}


_FLUX_BLOCK = (
    "double_blocks.0.img_attn.norm.key_norm.scale",
    "double_blocks.0.img_attn.qkv.weight",
    "double_blocks.0.img_attn.proj.weight",
    "single_blocks.0.linear1.weight",
    "final_layer.linear.weight",
)
#: name -> (keys of the original checkpoint (shape [8, 8] unless given), expected
#: (component, architecture, variant), the model type diffusers' own single-file
#: recogniser must name from the same keys, or None where it names none of them)
ORIGINAL: dict[
    str, tuple[dict[str, tuple[str, list[int]]], tuple[str, str, str | None], str | None]
] = {
    "flux-dev": (
        {
            **_keys(*_FLUX_BLOCK, "guidance_in.in_layer.weight", "guidance_in.in_layer.bias"),
            "img_in.weight": ("BF16", [3072, 64]),
        },
        ("transformer", "flux", "dev"),
        "flux-dev",
    ),
    "flux-schnell": (
        {**_keys(*_FLUX_BLOCK), "img_in.weight": ("BF16", [3072, 64])},
        ("transformer", "flux", None),
        "flux-schnell",
    ),
    "flux2-dev": (
        {
            **_keys(
                *_FLUX_BLOCK,
                "double_stream_modulation_img.lin.weight",
                "single_stream_modulation.lin.weight",
            ),
            "img_in.weight": ("BF16", [6144, 128]),
        },
        ("transformer", "flux2", "dev"),
        "flux-2-dev",
    ),
    "flux2-klein-4b": (
        {
            **_keys(
                *_FLUX_BLOCK,
                "double_stream_modulation_img.lin.weight",
                "single_stream_modulation.lin.weight",
            ),
            "img_in.weight": ("BF16", [3072, 128]),
        },
        ("transformer", "flux2", "klein-4B"),
        "flux-2-dev",
    ),
    "chroma": (
        _keys(
            *_FLUX_BLOCK,
            "img_in.weight",
            "distilled_guidance_layer.in_proj.bias",
            "distilled_guidance_layer.norms.0.scale",
        ),
        ("transformer", "chroma", None),
        "chroma",
    ),
    "sd35-large": (
        _keys(
            "joint_blocks.0.context_block.adaLN_modulation.1.bias",
            "joint_blocks.0.x_block.attn.qkv.weight",
            "joint_blocks.37.x_block.mlp.fc1.weight",
            "pos_embed",
        ),
        ("transformer", "sd3", "3.5-large"),
        "sd35_large",
    ),
    "hunyuanvideo": (
        _keys(
            "txt_in.individual_token_refiner.blocks.0.norm1.weight",
            "txt_in.individual_token_refiner.blocks.0.adaLN_modulation.1.bias",
            "double_blocks.0.img_attn_qkv.weight",
            "double_blocks.0.img_attn_proj.weight",
            "img_in.proj.weight",
        ),
        ("transformer", "hunyuanvideo", None),
        "hunyuan-video",
    ),
    "hunyuanvideo15": (
        _keys(
            "txt_in.individual_token_refiner.blocks.0.norm1.weight",
            "double_blocks.0.img_attn_qkv.weight",
            "cond_type_embedding.weight",
            "vision_in.proj.0.weight",
        ),
        ("transformer", "hunyuanvideo15", None),
        None,
    ),
    "wan22-5b": (
        {
            **_keys("blocks.0.self_attn.norm_q.weight", "text_embedding.2.weight"),
            "head.modulation": ("BF16", [1, 2, 3072]),
            "patch_embedding.weight": ("BF16", [3072, 48, 1, 2, 2]),
        },
        ("transformer", "wan", "2.2-5B"),
        None,  # diffusers' wan branch knows 1.3B and 14B shapes only (a KeyError-free miss)
    ),
    "wan-14b": (
        {
            **_keys("blocks.0.self_attn.norm_q.weight", "text_embedding.2.weight"),
            "head.modulation": ("BF16", [1, 2, 5120]),
            "patch_embedding.weight": ("BF16", [5120, 16, 1, 2, 2]),
        },
        ("transformer", "wan", "14B"),
        "wan-t2v-14B",
    ),
    "ltxv": (
        _keys(
            "adaln_single.emb.timestep_embedder.linear_1.bias",
            "patchify_proj.weight",
            "transformer_blocks.27.scale_shift_table",
        ),
        ("transformer", "ltxv", None),
        "ltx-video",
    ),
    "ltx2": (
        _keys(
            "adaln_single.emb.timestep_embedder.linear_1.bias",
            "audio_adaln_single.linear.weight",
            "av_ca_a2v_gate_adaln_single.emb.timestep_embedder.linear_1.weight",
            "patchify_proj.weight",
        ),
        ("transformer", "ltx2", None),
        "ltx-video",  # diffusers' ltx-video branch comes first and takes the shared patchify_proj
    ),
    "lumina2": (
        _keys(
            "cap_embedder.0.weight",
            "cap_embedder.1.weight",
            "noise_refiner.0.attention.k_norm.weight",
            "layers.0.adaLN_modulation.1.weight",
            "layers.0.attention.qkv.weight",
        ),
        ("transformer", "lumina2", None),
        "lumina2",
    ),
    "z-image": (
        _keys(
            "cap_embedder.0.weight",
            "cap_embedder.1.weight",
            "noise_refiner.0.attention.k_norm.weight",
            "layers.0.adaLN_modulation.0.weight",
            "layers.0.attention.qkv.weight",
            "x_embedder.weight",
        ),
        ("transformer", "z-image", None),
        "z-image-turbo",
    ),
    "hidream": (
        _keys(
            "double_stream_blocks.0.block.adaLN_modulation.1.bias",
            "double_stream_blocks.0.block.ff_i.shared_experts.w3.weight",
            "caption_projection.0.linear.weight",
        ),
        ("transformer", "hidream", None),
        "hidream",
    ),
    "cosmos-predict2": (
        {
            **_keys(
                "net.blocks.0.mlp.layer1.weight",
                "net.blocks.0.adaln_modulation_cross_attn.1.weight",
                "net.blocks.0.self_attn.q_proj.weight",
                "net.pos_embedder.dim_spatial_range",
            ),
            "net.x_embedder.proj.1.weight": ("BF16", [2048, 68]),
        },
        ("transformer", "cosmos-predict2", "2B"),
        "cosmos-2.0-t2i-2B",
    ),
    "auraflow": (
        _keys(
            "model.double_layers.0.attn.w1q.weight",
            "model.double_layers.0.attn.w2q.weight",
            "model.cond_seq_linear.weight",
            "model.t_embedder.mlp.0.weight",
        ),
        ("transformer", "auraflow", None),
        None,  # diffusers' markers have no "model." prefix; ComfyUI's default prefix
    ),
    "sana": (
        _keys(
            "blocks.0.cross_attn.q_linear.weight",
            "blocks.0.cross_attn.kv_linear.weight",
            "blocks.0.cross_attn.q_linear.bias",
            "x_embedder.proj.weight",
        ),
        ("transformer", "sana", None),
        "sana",
    ),
    "mochi": (
        _keys("blocks.0.attn.qkv_x.weight", "t5_yproj.weight", "x_embedder.proj.weight"),
        ("transformer", "mochi", None),
        "mochi-1-preview",
    ),
    "qwen-image-comfy": (
        _keys(
            "model.diffusion_model.txt_norm.weight",
            "model.diffusion_model.img_in.weight",
            "model.diffusion_model.txt_in.weight",
            "model.diffusion_model.transformer_blocks.0.attn.add_q_proj.weight",
        ),
        ("transformer", "qwen-image", None),
        None,
    ),
    "wan-vae": (
        _keys(
            "encoder.conv1.weight",
            "encoder.downsamples.0.residual.0.gamma",
            "decoder.middle.0.residual.0.gamma",
            "decoder.conv1.weight",
            "conv1.weight",
            "conv2.weight",
        ),
        ("vae", "wan", None),
        "wan-t2v-14B",  # diffusers fetches Wan's VAE config from the 14B repository
    ),
    "sdxl-ldm": (
        _keys(
            "model.diffusion_model.input_blocks.0.0.weight",
            "model.diffusion_model.label_emb.0.0.weight",
            "model.diffusion_model.output_blocks.11.0.skip_connection.weight",
            "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias",
            "first_stage_model.encoder.conv_in.weight",
        ),
        ("all_in_one", "sdxl", None),
        "xl_base",
    ),
    "sd2-ldm": (
        {
            **_keys(
                "model.diffusion_model.input_blocks.0.0.weight",
                "model.diffusion_model.output_blocks.11.0.skip_connection.weight",
                "cond_stage_model.model.token_embedding.weight",
            ),
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (
                "BF16",
                [320, 1024],
            ),
            "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": (
                "BF16",
                [320, 1024],
            ),
        },
        ("all_in_one", "sd2", None),
        "v2",
    ),
}


@pytest.mark.parametrize("name", sorted(ORIGINAL))
def test_a_model_in_its_original_layout_is_named(tmp_path: Path, name: str) -> None:
    tensors, expected, _ = ORIGINAL[name]
    found = detect(sparse_safetensors(tmp_path / "model.safetensors", tensors))
    assert (found.component, found.architecture, found.variant) == expected
    assert found.recognised_by


@pytest.mark.parametrize("name", sorted(ORIGINAL))
def test_diffusers_own_recogniser_agrees_on_the_original_layout(name: str) -> None:
    torch = pytest.importorskip("torch")
    single_file = pytest.importorskip("diffusers.loaders.single_file_utils")
    tensors, _, theirs = ORIGINAL[name]
    checkpoint = {k: torch.empty(shape, device="meta") for k, (_, shape) in tensors.items()}
    try:
        model_type = single_file.infer_diffusers_model_type(checkpoint)
    except (KeyError, IndexError):  # a branch that needs a key these keys do not carry
        model_type = None
    if theirs is None:
        # diffusers names none of these (its fallback is "v1"): detect's answer is its own
        assert model_type in (None, "v1") or model_type != ORIGINAL[name][1][1]
    else:
        assert model_type == theirs


def test_layout_rows_each_need_more_than_one_marker_or_are_diffusers_single_keys() -> None:
    """Disambiguation: a lone key decides only where diffusers' own table relies on it."""
    for row in LAYOUTS:
        assert len(row.markers) >= 2 or "CHECKPOINT_KEY_NAMES" in row.origin, row
        assert row.origin


# -------------------------------------------------------------------------- GGUF


def _gguf(
    path: Path, arch: str | None, tensors: dict[str, str], file_type: int | None = None
) -> Path:
    """A GGUF as gguf-py writes it: ``tensors`` name -> ggml type, two blocks per row."""
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    writer = gguf.GGUFWriter(str(path), arch=arch or "")
    if arch is None:
        writer.kv_data[0].pop("general.architecture", None)
    if file_type is not None:
        writer.add_file_type(file_type)
    for name, type_name in tensors.items():
        qtype = gguf.GGMLQuantizationType[type_name]
        _, nbytes = gguf.GGML_QUANT_SIZES[qtype]
        rows = 64 if name.startswith("token_embd") else 4
        raw = np.zeros((rows, 2 * nbytes), dtype=np.uint8)
        writer.add_tensor(name, raw, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


_CHROMA = (*_FLUX_BLOCK, "img_in.weight", "distilled_guidance_layer.in_proj.bias")
_FLUX2 = (*_FLUX_BLOCK, "img_in.weight", "double_stream_modulation_img.lin.weight")
_WAN = ("head.modulation", "blocks.0.self_attn.norm_q.weight", "patch_embedding.weight")


@pytest.mark.parametrize(
    ("names", "family"), [(_CHROMA, "chroma"), (_FLUX2, "flux2"), (_FLUX_BLOCK, None)]
)
def test_a_gguf_labelled_flux_by_the_converter_is_named_by_its_tensors(
    tmp_path: Path, names: tuple[str, ...], family: str | None
) -> None:
    """ComfyUI-GGUF's convert.py labels every double_blocks model 'flux'."""
    if family is None:
        names, family = (*names, "img_in.weight"), "flux"
    found = detect(_gguf(tmp_path / "m.gguf", "flux", dict.fromkeys(names, "Q8_0")))
    assert (found.component, found.architecture) == ("transformer", family)
    broader = [n for n in found.notes if "broader label" in n]
    assert bool(broader) == (family != "flux"), found.notes
    assert not any("label is wrong" in n for n in found.notes)


def test_a_gguf_label_the_tensor_names_contradict_is_reported(tmp_path: Path) -> None:
    found = detect(_gguf(tmp_path / "m.gguf", "flux", dict.fromkeys(_WAN, "Q8_0")))
    assert found.architecture == "wan"
    assert any("says 'flux' but the tensor names are wan's" in n for n in found.notes)


def test_a_gguf_text_encoder_label_is_checked_against_llama_cpp_names(tmp_path: Path) -> None:
    qwen3 = {
        "blk.0.attn_q.weight": "Q8_0",
        "blk.0.attn_q_norm.weight": "F32",
        "blk.0.ffn_gate.weight": "Q8_0",
        "token_embd.weight": "Q8_0",
    }
    right = detect(_gguf(tmp_path / "q.gguf", "qwen3", qwen3))
    assert (right.component, right.architecture) == ("text_encoder", "qwen3")
    assert not any("label" in n for n in right.notes)
    wrong = detect(_gguf(tmp_path / "l.gguf", "llama", qwen3))
    assert wrong.architecture == "qwen3"
    assert any("says 'llama'" in n for n in wrong.notes)


def test_the_gguf_scheme_is_its_file_type_not_its_largest_tensor(tmp_path: Path) -> None:
    """A Q4_K_M file keeps its token embedding in Q8_0: the largest tensor is no guide."""
    tensors = {
        "token_embd.weight": "Q8_0",
        "blk.0.attn_q.weight": "Q4_K",
        "blk.0.ffn_gate.weight": "Q4_K",
        "blk.0.ffn_down.weight": "Q6_K",
    }
    found = detect(_gguf(tmp_path / "m.gguf", "llama", tensors, file_type=15))
    assert max(found.dtypes, key=found.dtypes.__getitem__) == "Q8_0"
    assert found.scheme == "Q4_K"
    assert "general.file_type MOSTLY_Q4_K_M" in found.notes
    mix = next(n for n in found.notes if n.startswith("tensor types by bytes: "))
    assert all(t in mix for t in ("Q8_0", "Q4_K", "Q6_K"))


def test_a_gguf_without_file_type_falls_back_to_the_type_holding_most_bytes(tmp_path: Path) -> None:
    found = detect(_gguf(tmp_path / "m.gguf", "flux", dict.fromkeys(_FLUX_BLOCK, "Q5_K")))
    assert found.scheme == "Q5_K"


def test_llama_file_types_match_gguf_py() -> None:
    gguf = pytest.importorskip("gguf")
    from quantdoctor.files._gguf_header import LLAMA_FILE_TYPES

    assert {v: name for v, (name, _) in LLAMA_FILE_TYPES.items()} == {
        t.value: t.name for t in gguf.LlamaFileType
    }
    ggml = {t.name for t in gguf.GGMLQuantizationType}
    assert all(t is None or t in ggml for _, t in LLAMA_FILE_TYPES.values())


#: family -> the general.architecture ComfyUI-GGUF's convert.py writes for it (its
#: ``keys_detect`` order: every double_blocks model is "flux", Z-Image is "lumina2").
GGUF_LABEL = {
    "flux": "flux",
    "flux2": "flux",
    "chroma": "flux",
    "sd3": "sd3",
    "hunyuanvideo": "hyvid",
    "hunyuanvideo15": "hyvid",
    "wan": "wan",
    "ltxv": "ltxv",
    "ltx2": "ltxv",
    "lumina2": "lumina2",
    "z-image": "lumina2",
    "hidream": "hidream",
    "cosmos-predict2": "cosmos",
    "auraflow": "aura",
    "qwen-image": "qwen_image",
    "sdxl": "sdxl",
    "sd2": "sd1",
}


@pytest.mark.parametrize("name", sorted(n for n in ORIGINAL if ORIGINAL[n][1][1] in GGUF_LABEL))
def test_a_model_converted_to_gguf_is_named_like_its_original(tmp_path: Path, name: str) -> None:
    """GGUF image models keep the original tensor names (ComfyUI-GGUF refuses diffusers
    layouts); the label the converter writes is checked against them."""
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    tensors, (component, family, variant), _ = ORIGINAL[name]
    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), arch=GGUF_LABEL[family])
    if component == "all_in_one":  # the converter takes the diffusion model alone
        tensors = {k: v for k, v in tensors.items() if k.startswith("model.diffusion_model.")}
        component = "unet"
    for key, (_, shape) in tensors.items():
        writer.add_tensor(key, np.zeros(shape, dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    found = detect(path)
    assert (found.component, found.architecture, found.variant) == (component, family, variant)
    assert not any("label is wrong" in n for n in found.notes), found.notes


# ------------------------------------------------------------- folders and shards


def _folder(tmp_path: Path, name: str, class_name: str, shards: int = 1) -> Path:
    """A diffusers component folder: config.json and (sharded) sparse weights."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": class_name}))
    items = list(released(name)["tensors"].items())
    if shards == 1:
        sparse_safetensors(
            folder / "diffusion_pytorch_model.safetensors", {k: ("BF16", v) for k, v in items}
        )
        return folder
    weight_map = {}
    step = -(-len(items) // shards)
    for i in range(shards):
        file = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = dict(items[i * step : (i + 1) * step])
        sparse_safetensors(folder / file, {k: ("BF16", v) for k, v in part.items()})
        weight_map.update(dict.fromkeys(part, file))
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def test_a_sharded_released_model_is_named_from_all_its_shards(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "wan21-i2v-14b", "WanTransformer3DModel", shards=6)
    found = detect(folder)
    assert (found.format, found.component, found.architecture, found.variant) == (
        "diffusers",
        "transformer",
        "wan",
        "14B",
    )
    assert found.parameters == sum(_numel(s) for s in released("wan21-i2v-14b")["tensors"].values())
    assert "6 shards" in found.notes


def test_a_folder_whose_config_class_contradicts_its_weights_says_so(tmp_path: Path) -> None:
    found = detect(_folder(tmp_path, "hunyuanvideo", "FluxTransformer2DModel"))
    assert found.architecture == "hunyuanvideo"
    assert any(
        "config.json names FluxTransformer2DModel (flux) but the weights' layout is "
        "hunyuanvideo's" in n
        for n in found.notes
    )


def test_a_folder_whose_config_class_agrees_is_quiet(tmp_path: Path) -> None:
    found = detect(_folder(tmp_path, "qwen-image", "QwenImageTransformer2DModel"))
    assert found.architecture == "qwen-image"
    assert not any("config.json names" in n for n in found.notes)
