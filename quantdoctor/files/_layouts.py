"""Which model a checkpoint holds, from its tensor names (and a few shapes) alone.

One table, ``LAYOUTS``, says how each family shows in each layout people download: the
original release (BFL, Stability, Wan, Tencent, Lightricks... as ComfyUI loads it and as
ComfyUI-GGUF converts it), diffusers' ``save_pretrained``, transformers' (text encoders)
and llama.cpp's GGUF names. Every row needs all of its marker keys (and none of its
excluded ones), so no single key decides: many models share ``add_q_proj`` and
``single_transformer_blocks``. Each row cites where its markers come from:

- diffusers: ``diffusers/loaders/single_file_utils.py`` (0.42.1) ``CHECKPOINT_KEY_NAMES``
  and ``infer_diffusers_model_type``; diffusers-layout keys from the model classes
  themselves (``tests/data/layouts``, built from the released configurations);
- ComfyUI: ``comfy/model_detection.py`` (Comfy-Org/ComfyUI@0b61ce5b) ``detect_unet_config``
  and ``convert_diffusers_mmdit``;
- ComfyUI-GGUF: ``tools/convert.py`` (city96/ComfyUI-GGUF@795e4515) ``keys_detect``.

Names are normalised first (quantization suffixes removed, the all-in-one and ComfyUI
prefixes stripped) so a quantized file and its original read alike. Rows are tried in
order; a family whose markers are a superset of another's comes first.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a command ~6 ms of imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import NamedTuple
else:
    from quantdoctor._namedtuple import NamedTuple

DIFFUSION_PREFIX = "model.diffusion_model."
#: Prefixes of the non-diffusion parts of an all-in-one (single-file) checkpoint.
OTHER_PREFIXES: tuple[str, ...] = (
    "first_stage_model.",
    "vae.",
    "cond_stage_model.",
    "conditioner.embedders.",
    "text_encoders.",
)
#: Prefixes a diffusion model alone is saved under (ComfyUI, Cosmos ``net.``, AuraFlow).
_MODEL_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "net.", "model.")

_DIFFUSERS = "diffusers single_file_utils.py CHECKPOINT_KEY_NAMES"
_COMFY = "ComfyUI model_detection.py detect_unet_config"
_GGUF = "ComfyUI-GGUF tools/convert.py keys_detect"
_CLASS = "diffusers model class (tests/data/layouts)"
_TRANSFORMERS = "transformers model class (tests/data/layouts)"


class Layout(NamedTuple):
    """One family in one layout: all ``markers`` present and no ``unless`` key."""

    family: str
    component: str
    layout: str
    markers: tuple[str, ...]
    origin: str
    unless: tuple[str, ...] = ()


_T, _U, _V, _TE = "transformer", "unet", "vae", "text_encoder"
_O, _D = "original", "diffusers"
_FLUX_QK = "double_blocks.0.img_attn.norm.key_norm.scale"

LAYOUTS: tuple[Layout, ...] = (
    # ---------------------------------------------------- BFL family, original layout
    Layout(
        "chroma",
        _T,
        _O,
        (_FLUX_QK, "distilled_guidance_layer.in_proj.bias"),
        f"{_DIFFUSERS}['chroma']; {_COMFY} (distilled_guidance_layer)",
    ),
    Layout(
        "flux2",
        _T,
        _O,
        (_FLUX_QK, "double_stream_modulation_img.lin.weight"),
        f"{_COMFY} (double_stream_modulation_img); {_DIFFUSERS}['flux2']",
    ),
    Layout(
        "flux2", _T, _O, (_FLUX_QK, "single_stream_modulation.lin.weight"), f"{_DIFFUSERS}['flux2']"
    ),
    Layout(
        "flux",
        _T,
        _O,
        (_FLUX_QK, "img_in.weight", "double_blocks.0.img_attn.qkv.weight"),
        f"{_DIFFUSERS}['flux']; {_COMFY} (img_in); {_GGUF} ModelFlux",
    ),
    # ------------------------------------------------------ original layouts, others
    Layout(
        "hunyuanvideo15",
        _T,
        _O,
        ("txt_in.individual_token_refiner.blocks.0.norm1.weight", "cond_type_embedding.weight"),
        f"{_COMFY} (HunyuanVideo 1.5: cond_type_embedding)",
    ),
    Layout(
        "hunyuanvideo",
        _T,
        _O,
        (
            "txt_in.individual_token_refiner.blocks.0.norm1.weight",
            "double_blocks.0.img_attn_qkv.weight",
        ),
        f"{_DIFFUSERS}['hunyuan-video']; {_COMFY}; {_GGUF} ModelHyVid",
    ),
    Layout(
        "sd3",
        _T,
        _O,
        (
            "joint_blocks.0.context_block.adaLN_modulation.1.bias",
            "joint_blocks.0.x_block.attn.qkv.weight",
        ),
        f"{_DIFFUSERS}['sd3']; {_COMFY} (mmdit); {_GGUF} ModelSD3",
    ),
    Layout(
        "auraflow",
        _T,
        _O,
        ("double_layers.0.attn.w1q.weight", "double_layers.0.attn.w2q.weight"),
        f"{_DIFFUSERS}['auraflow']; {_COMFY}",
    ),
    Layout(
        "hidream",
        _T,
        "original=diffusers",
        (
            "double_stream_blocks.0.block.adaLN_modulation.1.bias",
            "caption_projection.0.linear.weight",
        ),
        f"{_DIFFUSERS}['hidream']; {_COMFY}; {_GGUF} ModelHiDream; {_CLASS}",
    ),
    Layout(
        "wan",
        _T,
        _O,
        ("head.modulation", "blocks.0.self_attn.norm_q.weight"),
        f"{_DIFFUSERS}['wan']; {_COMFY} (Wan 2.1); {_GGUF} ModelWan",
    ),
    Layout(
        "ltx2",
        _T,
        _O,
        ("adaln_single.emb.timestep_embedder.linear_1.bias", "audio_adaln_single.linear.weight"),
        f"{_COMFY} (ltxav); {_DIFFUSERS}['ltx2']",
    ),
    Layout(
        "ltx2",
        _T,
        _O,
        ("av_ca_a2v_gate_adaln_single.emb.timestep_embedder.linear_1.weight",),
        f"{_DIFFUSERS}['ltx2']",
    ),
    Layout(
        "ltxv",
        _T,
        _O,
        ("adaln_single.emb.timestep_embedder.linear_1.bias", "patchify_proj.weight"),
        f"{_DIFFUSERS}['ltx-video']; {_COMFY} (ltxv); {_GGUF} ModelLTXV",
    ),
    Layout(
        "z-image",
        _T,
        _O,
        ("layers.0.adaLN_modulation.0.weight", "cap_embedder.1.weight"),
        f"{_DIFFUSERS}['z-image-turbo']; {_COMFY} (lumina2 branch, dim 3840)",
        unless=("layers.0.attention.to_q.weight",),
    ),
    Layout(
        "lumina2",
        _T,
        _O,
        ("cap_embedder.1.weight", "noise_refiner.0.attention.k_norm.weight"),
        f"{_DIFFUSERS}['lumina2']; {_COMFY} (Lumina 2); {_GGUF} ModelLumina2",
    ),
    Layout(
        "sana",
        _T,
        _O,
        ("blocks.0.cross_attn.q_linear.weight", "blocks.0.cross_attn.kv_linear.weight"),
        f"{_DIFFUSERS}['sana']",
    ),
    Layout(
        "mochi",
        _T,
        _O,
        ("blocks.0.attn.qkv_x.weight", "t5_yproj.weight"),
        f"{_DIFFUSERS}['mochi-1-preview']; {_COMFY} (mochi_preview)",
    ),
    Layout(
        "cosmos-predict2",
        _T,
        _O,
        ("blocks.0.mlp.layer1.weight", "blocks.0.adaln_modulation_cross_attn.1.weight"),
        f"{_COMFY} (cosmos_predict2); {_GGUF} CosmosPredict2; {_DIFFUSERS}['cosmos-2.0'] (net.)",
    ),
    Layout(
        "cosmos",
        _T,
        _O,
        ("blocks.block0.blocks.0.block.attn.to_q.0.weight", "x_embedder.proj.1.weight"),
        f"{_DIFFUSERS}['cosmos-1.0']; {_COMFY} (cosmos)",
    ),
    Layout(
        "qwen-image-2.1",
        _T,
        "original=diffusers",
        ("txt_in.text_norm.weight", "img_in.weight"),
        f"{_DIFFUSERS}['qwen-image-2.1']; {_COMFY} (qwen_image21)",
    ),
    # ---------------------------------------------------------------- diffusers layouts
    Layout(
        "flux2",
        _T,
        _D,
        ("single_stream_modulation.linear.weight", "transformer_blocks.0.attn.add_q_proj.weight"),
        _CLASS,
    ),
    Layout(
        "chroma",
        _T,
        _D,
        ("distilled_guidance_layer.in_proj.bias", "transformer_blocks.0.attn.add_q_proj.weight"),
        _CLASS,
    ),
    Layout(
        "hunyuanvideo15",
        _T,
        _D,
        (
            "context_embedder.token_refiner.refiner_blocks.0.attn.to_q.weight",
            "cond_type_embed.weight",
        ),
        _CLASS,
    ),
    Layout(
        "hunyuanvideo",
        _T,
        _D,
        (
            "context_embedder.token_refiner.refiner_blocks.0.attn.to_q.weight",
            "x_embedder.proj.weight",
            "single_transformer_blocks.0.attn.to_q.weight",
        ),
        _CLASS,
    ),
    Layout(
        "qwen-image",
        _T,
        "original=diffusers",
        (
            "txt_norm.weight",
            "img_in.weight",
            "txt_in.weight",
            "transformer_blocks.0.attn.add_q_proj.weight",
        ),
        f"{_COMFY} (qwen_image: txt_norm); {_CLASS}",
    ),
    Layout(
        "flux",
        _T,
        _D,
        (
            "transformer_blocks.0.attn.norm_added_k.weight",
            "x_embedder.weight",
            "single_transformer_blocks.0.proj_mlp.weight",
            "time_text_embed.timestep_embedder.linear_1.weight",
        ),
        f"{_GGUF} ModelFlux (norm_added_k); ComfyUI convert_diffusers_mmdit; {_CLASS}",
    ),
    Layout(
        "sd3",
        _T,
        _D,
        (
            "transformer_blocks.0.attn.add_q_proj.weight",
            "pos_embed.proj.weight",
            "context_embedder.weight",
            "time_text_embed.text_embedder.linear_1.weight",
        ),
        f"{_GGUF} ModelSD3; ComfyUI convert_diffusers_mmdit (SD3); {_CLASS}",
    ),
    Layout(
        "auraflow",
        _T,
        _D,
        ("joint_transformer_blocks.0.attn.add_k_proj.weight", "register_tokens"),
        f"ComfyUI convert_diffusers_mmdit (AuraFlow); {_GGUF} ModelAura; {_CLASS}",
    ),
    Layout(
        "wan",
        _T,
        _D,
        (
            "condition_embedder.time_embedder.linear_1.weight",
            "blocks.0.attn1.to_q.weight",
            "patch_embedding.weight",
        ),
        _CLASS,
    ),
    Layout(
        "ltx2",
        _T,
        _D,
        ("audio_proj_in.weight", "transformer_blocks.0.audio_attn1.to_q.weight"),
        _CLASS,
    ),
    Layout(
        "ltxv",
        _T,
        _D,
        (
            "time_embed.emb.timestep_embedder.linear_1.weight",
            "transformer_blocks.0.scale_shift_table",
            "proj_in.weight",
            "caption_projection.linear_1.weight",
        ),
        _CLASS,
    ),
    Layout(
        "sana",
        _T,
        _D,
        (
            "transformer_blocks.0.ff.conv_inverted.weight",
            "patch_embed.proj.weight",
            "transformer_blocks.0.attn2.to_k.weight",
        ),
        _CLASS,
    ),
    Layout(
        "z-image",
        _T,
        _D,
        (
            "layers.0.adaLN_modulation.0.weight",
            "layers.0.attention.to_q.weight",
            "noise_refiner.0.attention.to_q.weight",
        ),
        f"ComfyUI convert_diffusers_mmdit (noise_refiner norm_k); {_CLASS}",
    ),
    Layout(
        "lumina2",
        _T,
        _D,
        (
            "layers.0.feed_forward.linear_1.weight",
            "context_refiner.0.attn.to_q.weight",
            "time_caption_embed.caption_embedder.1.weight",
        ),
        _CLASS,
    ),
    Layout(
        "cosmos-predict2",
        _T,
        _D,
        (
            "transformer_blocks.0.norm1.linear_1.weight",
            "transformer_blocks.0.attn2.to_k.weight",
            "time_embed.t_embedder.linear_1.weight",
            "patch_embed.proj.weight",
        ),
        _CLASS,
    ),
    Layout(
        "mochi",
        _T,
        _D,
        (
            "transformer_blocks.0.attn1.add_q_proj.weight",
            "time_embed.pooler.to_q.weight",
            "pos_frequencies",
        ),
        _CLASS,
    ),
    # -------------------------------------------------------------------------- UNets
    Layout(
        "sdxl",
        _U,
        _O,
        ("input_blocks.0.0.weight", "label_emb.0.0.weight"),
        f"{_GGUF} ModelSDXL; {_COMFY} (label_emb); diffusers CHECKPOINT_KEY_NAMES['xl_base']",
    ),
    Layout(
        "sd",
        _U,
        _O,
        ("input_blocks.0.0.weight", "output_blocks.2.1.conv.weight"),
        f"{_GGUF} ModelSD1; {_DIFFUSERS}['v1'] (output_blocks)",
    ),
    Layout(
        "sd",
        _U,
        _O,
        ("input_blocks.0.0.weight", "output_blocks.11.0.skip_connection.weight"),
        f"{_DIFFUSERS}['v1']",
    ),
    Layout(
        "sdxl",
        _U,
        _D,
        ("conv_in.weight", "add_embedding.linear_1.weight", "up_blocks.0.resnets.0.conv1.weight"),
        f"{_GGUF} ModelSDXL (add_embedding); {_CLASS}",
    ),
    Layout(
        "sd",
        _U,
        _D,
        (
            "conv_in.weight",
            "down_blocks.0.attentions.0.proj_in.weight",
            "up_blocks.0.resnets.0.conv1.weight",
            "time_embedding.linear_1.weight",
        ),
        f"{_GGUF} ModelSD1 (down_blocks); {_CLASS}",
    ),
    # --------------------------------------------------------------------------- VAEs
    Layout(
        "wan",
        _V,
        _O,
        ("decoder.middle.0.residual.0.gamma", "encoder.conv1.weight"),
        f"{_DIFFUSERS}['wan_vae'] (Wan 2.1 VAE; also Qwen-Image's and Cosmos-Predict2's)",
    ),
    Layout(
        "wan",
        _V,
        _D,
        (
            "encoder.down_blocks.0.conv1.weight",
            "decoder.mid_block.resnets.0.conv1.weight",
            "quant_conv.weight",
        ),
        f"{_CLASS} AutoencoderKLWan 2.1 (and AutoencoderKLQwenImage: same layout)",
        unless=("encoder.down_blocks.0.resnets.0.conv1.weight",),
    ),
    Layout(
        "wan22",
        _V,
        _D,
        (
            "encoder.down_blocks.0.resnets.0.conv1.weight",
            "encoder.conv_in.weight",
            "decoder.up_blocks.0.resnets.0.conv1.weight",
            "quant_conv.weight",
        ),
        f"{_CLASS} AutoencoderKLWan is_residual (Wan 2.2 TI2V 5B)",
        unless=(
            "encoder.mid_block.attentions.0.to_q.weight",
            "encoder.mid_block.attentions.0.group_norm.weight",
        ),
    ),
    Layout(
        "hunyuanvideo",
        _V,
        _D,
        (
            "encoder.conv_in.conv.weight",
            "quant_conv.weight",
            "encoder.down_blocks.0.resnets.0.conv1.conv.weight",
        ),
        f"{_CLASS} AutoencoderKLHunyuanVideo",
    ),
    Layout(
        "ltxv",
        _V,
        _D,
        ("encoder.conv_in.conv.weight", "latents_mean"),
        f"{_CLASS} AutoencoderKLLTXVideo",
    ),
    Layout(
        "mochi",
        _V,
        _D,
        ("encoder.down_blocks.0.conv_in.conv.weight", "encoder.proj_out.weight"),
        f"{_CLASS} AutoencoderKLMochi",
    ),
    Layout(
        "dc-ae",
        _V,
        _D,
        ("encoder.down_blocks.0.0.conv1.weight", "decoder.conv_in.weight"),
        f"{_CLASS} AutoencoderDC (Sana); {_DIFFUSERS}['autoencoder-dc']",
    ),
    Layout(
        "flux2",
        _V,
        _D,
        ("bn.running_mean", "encoder.down_blocks.0.resnets.0.conv1.weight"),
        f"{_CLASS} AutoencoderKLFlux2",
    ),
    Layout(
        "kl",
        _V,
        _D,
        (
            "encoder.down_blocks.0.resnets.0.conv1.weight",
            "decoder.up_blocks.0.resnets.0.conv1.weight",
            "encoder.conv_out.weight",
        ),
        f"{_CLASS} AutoencoderKL",
    ),
    Layout(
        "kl",
        _V,
        _O,
        ("encoder.down.0.block.0.conv1.weight", "decoder.up.0.block.0.conv1.weight"),
        "ldm AutoencoderKL (first_stage_model.), diffusers convert_ldm_vae_checkpoint",
    ),
    # ------------------------------------------------------------------ text encoders
    Layout(
        "umt5",
        _TE,
        "transformers",
        (
            "encoder.block.0.layer.0.SelfAttention.q.weight",
            "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight",
        ),
        f"{_TRANSFORMERS} UMT5EncoderModel (relative bias in every block)",
    ),
    Layout(
        "t5",
        _TE,
        "transformers",
        (
            "encoder.block.0.layer.0.SelfAttention.q.weight",
            "encoder.block.0.layer.1.DenseReluDense.wo.weight",
        ),
        f"{_TRANSFORMERS} T5EncoderModel; ComfyUI-GGUF loader T5_SD_MAP",
    ),
    Layout(
        "t5",
        _TE,
        "llama.cpp",
        ("enc.blk.0.attn_q.weight", "enc.blk.0.ffn_down.weight"),
        "ComfyUI-GGUF loader T5_SD_MAP (llama.cpp T5 names)",
    ),
    Layout(
        "clip",
        _TE,
        "transformers",
        (
            "text_model.encoder.layers.0.self_attn.q_proj.weight",
            "text_model.embeddings.token_embedding.weight",
        ),
        f"{_TRANSFORMERS} CLIPTextModel(WithProjection); {_DIFFUSERS}['clip']",
    ),
    Layout(
        "clip",
        _TE,
        "transformers 5",
        ("encoder.layers.0.self_attn.q_proj.weight", "embeddings.token_embedding.weight"),
        f"{_TRANSFORMERS} CLIPTextModel, transformers 5 (no text_model. prefix)",
    ),
    Layout(
        "clip",
        _TE,
        "open_clip",
        ("transformer.resblocks.0.attn.in_proj_weight", "token_embedding.weight"),
        f"{_DIFFUSERS}['open_clip'] (cond_stage_model.model.)",
    ),
)

#: Axis of a shape that names a variant: (family, component, key, axis, {size: variant}).
#: First key present decides. Sizes are the released configurations' (tests/data/layouts).
VARIANTS: tuple[tuple[str, str, str, int, dict[int, str]], ...] = (
    ("wan", _T, "head.modulation", -1, {1536: "1.3B", 3072: "2.2-5B", 5120: "14B"}),
    ("wan", _T, "scale_shift_table", -1, {1536: "1.3B", 3072: "2.2-5B", 5120: "14B"}),
    ("flux2", _T, "img_in.weight", 0, {6144: "dev", 3072: "klein-4B", 4096: "klein-9B"}),
    ("flux2", _T, "x_embedder.weight", 0, {6144: "dev", 3072: "klein-4B", 4096: "klein-9B"}),
    ("cosmos-predict2", _T, "x_embedder.proj.1.weight", 0, {2048: "2B", 5120: "14B"}),
    ("cosmos-predict2", _T, "patch_embed.proj.weight", 0, {2048: "2B", 5120: "14B"}),
    ("kl", _V, "encoder.conv_out.weight", 0, {8: "4ch (SD 1/2/XL)", 32: "16ch (Flux.1 / SD3)"}),
    (
        "clip",
        _TE,
        "text_model.embeddings.token_embedding.weight",
        1,
        {768: "L", 1024: "H", 1280: "bigG"},
    ),
    ("clip", _TE, "embeddings.token_embedding.weight", 1, {768: "L", 1024: "H", 1280: "bigG"}),
    ("clip", _TE, "token_embedding.weight", 1, {768: "L", 1024: "H", 1280: "bigG"}),
)
#: Keys whose presence names a variant: (family, key, variant).
_PRESENT_VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("sd3", "joint_blocks.37.x_block.mlp.fc1.weight", "3.5-large"),
    ("sd3", "transformer_blocks.37.norm1.linear.weight", "3.5-large"),
    ("sd3", "joint_blocks.0.x_block.attn2.qkv.weight", "3.5-medium"),
    ("sd3", "transformer_blocks.0.attn2.to_q.weight", "3.5-medium"),
    ("flux", "guidance_in.in_layer.weight", "dev"),
    ("flux", "time_text_embed.guidance_embedder.linear_1.weight", "dev"),
    ("chroma", "nerf_blocks.0.norm.scale", "radiance"),
)

#: Cross-attention key width tells SD 1.x (768) from SD 2.x (1024).
_SD_CONTEXT_KEYS = (
    "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
)
_UNET_VERSIONS = {768: "sd1", 1024: "sd2"}


class Recognised(NamedTuple):
    """What the key layout says: component, family, variant, layout and the row's origin."""

    component: str | None = None
    family: str | None = None
    variant: str | None = None
    layout: str | None = None
    origin: str | None = None


