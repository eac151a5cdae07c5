"""Dense reference of Gaussian-to-occupancy accumulation: every voxel centre against every Gaussian.

Per voxel centre ``x`` and Gaussian ``i`` (``delta = x - mu_i``, local coordinates
``u = R_i^T delta / s_i``): ``d^2 = |u|^2``, ``g_i = exp(-d^2 / 2)`` on the support of the
Gaussian (valid Gaussians only), else 0. Returns the three per-voxel sums the kernels compute:

* ``"probabilistic"`` / ``"additive"``: support ``d^2 <= k^2``; ``1 - prod_i (1 - a_i g_i)``
  (zeros for additive), ``sum_i a_i g_i`` and ``sum_i a_i g_i c_i``;
* ``"gaussianformer2"``: support the cube of voxels within ``ceil(k max_j s_ij / voxel_j)`` of
  the mean's voxel ``trunc((mu_i - origin) / voxel)``; ``1 - prod_i (1 - g_i)``, ``sum_i q_i``
  and ``sum_i q_i c_i`` with ``q_i = a_i g_i / ((2 pi)^(3/2) s_i0 s_i1 s_i2)``.

Voxels are processed in chunks; with autograd on, each chunk is checkpointed, so memory stays at
one chunk of ``[B, chunk, N]`` pairs plus the outputs.
"""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

from gaussocc_ops.geometry import quat_to_rotmat
from gaussocc_ops.types import VoxelGrid

PAIRS_PER_CHUNK = 1 << 22


def _chunk(index, centers, means, rot, scales, opacities, features, valid, cube, radius, mode):
    delta = centers[None, :, None, :] - means[:, None, :, :]
    local = torch.einsum("bnji,bpnj->bpni", rot, delta) / scales[:, None]
    d2 = (local * local).sum(-1)
    g = torch.exp(-0.5 * d2)
    zero = torch.zeros_like(d2)
    if mode == "gaussianformer2":
        lo, hi = cube  # [B, N, 3] inclusive voxel index bounds
        at = index[None, :, None, :]
        inside = ((at >= lo[:, None]) & (at <= hi[:, None])).all(-1) & valid[:, None, :]
        g = torch.where(inside, g, zero)
        norm = (2 * math.pi) ** -1.5 / scales.prod(-1)
        sem = g * (opacities * norm)[:, None, :]
        occupancy = 1 - torch.prod(1 - g, dim=-1)
    else:
        inside = (d2 <= radius**2) & valid[:, None, :]
        sem = torch.where(inside, opacities[:, None, :] * g, zero)
        if mode == "probabilistic":
            occupancy = 1 - torch.prod(1 - sem, dim=-1)
        else:
            occupancy = sem.new_zeros(sem.shape[:-1])
    return occupancy, sem.sum(-1), torch.einsum("bpn,bnc->bpc", sem, features)


def cube_bounds(means, scales, grid: VoxelGrid, k: float):
    """GaussianFormer-2's cube: inclusive voxel index bounds ``[B, N, 3]`` (not clipped)."""
    size = means.new_tensor(grid.voxel_size)
    origin = means.new_tensor(grid.origin)
    reach = scales.detach().amax(-1, keepdim=True) * k
    r = torch.ceil(reach / size).clamp(min=1)
    m = torch.trunc((means.detach() - origin) / size)
    return m - r, m + r


def accumulate_gaussians(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    features: torch.Tensor,
    valid: torch.Tensor,
    grid: VoxelGrid,
    radius: float,
    mode: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-voxel sums of ``[B, N]`` Gaussians on ``grid``.

    Args: means ``[B, N, 3]``, quats ``[B, N, 4]``, scales ``[B, N, 3]`` (> 0 where valid),
    opacities ``[B, N]``, features ``[B, N, C]``, valid ``[B, N]`` bool; ``radius`` the support's
    ``k``; ``mode`` ``"probabilistic"``, ``"additive"`` or ``"gaussianformer2"``.

    Returns: occupancy ``[B, V]`` (zeros for additive), the summed semantic weight ``[B, V]`` and
    the weighted features ``[B, V, C]`` with ``V = X * Y * Z`` in row-major ``(X, Y, Z)`` order.
    """
    centers = grid.centers(device=means.device, dtype=means.dtype).reshape(-1, 3)
    axes = [torch.arange(n, device=means.device, dtype=means.dtype) for n in grid.shape]
    index = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    rot = quat_to_rotmat(quats)
    safe_scales = torch.where(valid[..., None], scales, torch.ones_like(scales))
    cube = cube_bounds(means, safe_scales, grid, radius) if mode == "gaussianformer2" else None
    B, N = opacities.shape
    chunk = max(1, PAIRS_PER_CHUNK // max(1, B * N))
    args = (means, rot, safe_scales, opacities, features, valid, cube, float(radius), mode)
    parts = []
    for start in range(0, centers.shape[0], chunk):
        block = (index[start : start + chunk], centers[start : start + chunk])
        if torch.is_grad_enabled():
            parts.append(checkpoint(_chunk, *block, *args, use_reentrant=False))
        else:
            parts.append(_chunk(*block, *args))
    occupancy, weight, weighted = (torch.cat(p, dim=1) for p in zip(*parts, strict=True))
    return occupancy, weight, weighted
