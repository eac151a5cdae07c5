"""Reference of Gaussian-to-occupancy accumulation, stage by stage, with the signature and outputs
of the op ``torch.ops.gaussocc.accumulate_gaussians`` (schema in ``csrc/ops/accumulate.cpp``).

Dense: every voxel centre against every Gaussian. Per voxel centre ``x`` and Gaussian ``i``
(``delta = x - mu_i``, local coordinates ``u = R_i^T delta / s_i``): ``d^2 = |u|^2``,
``g_i = exp(-d^2 / 2)`` on the support of the Gaussian (valid Gaussians only), else 0. The
stages of the kernels (``csrc/include/gaussocc/accumulate_math.h``):

* :func:`cube_bounds` (``prepare``): GaussianFormer-2's support, the cube of voxels within
  ``ceil(k max_j s_ij / voxel_j)`` of the mean's voxel ``trunc((mu_i - origin) / voxel)``; the
  other modes' support is the ellipsoid ``d^2 <= k^2``;
* :func:`voxel_sums` (the accumulation): per voxel ``o = 1 - prod_i (1 - occ_i)``, the summed
  semantic weight ``W = sum_i sem_i`` and the weighted features ``S = sum_i sem_i c_i``, plus
  the op's bookkeeping of the product (``log_transmittance = sum log1p(-occ_i)`` over
  ``occ_i < 1``, ``num_opaque = #{occ_i >= 1}``); ``occ_i = sem_i = a_i g_i`` (probabilistic,
  additive) or ``occ_i = g_i``, ``sem_i = a_i g_i / ((2 pi)^(3/2) s_i0 s_i1 s_i2)``
  (gaussianformer2);
* :func:`finish_voxels` (``finish_voxel``): the sums to class probabilities;
* :func:`accumulate_gaussians` = the op: the three stages, the op's five outputs.

Autograd gives the gradients (the op's backward is held to them). Voxels are processed in chunks;
with autograd on, each chunk is checkpointed, so memory stays at one chunk of ``[B, chunk, N]``
pairs plus the outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.utils.checkpoint import checkpoint

from gaussocc_ops.geometry import quat_to_rotmat

PAIRS_PER_CHUNK = 1 << 22
# the op's mode argument
ADDITIVE, PROBABILISTIC, GAUSSIANFORMER2 = 0, 1, 2
# GaussianFormer-2: the class mixture is the constant `fill` where the summed weight is <= 1e-9
GF2_MIN_WEIGHT = 1e-9


def cube_bounds(
    means: torch.Tensor,
    scales: torch.Tensor,
    origin: Sequence[float],
    voxel_size: Sequence[float],
    k: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GaussianFormer-2's cube: inclusive voxel index bounds ``lo, hi [B, N, 3]`` (not clipped)."""
    size = means.new_tensor(list(voxel_size))
    reach = scales.detach().amax(-1, keepdim=True) * k
    r = torch.ceil(reach / size).clamp(min=1)
    m = torch.trunc((means.detach() - means.new_tensor(list(origin))) / size)
    return m - r, m + r


def _chunk(index, centers, means, rot, scales, opacities, features, valid, cube, radius, mode):
    delta = centers[None, :, None, :] - means[:, None, :, :]
    local = torch.einsum("bnji,bpnj->bpni", rot, delta) / scales[:, None]
    d2 = (local * local).sum(-1)
    g = torch.exp(-0.5 * d2)
    zero = torch.zeros_like(d2)
    if mode == GAUSSIANFORMER2:
        lo, hi = cube  # [B, N, 3] inclusive voxel index bounds
        at = index[None, :, None, :]
        inside = ((at >= lo[:, None]) & (at <= hi[:, None])).all(-1) & valid[:, None, :]
        occ = torch.where(inside, g, zero)
        norm = (2 * math.pi) ** -1.5 / scales.prod(-1)
        sem = occ * (opacities * norm)[:, None, :]
    else:
        inside = (d2 <= radius**2) & valid[:, None, :]
        sem = occ = torch.where(inside, opacities[:, None, :] * g, zero)
    with torch.no_grad():
        below = occ < 1
        log_t = torch.where(below, torch.log1p(-torch.where(below, occ, zero)), zero)
    if mode == ADDITIVE:
        occupancy = occ.new_zeros(occ.shape[:-1])
    else:
        occupancy = 1 - torch.prod(1 - occ, dim=-1)
    return (
        occupancy,
        sem.sum(-1),
        torch.einsum("bpn,bnc->bpc", sem, features),
        log_t.sum(-1),
        (occ.detach() >= 1).sum(-1, dtype=torch.int32),
    )


