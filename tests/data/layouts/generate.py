"""Write the key layouts (tensor names and shapes) of released models, from the real classes.

Each model is built on the ``meta`` device (no memory, no weights) by the class that loads
it in diffusers 0.42.1 or transformers 5.24, with the configuration of a released
checkpoint, and only its state dict's names and shapes are written: one gzipped JSON per
model in this folder. ``tests/test_detect_layouts.py`` turns them into safetensors
headers over sparse files and checks what ``detect`` names them.

Where a configuration comes from is recorded with it: the class defaults (which are the
released model's in diffusers), or the conversion script of huggingface/diffusers that
produced the released repository (``scripts/convert_*_to_diffusers.py`` at 58eb52c0), or
the released repository's ``config.json`` values as the transformers docs give them.

Run: ``python tests/data/layouts/generate.py`` (slow: imports torch, diffusers,
transformers; a minute or two on two cores). Not run by the test suite.
"""

from __future__ import annotations

import gzip
import json
import sys
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SCRIPTS = "huggingface/diffusers@58eb52c0 scripts/"


def _d(cls: str, source: str, **config: Any) -> tuple[str, str, str, dict[str, Any]]:
    return ("diffusers", cls, source, config)


def _t(
    cls: str, config_cls: str, source: str, **config: Any
) -> tuple[str, str, str, dict[str, Any]]:
    return ("transformers", cls, source, {"__config__": config_cls, **config})


DEFAULTS = "class defaults (the released model's configuration)"

_WAN = dict(
    patch_size=(1, 2, 2),
    text_dim=4096,
    freq_dim=256,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
)
_SDXL_VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
)

