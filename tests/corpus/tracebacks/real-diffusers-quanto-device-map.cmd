python -c 'import tempfile, torch
from diffusers import FluxTransformer2DModel
cfg = dict(patch_size=1, in_channels=32, out_channels=None, num_layers=1, num_single_layers=1,
           attention_head_dim=64, num_attention_heads=4, joint_attention_dim=256,
           pooled_projection_dim=128, guidance_embeds=False, axes_dims_rope=(16, 24, 24))
d = tempfile.mkdtemp()
FluxTransformer2DModel(**cfg).to(torch.bfloat16).save_pretrained(d)

from diffusers import QuantoConfig
FluxTransformer2DModel.from_pretrained(
    d, quantization_config=QuantoConfig(weights_dtype="int8"),
    device_map={"transformer_blocks": "cpu", "single_transformer_blocks": "disk", "": "cpu"},
)'