def voxel_sums(
    gaussians: Sequence[torch.Tensor],
    origin: Sequence[float],
    voxel_size: Sequence[float],
    shape: Sequence[int],
    radius: float,
    mode: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The accumulation stage: per-voxel sums of ``[B, N]`` Gaussians. ``gaussians`` is the op's
    first six arguments ``(means, quats, scales, opacities, features, valid)``; the others are the
    op's.

    Returns:
        ``occupancy [B, V]`` (``1 - prod_i (1 - occ_i)``; zeros in the additive mode, whose op
        returns ``weight`` as its occupancy), ``weight [B, V]`` (``sum_i sem_i``),
        ``weighted [B, V, C]`` (``sum_i sem_i c_i``), ``log_transmittance [B, V]`` and
        ``num_opaque [B, V]`` int32 (the last two without gradient); ``V = X * Y * Z``, row-major
        over ``(X, Y, Z)``.
    """
    means, quats, scales, opacities, features, valid = gaussians
    dtype, device = means.dtype, means.device
    axes = [torch.arange(n, device=device, dtype=dtype) for n in shape]
    index = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    centers = means.new_tensor(list(origin)) + (index + 0.5) * means.new_tensor(list(voxel_size))
    rot = quat_to_rotmat(quats)
    safe_scales = torch.where(valid[..., None], scales, torch.ones_like(scales))
    cube = None
    if mode == GAUSSIANFORMER2:
        cube = cube_bounds(means, safe_scales, origin, voxel_size, radius)
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
    occupancy, weight, weighted, log_t, num_opaque = (
        torch.cat(p, dim=1) for p in zip(*parts, strict=True)
    )
    return occupancy, weight, weighted, log_t, num_opaque


def finish_voxels(
    occupancy: torch.Tensor,
    weight: torch.Tensor,
    weighted: torch.Tensor,
    mode: int,
    empty_index: int,
    fill: float,
) -> torch.Tensor:
    """The finishing stage (probabilistic modes): ``[B, V]`` occupancy, ``[B, V]`` weight and
    ``[B, V, C]`` weighted features -> ``probs [B, V, C + 1]``, the empty class ``1 - o`` at
    ``empty_index``. Class ``c`` gets ``o S_c / W`` where the mixture is defined (``W`` above
    ``sqrt`` of the dtype's smallest normal number; gaussianformer2: above 1e-9); elsewhere
    ``S_c`` (probabilistic: the ratio ``o / W`` at its limit 1) or ``o fill`` (gaussianformer2).
    """
    if mode == GAUSSIANFORMER2:
        covered = weight > GF2_MIN_WEIGHT
        safe = torch.where(covered, weight, torch.ones_like(weight))
        mixture = torch.where(
            covered.unsqueeze(-1), weighted / safe.unsqueeze(-1), torch.full_like(weighted, fill)
        )
        classes = mixture * occupancy.unsqueeze(-1)
    else:
        covered = weight > torch.finfo(weight.dtype).tiny ** 0.5
        ratio = torch.where(
            covered,
            occupancy / torch.where(covered, weight, torch.ones_like(weight)),
            torch.ones_like(weight),
        )
        classes = weighted * ratio.unsqueeze(-1)
    empty = (1 - occupancy).unsqueeze(-1)
    return torch.cat([classes[..., :empty_index], empty, classes[..., empty_index:]], dim=-1)


def accumulate_gaussians(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    features: torch.Tensor,
    valid: torch.Tensor,
    origin: Sequence[float],
    voxel_size: Sequence[float],
    shape: Sequence[int],
    radius: float,
    mode: int,
    empty_index: int,
    fill: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accumulate ``[B, N]`` Gaussians on a grid (the op ``accumulate_gaussians``).

    Args: means ``[B, N, 3]``, quats ``[B, N, 4]``, scales ``[B, N, 3]`` (> 0 where valid),
    opacities ``[B, N]``, features ``[B, N, C]``, valid ``[B, N]`` bool; the grid's ``origin``,
    ``voxel_size`` (3 floats) and ``shape`` ``(X, Y, Z)``; ``radius`` the support's ``k``;
    ``mode`` 0 (additive), 1 (probabilistic) or 2 (gaussianformer2); ``empty_index`` the output
    channel of the empty class and ``fill`` GaussianFormer-2's mixture where ``W <= 1e-9``
    (probabilistic modes).

    Returns:
        ``occupancy [B, V]`` (additive: the density ``sum_i a_i g_i``), ``probs [B, V, C + 1]``
        (additive: ``[B, V, C]``, ``sum_i a_i g_i c_i``), and the state the op's backward reads,
        without gradient: ``weight``, ``log_transmittance`` ``[B, V]`` and ``num_opaque [B, V]``
        int32 (``[B, 0]`` each in the additive mode); ``V = X * Y * Z``, row-major.
    """
    if mode not in (ADDITIVE, PROBABILISTIC, GAUSSIANFORMER2):
        raise ValueError(f"mode must be 0, 1 or 2, got {mode}")
    gaussians = (means, quats, scales, opacities, features, valid)
    occupancy, weight, weighted, log_t, num_opaque = voxel_sums(
        gaussians, origin, voxel_size, shape, radius, mode
    )
    if mode == ADDITIVE:
        empty = weight.new_zeros(weight.shape[0], 0)
        return weight, weighted, empty, empty.clone(), empty.to(torch.int32)
    probs = finish_voxels(occupancy, weight, weighted, mode, empty_index, fill)
    return occupancy, probs, weight.detach(), log_t, num_opaque