#: name -> (library, class, where the configuration comes from, configuration)
MODELS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    # ------------------------------------------------------------ diffusion models
    "flux1-dev": _d(
        "FluxTransformer2DModel", DEFAULTS + " + guidance_embeds (FLUX.1-dev)", guidance_embeds=True
    ),
    "flux1-schnell": _d("FluxTransformer2DModel", DEFAULTS + " (FLUX.1-schnell)"),
    "flux2-dev": _d(
        "Flux2Transformer2DModel",
        SCRIPTS + "convert_flux2_to_diffusers.py flux2-dev",
        patch_size=1,
        in_channels=128,
        num_layers=8,
        num_single_layers=48,
        attention_head_dim=128,
        num_attention_heads=48,
        joint_attention_dim=15360,
        timestep_guidance_channels=256,
        mlp_ratio=3.0,
        axes_dims_rope=(32, 32, 32, 32),
        rope_theta=2000,
        eps=1e-6,
    ),
    "flux2-klein-4b": _d(
        "Flux2Transformer2DModel",
        SCRIPTS + "convert_flux2_to_diffusers.py klein-4b",
        patch_size=1,
        in_channels=128,
        num_layers=5,
        num_single_layers=20,
        attention_head_dim=128,
        num_attention_heads=24,
        joint_attention_dim=7680,
        timestep_guidance_channels=256,
        mlp_ratio=3.0,
        axes_dims_rope=(32, 32, 32, 32),
        rope_theta=2000,
        eps=1e-6,
        guidance_embeds=False,
    ),
    "chroma": _d("ChromaTransformer2DModel", DEFAULTS),
    "sd3-medium": _d(
        "SD3Transformer2DModel",
        SCRIPTS + "convert_sd3_to_diffusers.py (sd3 medium)",
        sample_size=128,
        patch_size=2,
        in_channels=16,
        num_layers=24,
        attention_head_dim=64,
        num_attention_heads=24,
        joint_attention_dim=4096,
        caption_projection_dim=1536,
        pooled_projection_dim=2048,
        out_channels=16,
        pos_embed_max_size=192,
    ),
    "sd35-large": _d(
        "SD3Transformer2DModel",
        SCRIPTS + "convert_sd3_to_diffusers.py (sd3.5 large)",
        sample_size=128,
        patch_size=2,
        in_channels=16,
        num_layers=38,
        attention_head_dim=64,
        num_attention_heads=38,
        joint_attention_dim=4096,
        caption_projection_dim=2432,
        pooled_projection_dim=2048,
        out_channels=16,
        pos_embed_max_size=192,
        qk_norm="rms_norm",
    ),
    "wan21-t2v-1.3b": _d(
        "WanTransformer3DModel",
        SCRIPTS + "convert_wan_to_diffusers.py Wan-T2V-1.3B",
        **_WAN,
        added_kv_proj_dim=None,
        ffn_dim=8960,
        in_channels=16,
        num_attention_heads=12,
        num_layers=30,
        out_channels=16,
        attention_head_dim=128,
    ),
    "wan21-i2v-14b": _d(
        "WanTransformer3DModel",
        SCRIPTS + "convert_wan_to_diffusers.py Wan-I2V-14B-720p",
        **_WAN,
        image_dim=1280,
        added_kv_proj_dim=5120,
        ffn_dim=13824,
        in_channels=36,
        num_attention_heads=40,
        num_layers=40,
        out_channels=16,
        attention_head_dim=128,
    ),
    "wan22-t2v-a14b": _d(
        "WanTransformer3DModel",
        SCRIPTS + "convert_wan_to_diffusers.py Wan2.2-T2V-A14B",
        **_WAN,
        added_kv_proj_dim=None,
        ffn_dim=13824,
        in_channels=16,
        num_attention_heads=40,
        num_layers=40,
        out_channels=16,
        attention_head_dim=128,
    ),
    "wan22-ti2v-5b": _d(
        "WanTransformer3DModel",
        SCRIPTS + "convert_wan_to_diffusers.py Wan2.2-TI2V-5B",
        **_WAN,
        added_kv_proj_dim=None,
        ffn_dim=14336,
        in_channels=48,
        num_attention_heads=24,
        num_layers=30,
        out_channels=48,
        attention_head_dim=128,
    ),
    "hunyuanvideo": _d("HunyuanVideoTransformer3DModel", DEFAULTS),
    "hunyuanvideo15": _d("HunyuanVideo15Transformer3DModel", DEFAULTS),
    "ltxv": _d("LTXVideoTransformer3DModel", DEFAULTS),
    "ltx2": _d("LTX2VideoTransformer3DModel", DEFAULTS),
    "lumina2": _d("Lumina2Transformer2DModel", DEFAULTS),
    "z-image": _d("ZImageTransformer2DModel", DEFAULTS),
    "hidream-i1": _d(
        "HiDreamImageTransformer2DModel",
        "HiDream-ai/HiDream-I1-Full transformer/config.json values",
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=16,
        num_single_layers=32,
        attention_head_dim=128,
        num_attention_heads=20,
        caption_channels=[4096, 4096],
        text_emb_dim=2048,
        num_routed_experts=4,
        num_activated_experts=2,
        axes_dims_rope=(64, 32, 32),
        max_resolution=(128, 128),
        llama_layers=[*range(32), *([31] * 16)],
    ),
    "qwen-image": _d("QwenImageTransformer2DModel", DEFAULTS),
    "cosmos-predict2-2b": _d(
        "CosmosTransformer3DModel",
        SCRIPTS + "convert_cosmos_to_diffusers.py Cosmos-2.0-Diffusion-2B-Text2Image",
        in_channels=16,
        out_channels=16,
        num_attention_heads=16,
        attention_head_dim=128,
        num_layers=28,
        mlp_ratio=4.0,
        text_embed_dim=1024,
        adaln_lora_dim=256,
        max_size=(128, 240, 240),
        patch_size=(1, 2, 2),
        rope_scale=(1.0, 4.0, 4.0),
        concat_padding_mask=True,
        extra_pos_embed_type=None,
    ),
    "auraflow": _d("AuraFlowTransformer2DModel", DEFAULTS),
    "sana-1600m": _d(
        "SanaTransformer2DModel",
        SCRIPTS + "convert_sana_to_diffusers.py SanaMS_1600M_P1_D20",
        in_channels=32,
        out_channels=32,
        num_attention_heads=70,
        attention_head_dim=32,
        num_cross_attention_heads=20,
        cross_attention_head_dim=112,
        cross_attention_dim=2240,
        num_layers=20,
        caption_channels=2304,
        sample_size=32,
    ),
    "mochi1": _d("MochiTransformer3DModel", DEFAULTS),
    "sd15-unet": _d(
        "UNet2DConditionModel",
        "stable-diffusion-v1-5 unet/config.json values",
        cross_attention_dim=768,
        attention_head_dim=8,
    ),
    "sd21-unet": _d(
        "UNet2DConditionModel",
        "stabilityai/stable-diffusion-2-1 unet/config.json values",
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
    ),
    "sdxl-unet": _d(
        "UNet2DConditionModel",
        "stabilityai/stable-diffusion-xl-base-1.0 unet/config.json values",
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(320, 640, 1280),
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
        use_linear_projection=True,
    ),
    # -------------------------------------------------------------------------- VAEs
    "vae-sd": _d(
        "AutoencoderKL",
        "stable-diffusion-v1-5 vae/config.json values",
        **_SDXL_VAE,
        latent_channels=4,
    ),
    "vae-flux1": _d(
        "AutoencoderKL",
        "FLUX.1-dev vae/config.json values",
        **_SDXL_VAE,
        latent_channels=16,
        use_quant_conv=False,
        use_post_quant_conv=False,
    ),
    "vae-flux2": _d("AutoencoderKLFlux2", DEFAULTS),
    "vae-wan21": _d("AutoencoderKLWan", DEFAULTS),
    "vae-wan22": _d(
        "AutoencoderKLWan",
        SCRIPTS + "convert_wan_to_diffusers.py vae22_diffusers_config",
        base_dim=160,
        z_dim=48,
        is_residual=True,
        in_channels=12,
        out_channels=12,
        decoder_base_dim=256,
        scale_factor_temporal=4,
        scale_factor_spatial=16,
        patch_size=2,
    ),
    "vae-hunyuanvideo": _d("AutoencoderKLHunyuanVideo", DEFAULTS),
    "vae-ltxv": _d("AutoencoderKLLTXVideo", DEFAULTS),
    "vae-qwen-image": _d("AutoencoderKLQwenImage", DEFAULTS),
    "vae-mochi": _d("AutoencoderKLMochi", DEFAULTS),
    "vae-dc-ae": _d("AutoencoderDC", DEFAULTS + " (dc-ae-f32c32, Sana)"),
    # ------------------------------------------------------------------ text encoders
    "t5-xxl": _t(
        "T5EncoderModel",
        "T5Config",
        "google/t5-v1_1-xxl config.json values",
        d_model=4096,
        d_ff=10240,
        d_kv=64,
        num_heads=64,
        num_layers=24,
        vocab_size=32128,
        feed_forward_proj="gated-gelu",
    ),
    "umt5-xxl": _t(
        "UMT5EncoderModel",
        "UMT5Config",
        "google/umt5-xxl config.json values",
        d_model=4096,
        d_ff=10240,
        d_kv=64,
        num_heads=64,
        num_layers=24,
        vocab_size=256384,
        feed_forward_proj="gated-gelu",
    ),
    "clip-l": _t(
        "CLIPTextModel",
        "CLIPTextConfig",
        "openai/clip-vit-large-patch14 text_config values",
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        projection_dim=768,
    ),
    "clip-g": _t(
        "CLIPTextModelWithProjection",
        "CLIPTextConfig",
        "SDXL text_encoder_2/config.json values",
        hidden_size=1280,
        intermediate_size=5120,
        num_hidden_layers=32,
        num_attention_heads=20,
        projection_dim=1280,
        hidden_act="gelu",
    ),
    "gemma2-2b": _t(
        "Gemma2Model",
        "Gemma2Config",
        "google/gemma-2-2b config.json values",
        hidden_size=2304,
        intermediate_size=9216,
        num_hidden_layers=26,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=256,
        vocab_size=256000,
    ),
    "qwen3-4b": _t(
        "Qwen3Model",
        "Qwen3Config",
        "Qwen/Qwen3-4B config.json values",
        hidden_size=2560,
        intermediate_size=9728,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=151936,
    ),
    "llama3-8b": _t(
        "LlamaModel",
        "LlamaConfig",
        "meta-llama/Llama-3.1-8B config.json values",
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
    ),
    "qwen25-vl-7b": _t(
        "Qwen2_5_VLForConditionalGeneration",
        "Qwen2_5_VLConfig",
        "Qwen/Qwen2.5-VL-7B-Instruct config.json values",
        text_config=dict(
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            vocab_size=152064,
        ),
        vision_config=dict(
            depth=32, hidden_size=1280, intermediate_size=3420, out_hidden_size=3584, num_heads=16
        ),
    ),
    "mistral3-24b": _t(
        "Mistral3ForConditionalGeneration",
        "Mistral3Config",
        "mistralai/Mistral-Small-3.1-24B-Instruct-2503 config.json values (FLUX.2-dev's)",
        text_config=dict(
            model_type="mistral",
            hidden_size=5120,
            intermediate_size=32768,
            num_hidden_layers=40,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=128,
            vocab_size=131072,
        ),
        vision_config=dict(
            model_type="pixtral",
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            patch_size=14,
            image_size=1540,
        ),
    ),
    "gemma3-12b": _t(
        "Gemma3ForConditionalGeneration",
        "Gemma3Config",
        "google/gemma-3-12b-it config.json values (LTX-2 text encoder)",
        text_config=dict(
            hidden_size=3840,
            intermediate_size=15360,
            num_hidden_layers=48,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=256,
            vocab_size=262208,
        ),
        vision_config=dict(
            hidden_size=1152,
            intermediate_size=4304,
            num_hidden_layers=27,
            num_attention_heads=16,
            patch_size=14,
            image_size=896,
        ),
    ),
}