def base_name(name: str) -> str | None:
    """The unquantized parameter name a stored tensor belongs to; None for side tensors.

    quanto ``m.weight._data`` (and packed ``._data._data``) -> ``m.weight``; torchao
    ``m._weight_qdata`` -> ``m.weight``; bitsandbytes' ``absmax``/``quant_map``/
    ``quant_state``/``SCB``/``weight_format``, quanto's scales and ComfyUI's
    ``weight_scale``/``scale_weight``/``comfy_quant`` are side tensors.
    """
    for suffix in ("._data._data", "._data"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    if "._weight_" in name:
        head, _, tail = name.rpartition("._weight_")
        return f"{head}.weight" if tail == "qdata" else None
    last = name.rsplit(".", 1)[-1]
    side = (
        "absmax",
        "quant_map",
        "nested_absmax",
        "nested_quant_map",
        "SCB",
        "weight_format",
        "_scale",
        "_shift",
        "_scale_shift",
        "input_scale",
        "output_scale",
        "weight_scale",
        "weight_scale_2",
        "pre_quant_scale",
        "scale_weight",
        "scale_input",
        "comfy_quant",
        "scaled_fp8",
    )
    if last in side or ".quant_state." in name:
        return None
    return name


def classify(shapes: Mapping[str, tuple[int, ...]]) -> Recognised:
    """What unquantized parameters (name -> shape) are: an all-in-one file is named by
    its diffusion model, with component ``all_in_one``."""
    all_names = set(shapes)
    diffusion = {n[len(DIFFUSION_PREFIX) :] for n in all_names if n.startswith(DIFFUSION_PREFIX)}
    if diffusion and any(n.startswith(OTHER_PREFIXES) for n in all_names):
        found = _match(_strip(shapes, DIFFUSION_PREFIX))
        return Recognised("all_in_one", found.family, found.variant, found.layout, found.origin)
    found = _match(shapes)
    if found.family is not None:
        return found
    for prefix in _MODEL_PREFIXES:
        stripped = _strip(shapes, prefix)
        if stripped:
            found = _match(stripped)
            if found.family is not None:
                return found
    return _text_model(shapes)


def _strip(shapes: Mapping[str, tuple[int, ...]], prefix: str) -> dict[str, tuple[int, ...]]:
    n = len(prefix)
    return {k[n:]: v for k, v in shapes.items() if k.startswith(prefix)}


def _match(shapes: Mapping[str, tuple[int, ...]]) -> Recognised:
    for row in LAYOUTS:
        if all(m in shapes for m in row.markers) and not any(u in shapes for u in row.unless):
            family = row.family
            if row.component == _U and family == "sd":
                family = _unet_version(shapes)
            return Recognised(row.component, family, _variant(row, shapes), row.layout, row.origin)
    return Recognised()


def _variant(row: Layout, shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    for family, key, variant in _PRESENT_VARIANTS:
        if family == row.family and key in shapes:
            return variant
    for family, component, key, axis, sizes in VARIANTS:
        if family == row.family and component == row.component and key in shapes:
            shape = shapes[key]
            if shape and -len(shape) <= axis < len(shape):
                return sizes.get(shape[axis])
    return None


def _unet_version(shapes: Mapping[str, tuple[int, ...]]) -> str:
    for key in _SD_CONTEXT_KEYS:
        shape = shapes.get(key)
        if shape and len(shape) == 2:
            return _UNET_VERSIONS.get(shape[1], "sd")
    return "sd"


# ------------------------------------------------------------------ LLM text encoders

#: (family, the text model's keys relative to its ``layers.0.``-prefix: all present,
#: none of the excluded), most specific first. Sources: transformers 5.24 model classes
#: (tests/data/layouts): Gemma3 adds q/k norms to Gemma2's four norms per layer, Qwen3
#: has q/k norms, Qwen2 a bias on q_proj; Llama and Mistral share one layout.
_LLM_FAMILIES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("gemma3", ("self_attn.q_norm.weight", "pre_feedforward_layernorm.weight"), ()),
    ("gemma2", ("pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight"), ()),
    ("qwen3", ("self_attn.q_norm.weight",), ()),
    ("qwen2", ("self_attn.q_proj.bias",), ()),
    ("llama", ("self_attn.q_proj.weight", "mlp.gate_proj.weight"), ()),
)
#: Vision towers that make a text encoder a vision-language model: (family, key suffix).
_VLM_FAMILIES: tuple[tuple[str, str], ...] = (
    ("qwen3-vl", "visual.deepstack_merger_list.0.norm.weight"),
    ("qwen2.5-vl", "visual.blocks.0.mlp.gate_proj.weight"),
    ("qwen2-vl", "visual.blocks.0.mlp.fc1.weight"),
    ("mistral3", "multi_modal_projector.patch_merger.merging_layer.weight"),
    ("gemma3", "multi_modal_projector.mm_input_projection_weight"),
)
_LLM_ANCHOR = "layers.0.self_attn.q_proj.weight"
#: llama.cpp tensor names of the same families (GGUF text encoders).
_GGUF_LLM_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gemma3", ("blk.0.attn_q_norm.weight", "blk.0.post_ffw_norm.weight")),
    ("gemma2", ("blk.0.post_ffw_norm.weight",)),
    ("qwen3", ("blk.0.attn_q_norm.weight",)),
    ("qwen2", ("blk.0.attn_q.bias",)),
    ("llama", ("blk.0.attn_q.weight", "blk.0.ffn_gate.weight")),
)


