"""Which model a checkpoint holds, from its tensor names alone.

The marker keys come from diffusers' ``single_file_utils.py`` (v0.40) and ComfyUI-GGUF's
``convert.py``, as collected in reference/engines.md section 9. Names are normalised
first (quantization suffixes removed) so a quantized file and its unquantized original
are recognised alike.
"""

from __future__ import annotations

from collections.abc import Mapping

DIFFUSION_PREFIX = "model.diffusion_model."
#: Prefixes of the non-diffusion parts of an all-in-one (single-file) checkpoint.
OTHER_PREFIXES: tuple[str, ...] = (
    "first_stage_model.",
    "vae.",
    "cond_stage_model.",
    "conditioner.embedders.",
    "text_encoders.",
)

#: (architecture, component, marker keys: any one present identifies it), most specific
#: first: Chroma before Flux (Chroma also has ``double_blocks``), Flux2 before Flux.
_MARKERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("chroma", "transformer", ("distilled_guidance_layer.in_proj.bias",)),
    ("flux2", "transformer", ("single_stream_modulation.lin.weight",)),
    ("flux", "transformer", ("double_blocks.0.img_attn.norm.key_norm.scale",)),
    ("sd3", "transformer", ("joint_blocks.0.context_block.adaLN_modulation.1.bias",)),
    ("auraflow", "transformer", ("double_layers.0.attn.w2q.weight",)),
    (
        "hunyuanvideo",
        "transformer",
        ("txt_in.individual_token_refiner.blocks.0.adaLN_modulation.1.bias",),
    ),
    ("hidream", "transformer", ("double_stream_blocks.0.block.adaLN_modulation.1.bias",)),
    ("wan", "transformer", ("head.modulation",)),
    ("ltxv", "transformer", ("patchify_proj.weight",)),
    ("lumina2", "transformer", ("cap_embedder.0.weight",)),
    ("sana", "transformer", ("blocks.0.cross_attn.q_linear.weight",)),
    ("sdxl", "unet", ("label_emb.0.0.weight", "add_embedding.linear_1.weight")),
    ("t5", "text_encoder", ("encoder.block.0.layer.0.SelfAttention.q.weight",)),
    ("t5", "text_encoder", ("enc.blk.0.attn_q.weight",)),
    ("clip", "text_encoder", ("text_model.encoder.layers.0.self_attn.q_proj.weight",)),
    ("clip", "text_encoder", ("transformer.resblocks.0.attn.in_proj_weight",)),
    # transformers 5 saves CLIPTextModel without the ``text_model.`` prefix
    ("clip", "text_encoder", ("embeddings.token_embedding.weight",)),
    ("llm", "text_encoder", ("model.layers.0.self_attn.q_proj.weight",)),
    ("llm", "text_encoder", ("blk.0.attn_q.weight",)),
)

#: Cross-attention key width tells SD 1.x (768) from SD 2.x (1024).
_SD_CONTEXT_KEYS = (
    "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
)


def base_name(name: str) -> str | None:
    """The unquantized parameter name a stored tensor belongs to; None for side tensors.

    quanto ``m.weight._data`` (and packed ``._data._data``) -> ``m.weight``; torchao
    ``m._weight_qdata`` -> ``m.weight``; bitsandbytes' ``absmax``/``quant_map``/
    ``quant_state``/``SCB``/``weight_format`` and quanto's scales are side tensors.
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
    )
    if last in side or ".quant_state." in name:
        return None
    return name


def _flux_or_sd3_diffusers(names: set[str]) -> str | None:
    if "transformer_blocks.0.attn.add_q_proj.weight" not in names and not any(
        n.startswith("transformer_blocks.0.attn.norm_added_k") for n in names
    ):
        return None
    if any(n.startswith("single_transformer_blocks.") for n in names):
        return "flux"
    if "pos_embed.proj.weight" in names or "context_embedder.weight" in names:
        return "sd3"
    return None


def _unet_version(names: set[str], shapes: Mapping[str, tuple[int, ...]]) -> str:
    for key in _SD_CONTEXT_KEYS:
        shape = shapes.get(key)
        if shape and len(shape) == 2:
            return {768: "sd1", 1024: "sd2"}.get(shape[1], "sd")
    return "sd"


def _is_unet(names: set[str]) -> bool:
    original = "input_blocks.0.0.weight" in names and any(
        n.startswith("output_blocks.") for n in names
    )
    diffusers = "conv_in.weight" in names and any(n.startswith("up_blocks.") for n in names)
    return original or diffusers


def _is_vae(names: set[str]) -> bool:
    encoder = any(n.startswith(("encoder.conv_in.", "encoder.down")) for n in names)
    decoder = any(n.startswith(("decoder.conv_in.", "decoder.up")) for n in names)
    return encoder and decoder


def classify(shapes: Mapping[str, tuple[int, ...]]) -> tuple[str | None, str | None]:
    """(component, architecture) of unquantized parameters (name -> shape), or (None, None)."""
    all_names = set(shapes)
    diffusion = {n[len(DIFFUSION_PREFIX) :] for n in all_names if n.startswith(DIFFUSION_PREFIX)}
    if diffusion:
        component, arch = _classify_plain(diffusion, _strip(shapes))
        if any(n.startswith(OTHER_PREFIXES) for n in all_names):
            return "all_in_one", arch
        return component, arch
    return _classify_plain(all_names, shapes)


def _strip(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    n = len(DIFFUSION_PREFIX)
    return {k[n:]: v for k, v in shapes.items() if k.startswith(DIFFUSION_PREFIX)}


def _classify_plain(
    names: set[str], shapes: Mapping[str, tuple[int, ...]]
) -> tuple[str | None, str | None]:
    for arch, component, markers in _MARKERS:
        if any(m in names for m in markers):
            return component, arch
    diffusers_arch = _flux_or_sd3_diffusers(names)
    if diffusers_arch:
        return "transformer", diffusers_arch
    if _is_unet(names):
        return "unet", _unet_version(names, shapes)
    if _is_vae(names):
        return "vae", "vae"
    return None, None


#: GGUF ``general.architecture`` values of image models (ComfyUI-GGUF) and text encoders.
GGUF_IMAGE_ARCHS: dict[str, str] = {
    "flux": "transformer",
    "sd3": "transformer",
    "aura": "transformer",
    "hidream": "transformer",
    "cosmos": "transformer",
    "ltxv": "transformer",
    "hyvid": "transformer",
    "wan": "transformer",
    "lumina2": "transformer",
    "qwen_image": "transformer",
    "chroma": "transformer",
    "sd1": "unet",
    "sdxl": "unet",
}
GGUF_TEXT_ARCHS = frozenset({"t5", "t5encoder", "llama", "qwen2vl", "qwen3", "qwen3vl", "clip"})
