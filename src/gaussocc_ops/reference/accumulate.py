"""Dense reference of Gaussian-to-occupancy accumulation: every voxel centre against every Gaussian.

Per voxel centre ``x`` and Gaussian ``i`` (``delta = x - mu_i``, local coordinates
``u = R_i^T delta / s_i``): ``d^2 = |u|^2``, ``alpha_i = a_i exp(-d^2 / 2)`` where
``d^2 <= radius_sigma^2`` and the Gaussian is valid, else 0. Returns the three per-voxel sums the
kernels compute: ``1 - prod_i (1 - alpha_i)``, ``sum_i alpha_i`` and ``sum_i alpha_i c_i``.

Voxels are processed in chunks; with autograd on, each chunk is checkpointed, so memory stays at
one chunk of ``[B, chunk, N]`` pairs plus the outputs.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from gaussocc_ops.geometry import quat_to_rotmat
from gaussocc_ops.types import VoxelGrid

PAIRS_PER_CHUNK = 1 << 22


def _chunk(centers, means, rot, scales, opacities, features, valid, radius_sigma, probabilistic):
    delta = centers[None, :, None, :] - means[:, None, :, :]
    local = torch.einsum("bnji,bpnj->bpni", rot, delta) / scales[:, None]
    d2 = (local * local).sum(-1)
    inside = (d2 <= radius_sigma**2) & valid[:, None, :]
    alpha = torch.where(inside, opacities[:, None, :] * torch.exp(-0.5 * d2), torch.zeros_like(d2))
    if probabilistic:
        occupancy = 1 - torch.prod(1 - alpha, dim=-1)
    else:
        occupancy = alpha.new_zeros(alpha.shape[:-1])
    return occupancy, alpha.sum(-1), torch.einsum("bpn,bnc->bpc", alpha, features)


def accumulate_gaussians(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    features: torch.Tensor,
    valid: torch.Tensor,
    grid: VoxelGrid,
    radius_sigma: float,
    probabilistic: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-voxel sums of ``[B, N]`` Gaussians on ``grid``.

    Args: means ``[B, N, 3]``, quats ``[B, N, 4]``, scales ``[B, N, 3]`` (> 0 where valid),
    opacities ``[B, N]``, features ``[B, N, C]``, valid ``[B, N]`` bool.

    Returns: occupancy ``[B, V]`` (zeros unless ``probabilistic``), weight ``[B, V]`` and
    weighted features ``[B, V, C]`` with ``V = X * Y * Z`` in row-major ``(X, Y, Z)`` order.
    """
    B, N = opacities.shape
    centers = grid.centers(device=means.device, dtype=means.dtype).reshape(-1, 3)
    rot = quat_to_rotmat(quats)
    safe_scales = torch.where(valid[..., None], scales, torch.ones_like(scales))
    chunk = max(1, PAIRS_PER_CHUNK // max(1, B * N))
    args = (means, rot, safe_scales, opacities, features, valid, float(radius_sigma), probabilistic)
    parts = []
    for start in range(0, centers.shape[0], chunk):
        block = centers[start : start + chunk]
        if torch.is_grad_enabled():
            parts.append(checkpoint(_chunk, block, *args, use_reentrant=False))
        else:
            parts.append(_chunk(block, *args))
    occupancy, weight, weighted = (torch.cat(p, dim=1) for p in zip(*parts, strict=True))
    return occupancy, weight, weighted