def _build(library: str, cls_name: str, config: dict[str, Any]) -> Any:
    import torch

    if library == "diffusers":
        import diffusers

        cls = getattr(diffusers, cls_name)
        with torch.device("meta"):
            return cls(**config)
    import transformers

    config = dict(config)
    config_cls = getattr(transformers, config.pop("__config__"))
    cls = getattr(transformers, cls_name)
    with torch.device("meta"):
        return cls(config_cls(**config))


def _shapes(model: Any) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def main(names: list[str]) -> int:
    failed = 0
    for name, (library, cls_name, source, config) in MODELS.items():
        if names and name not in names:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = _build(library, cls_name, config)
        except Exception as err:  # report and go on: one bad config must not hide the rest
            print(f"{name}: FAILED {type(err).__name__}: {err}", file=sys.stderr)
            failed += 1
            continue
        record = {
            "name": name,
            "library": library,
            "class": cls_name,
            "source": source,
            "config": {k: v for k, v in config.items() if k != "__config__"},
            "tensors": _shapes(model),
        }
        out = HERE / f"{name}.json.gz"
        with gzip.open(out, "wt", encoding="utf-8") as f:
            json.dump(record, f, separators=(",", ":"), default=list)
        print(f"{name}: {len(record['tensors'])} tensors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