def _text_model(shapes: Mapping[str, tuple[int, ...]]) -> Recognised:
    # The decoder's first layer (a vision tower's layers have no gated MLP).
    anchor = next(
        (
            n
            for n in shapes
            if n.endswith(_LLM_ANCHOR)
            and n[: -len(_LLM_ANCHOR)] + "layers.0.mlp.gate_proj.weight" in shapes
        ),
        None,
    )
    if anchor is not None:
        base = anchor[: -len(_LLM_ANCHOR)]
        origin = f"{_TRANSFORMERS}: per-layer norms and biases"
        for family, needs, unless in _LLM_FAMILIES:
            if all(base + "layers.0." + k in shapes for k in needs) and not any(
                base + "layers.0." + k in shapes for k in unless
            ):
                for vlm, suffix in _VLM_FAMILIES:
                    if any(n.endswith(suffix) for n in shapes):
                        return Recognised(_TE, vlm, family, "transformers", origin)
                return Recognised(_TE, family, None, "transformers", origin)
    for family, needs in _GGUF_LLM_FAMILIES:
        if all(k in shapes for k in needs):
            return Recognised(_TE, family, None, "llama.cpp", "llama.cpp tensor names")
    return Recognised()


#: GGUF ``general.architecture`` values of image models (ComfyUI-GGUF loader.py
#: IMG_ARCH_LIST) -> the families detect names from tensor names that the label covers.
GGUF_IMAGE_ARCHS: dict[str, tuple[str, frozenset[str]]] = {
    # ComfyUI-GGUF's converter labels every double_blocks model "flux": Flux.2 and Chroma too
    "flux": (_T, frozenset({"flux", "flux2", "chroma"})),
    "sd3": (_T, frozenset({"sd3"})),
    "aura": (_T, frozenset({"auraflow"})),
    "hidream": (_T, frozenset({"hidream"})),
    "cosmos": (_T, frozenset({"cosmos-predict2", "cosmos"})),
    "ltxv": (_T, frozenset({"ltxv", "ltx2"})),
    "hyvid": (_T, frozenset({"hunyuanvideo", "hunyuanvideo15"})),
    "wan": (_T, frozenset({"wan"})),
    "lumina2": (_T, frozenset({"lumina2", "z-image"})),
    "qwen_image": (_T, frozenset({"qwen-image", "qwen-image-2.1"})),
    "chroma": (_T, frozenset({"chroma"})),
    "sd1": (_U, frozenset({"sd", "sd1", "sd2"})),
    "sdxl": (_U, frozenset({"sdxl"})),
}
#: GGUF text-model architectures (ComfyUI-GGUF TXT_ARCH_LIST and llama.cpp) -> families.
GGUF_TEXT_ARCHS: dict[str, frozenset[str]] = {
    "t5": frozenset({"t5", "umt5"}),
    "t5encoder": frozenset({"t5", "umt5"}),
    "llama": frozenset({"llama"}),
    "mistral3": frozenset({"llama"}),
    "qwen2": frozenset({"qwen2"}),
    "qwen2vl": frozenset({"qwen2"}),
    "qwen3": frozenset({"qwen3"}),
    "qwen3vl": frozenset({"qwen3"}),
    "gemma2": frozenset({"gemma2"}),
    "gemma3": frozenset({"gemma3"}),
    "clip": frozenset({"clip"}),
}


