"""The tiny Flux transformer the GPU runs build in code, and the inputs they feed it.

``FLUX`` is the 146 M-parameter model of docs/reference/evidence/gpu-diffusers-2026-11-25-h100.md
(diffusers' ``FluxTransformer2DModel(**FLUX)``, random weights: nothing is downloaded).
"""

from __future__ import annotations

from typing import Any

FLUX: dict[str, Any] = dict(
    patch_size=1,
    in_channels=64,
    num_layers=2,
    num_single_layers=4,
    attention_head_dim=128,
    num_attention_heads=8,
    joint_attention_dim=1024,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)


def inputs(torch: Any, cfg: dict[str, Any], n_img: int, n_txt: int, dev: Any) -> dict[str, Any]:
    """One forward's arguments for ``FluxTransformer2DModel(**cfg)`` (seed 0): ``n_img``
    image tokens on a square grid, ``n_txt`` text tokens, bfloat16 on ``dev`` but the ids."""
    gen = torch.Generator().manual_seed(0)
    side = int(n_img**0.5)
    img_ids = torch.zeros(side, side, 3)
    img_ids[..., 1] = torch.arange(side)[:, None]
    img_ids[..., 2] = torch.arange(side)[None, :]
    d = dict(
        hidden_states=torch.randn(1, n_img, cfg["in_channels"], generator=gen),
        encoder_hidden_states=torch.randn(1, n_txt, cfg["joint_attention_dim"], generator=gen),
        pooled_projections=torch.randn(1, cfg["pooled_projection_dim"], generator=gen),
        timestep=torch.tensor([0.5]),
        img_ids=img_ids.reshape(-1, 3),
        txt_ids=torch.zeros(n_txt, 3),
        guidance=torch.tensor([3.5]),
    )
    return {
        k: v.to(dev, torch.bfloat16 if k not in ("img_ids", "txt_ids") else v.dtype)
        for k, v in d.items()
    }
