"""Reference of soft-gated lifting (SGR-OCC Eq. 1-2), stage by stage, built on ``grid_sample``.

* :func:`project_queries`: the projection of the 3D queries (the stage before the op, which
  :mod:`gaussocc_ops.lift` runs in PyTorch), here in homogeneous ``K [R | t]`` coordinates;
* :func:`soft_gated_lift` = ``torch.ops.gaussocc.soft_gated_lift``: the gated, attention-weighted
  bilinear reads, with ``torch.nn.functional.grid_sample(align_corners=False,
  padding_mode="zeros")``, whose convention (pixel centres at ``+0.5``, zero outside the map) is
  the kernels' convention.

Independent of the kernels; autograd gives the gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def project_queries(
    queries: torch.Tensor,
    Ks: torch.Tensor,
    viewmats: torch.Tensor,
    height: int,
    width: int,
    near: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixels ``[B, Q, 2]`` ``(x, y)``, camera-frame depths ``[B, Q]`` and validity ``[B, Q]``
    (``z > near`` and the pixel inside ``[0, width] x [0, height]``) of world points
    ``queries [B, Q, 3]`` seen by ``Ks [B, 3, 3]``, ``viewmats [B, 4, 4]``."""
    homog = torch.cat([queries, torch.ones_like(queries[..., :1])], dim=-1)
    cam = (viewmats[:, None, :3, :] @ homog[..., None]).squeeze(-1)  # [B, Q, 3]
    d_proj = cam[..., 2]
    in_front = d_proj > near
    safe = torch.where(in_front[..., None], cam, torch.ones_like(cam))
    pix = (Ks[:, None] @ safe[..., None]).squeeze(-1)
    ref = pix[..., :2] / pix[..., 2:]
    size = ref.new_tensor([width, height])
    inside = ((ref >= 0) & (ref <= size)).all(dim=-1)
    return ref, d_proj, in_front & inside


def soft_gated_lift(
    features: torch.Tensor,
    depth: torch.Tensor,
    ref_points: torch.Tensor,
    d_proj: torch.Tensor,
    valid: torch.Tensor,
    offsets: torch.Tensor,
    attn: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
) -> torch.Tensor:
    """The op ``soft_gated_lift``: ``features [B, H, W, C]``, ``depth [B, H, W]``,
    ``ref_points [B, Q, 2]`` (pixels), ``d_proj [B, Q]``, ``valid [B, Q]`` bool,
    ``offsets [B, Q, K, 2]`` (pixels), ``attn [B, Q, K]``, 0-dim ``alpha`` and ``sigma``
    → ``[B, Q, C]``: ``sum_k attn_k G(d_proj, D(p_k)) F(p_k)`` with ``p_k = ref + offset_k``,
    ``G(a, d) = alpha exp(-(a - d)^2 / (2 sigma^2))``; 0 for invalid queries."""
    H, W = features.shape[1:3]
    size = ref_points.new_tensor([W, H])
    grid = 2.0 * (ref_points[:, :, None, :] + offsets) / size - 1.0  # [B, Q, K, 2]
    sample = dict(mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = F.grid_sample(features.permute(0, 3, 1, 2), grid, **sample)  # [B, C, Q, K]
    d_pred = F.grid_sample(depth[:, None], grid, **sample)[:, 0]  # [B, Q, K]
    gate = alpha * torch.exp(-((d_proj[..., None] - d_pred) ** 2) / (2.0 * sigma**2))
    weights = attn * gate * valid[..., None]
    return torch.einsum("bcqk,bqk->bqc", sampled, weights)
