"""Reference of soft-gated lifting (SGR-OCC Eq. 1-2) built on ``grid_sample``.

Independent of the kernels: the projection uses homogeneous ``K [R | t]`` coordinates and the
bilinear reads use ``torch.nn.functional.grid_sample(align_corners=False, padding_mode="zeros")``,
whose convention (pixel centres at ``+0.5``, zero outside the map) is the kernels' convention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_gated_lift(
    features: torch.Tensor,
    depth: torch.Tensor,
    queries: torch.Tensor,
    Ks: torch.Tensor,
    viewmats: torch.Tensor,
    offsets: torch.Tensor,
    attn: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
    near: float,
) -> torch.Tensor:
    """``features [B, C, H, W]``, ``depth [B, 1, H, W]``, ``queries [B, Q, 3]`` (world),
    ``Ks [B, 3, 3]`` (feature-map pixels), ``viewmats [B, 4, 4]`` (world → camera),
    ``offsets [B, Q, K, 2]`` (pixels), ``attn [B, Q, K]``, scalar ``alpha`` and ``sigma``
    → ``[B, Q, C]``."""
    H, W = features.shape[-2:]
    homog = torch.cat([queries, torch.ones_like(queries[..., :1])], dim=-1)
    cam = (viewmats[:, None, :3, :] @ homog[..., None]).squeeze(-1)  # [B, Q, 3]
    d_proj = cam[..., 2]
    in_front = d_proj > near
    safe = torch.where(in_front[..., None], cam, torch.ones_like(cam))
    pix = (Ks[:, None] @ safe[..., None]).squeeze(-1)
    ref = pix[..., :2] / pix[..., 2:]
    size = ref.new_tensor([W, H])
    inside = ((ref >= 0) & (ref <= size)).all(dim=-1)
    valid = in_front & inside

    grid = 2.0 * (ref[:, :, None, :] + offsets) / size - 1.0  # [B, Q, K, 2]
    sample = dict(mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = F.grid_sample(features, grid, **sample)
    d_pred = F.grid_sample(depth, grid, **sample)
    gate = alpha * torch.exp(-((d_proj[..., None] - d_pred[:, 0]) ** 2) / (2.0 * sigma**2))
    weights = attn * gate * valid[..., None]
    return torch.einsum("bcqk,bqk->bqc", sampled, weights)