#: diffusers' model classes (a folder's ``config.json`` ``_class_name``) and transformers'
#: ``model_type`` -> the families whose layouts they save (tests/data/layouts).
CONFIG_CLASSES: dict[str, frozenset[str]] = {
    k: frozenset(v.split())
    for k, v in {
        "FluxTransformer2DModel": "flux",
        "Flux2Transformer2DModel": "flux2",
        "ChromaTransformer2DModel": "chroma",
        "SD3Transformer2DModel": "sd3",
        "WanTransformer3DModel": "wan",
        "HunyuanVideoTransformer3DModel": "hunyuanvideo",
        "HunyuanVideo15Transformer3DModel": "hunyuanvideo15",
        "LTXVideoTransformer3DModel": "ltxv",
        "LTX2VideoTransformer3DModel": "ltx2",
        "Lumina2Transformer2DModel": "lumina2",
        "ZImageTransformer2DModel": "z-image",
        "HiDreamImageTransformer2DModel": "hidream",
        "QwenImageTransformer2DModel": "qwen-image",
        "CosmosTransformer3DModel": "cosmos cosmos-predict2",
        "AuraFlowTransformer2DModel": "auraflow",
        "SanaTransformer2DModel": "sana",
        "MochiTransformer3DModel": "mochi",
        "UNet2DConditionModel": "sd sd1 sd2 sdxl",
        "AutoencoderKL": "kl",
        "AutoencoderKLFlux2": "flux2",
        "AutoencoderKLWan": "wan wan22",
        "AutoencoderKLQwenImage": "wan",
        "AutoencoderKLHunyuanVideo": "hunyuanvideo",
        "AutoencoderKLLTXVideo": "ltxv",
        "AutoencoderKLMochi": "mochi",
        "AutoencoderDC": "dc-ae",
        "t5": "t5",
        "umt5": "umt5",
        "clip_text_model": "clip",
        "clip": "clip",
        "gemma2": "gemma2",
        "gemma3": "gemma3",
        "qwen3": "qwen3",
        "llama": "llama",
        "mistral": "llama",
        "mistral3": "mistral3",
        "qwen2_5_vl": "qwen2.5-vl",
        "qwen2_vl": "qwen2-vl",
    }.items()
}
