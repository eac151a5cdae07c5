"""Gaussian-to-occupancy accumulation: the probabilistic superposition used by GPOcc's sparse
Gaussian-to-occupancy step (ours), GaussianFormer-2's released op exactly (``localagg_prob``,
which GPOcc adopts as ``localagg_prob_gf2``), and GaussianFormer's additive variant."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch

from gaussocc_ops import _dispatch
from gaussocc_ops._checks import check_finite, compute_dtype
from gaussocc_ops._dispatch import Backend
from gaussocc_ops.types import Gaussians, VoxelGrid

Mode = Literal["probabilistic", "additive", "gaussianformer2"]
QuatConvention = Literal["gaussocc", "gaussianformer2"]
Uncovered = Literal["gaussianformer2", "gpocc"]
OP = "accumulate_gaussians"

MODES = {"additive": 0, "probabilistic": 1, "gaussianformer2": 2}
DEFAULT_RADIUS = {"additive": 3.0, "probabilistic": 3.0, "gaussianformer2": 4.0}


class OccupancyOutput(NamedTuple):
    """Dense fields over the grid, in the compute dtype (float32, or float64 for float64 input).

    occupancy: ``[..., X, Y, Z]``; ``1 - prod_i (1 - a_i g_i)`` in ``[0, 1]`` (probabilistic),
        ``1 - prod_i (1 - g_i)`` (gaussianformer2) or the density ``sum_i a_i g_i`` (additive).
    probs: ``[..., C + 1, X, Y, Z]`` class probabilities with the empty class at ``empty_class``
        (probabilistic, gaussianformer2), or ``[..., C, X, Y, Z]`` with ``sum_i a_i g_i c_i``
        (additive).
    """

    occupancy: torch.Tensor
    probs: torch.Tensor


def gaussians_to_occupancy(
    gaussians: Gaussians,
    grid: VoxelGrid,
    *,
    mode: Mode = "probabilistic",
    radius_sigma: float | None = None,
    empty_class: int = -1,
    quat_convention: QuatConvention = "gaussocc",
    uncovered: Uncovered = "gaussianformer2",
    backend: Backend = "auto",
) -> OccupancyOutput:
    """Accumulate semantic Gaussians into a voxel grid.

    At every voxel centre ``x``: ``g_i(x) = exp(-1/2 (x - mu_i)^T Sigma_i^{-1} (x - mu_i))`` on the
    support of Gaussian ``i`` (0 outside) and ``w_i(x) = a_i g_i(x)``.

    * ``"probabilistic"``: support the ellipsoid ``(x - mu_i)^T Sigma_i^{-1} (x - mu_i) <= k^2``;
      ``o(x) = 1 - prod_i (1 - w_i(x))``; class ``c`` has probability
      ``o(x) sum_i w_i c_ic / sum_i w_i`` and the empty class ``1 - o(x)`` (where
      ``sum_i w_i = 0`` the ratio ``o / sum_i w_i`` takes its limit 1, so the classes get 0).
    * ``"gaussianformer2"``: GaussianFormer-2's ``localagg_prob`` (GPOcc's
      ``localagg_prob_gf2``) exactly: support the cube of voxels ``m_j - r .. m_j + r`` around
      the mean's voxel ``m_j = trunc((mu_ij - origin_j) / voxel_j)``, ``r = ceil(k max_j s_ij /
      voxel_j)``; ``o(x) = 1 - prod_i (1 - g_i(x))`` (no opacity); semantic weights
      ``q_i(x) = a_i g_i(x) / ((2 pi)^(3/2) sqrt(det Sigma_i))``; class ``c`` gets
      ``o(x) sum_i q_i c_ic / sum_i q_i`` and the empty class ``1 - o(x)``; where
      ``sum_i q_i <= 1e-9`` the class mixture is ``1/C`` (``uncovered="gaussianformer2"``) or
      ``1/(C+1)`` (``uncovered="gpocc"``). See ``docs/accumulate.md``.
    * ``"additive"``: support the ellipsoid; ``o(x) = sum_i w_i(x)`` and
      ``probs = sum_i w_i(x) c_i`` (no empty channel; ``empty_class`` is not used).

    Args:
        gaussians: batch shape ``[...]``, ``N`` Gaussians; ``features [..., N, C]`` are class
            probabilities of the ``C`` non-empty classes (e.g. a softmax), used linearly;
            ``opacities`` in ``[0, 1]``; scales ``> 0`` for valid Gaussians. Invalid (padding)
            Gaussians contribute nothing.
        grid: the voxel grid (any origin, shape and anisotropic voxel size).
        mode: ``"probabilistic"`` (default), ``"gaussianformer2"`` or ``"additive"``.
        radius_sigma: the support's ``k``: the ellipsoid radius in standard deviations
            (probabilistic, additive; default 3), or GaussianFormer-2's ``scale_multiplier`` of
            the cube (gaussianformer2; default 4, their nuScenes config; GPOcc uses 3).
        empty_class: index of the empty class in the ``C + 1`` output channels; negative values
            count from the end (default ``-1``: last, GaussianFormer-2's layout).
        quat_convention: ``"gaussocc"`` (default): ``Sigma = R(q) S^2 R(q)^T``;
            ``"gaussianformer2"``: GaussianFormer-2's and GPOcc's ``Sigma = R(q)^T S^2 R(q)``
            (the same as passing the conjugate ``(w, -x, -y, -z)``). Any mode.
        uncovered: gaussianformer2 only: the class mixture where ``sum_i q_i <= 1e-9``:
            ``"gaussianformer2"`` (``1/C`` per class) or ``"gpocc"`` (``1/(C+1)``).
        backend: ``"reference"`` (pure PyTorch), ``"cpu"``, ``"cuda"`` (our kernels) or
            ``"auto"`` (the kernel of the input's device, the reference without the extension).

    Returns:
        :class:`OccupancyOutput` ``(occupancy, probs)``, differentiable w.r.t. means, scales,
        quats, opacities and features. ``probs.argmax(-4)`` is the semantic occupancy prediction.

    Example:
        >>> g = Gaussians.isotropic(torch.tensor([[1.0, 1.0, 1.0]]), 0.5, torch.ones(1),
        ...                         torch.tensor([[0.2, 0.8]]))
        >>> grid = VoxelGrid(origin=(0, 0, 0), voxel_size=0.5, shape=(4, 4, 4))
        >>> out = gaussians_to_occupancy(g, grid, empty_class=0)
        >>> out.occupancy.shape, out.probs.shape, out.probs.argmax(-4)[2, 2, 2].item()
        (torch.Size([4, 4, 4]), torch.Size([3, 4, 4, 4]), 2)
    """
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians must be gaussocc_ops.Gaussians, got {type(gaussians).__name__}")
    if not isinstance(grid, VoxelGrid):
        raise TypeError(f"grid must be gaussocc_ops.VoxelGrid, got {type(grid).__name__}")
    if mode not in MODES:
        raise ValueError(
            f"mode must be 'probabilistic', 'gaussianformer2' or 'additive', got {mode!r}"
        )
    if radius_sigma is None:
        radius_sigma = DEFAULT_RADIUS[mode]
    if isinstance(radius_sigma, bool) or not isinstance(radius_sigma, (int, float)):
        raise TypeError(f"radius_sigma must be a float, got {type(radius_sigma).__name__}")
    if not (radius_sigma > 0 and math.isfinite(radius_sigma)):
        raise ValueError(f"radius_sigma must be positive and finite, got {radius_sigma}")
    if quat_convention not in ("gaussocc", "gaussianformer2"):
        raise ValueError(
            f"quat_convention must be 'gaussocc' or 'gaussianformer2', got {quat_convention!r}"
        )
    if uncovered not in ("gaussianformer2", "gpocc"):
        raise ValueError(f"uncovered must be 'gaussianformer2' or 'gpocc', got {uncovered!r}")
    C = gaussians.num_channels
    if isinstance(empty_class, bool) or not isinstance(empty_class, int):
        raise TypeError(f"empty_class must be an int, got {type(empty_class).__name__}")
    if not -(C + 1) <= empty_class <= C:
        raise ValueError(
            f"empty_class must index the C + 1 = {C + 1} output channels (features have C = {C}), "
            f"got {empty_class}"
        )
    _check_values(gaussians)
    backend = _dispatch.resolve(backend, gaussians.device, OP, name="gaussians_to_occupancy")

    batch = gaussians.batch_shape
    B, N = batch.numel(), gaussians.num_gaussians
    dtype = compute_dtype(gaussians.means, gaussians.features)

    quats = gaussians.quats
    if quat_convention == "gaussianformer2":
        quats = quats * quats.new_tensor([1.0, -1.0, -1.0, -1.0])
    valid = gaussians.valid
    if valid is None:
        valid = torch.ones(B, N, dtype=torch.bool, device=gaussians.device)
    empty_index = empty_class % (C + 1)
    fill = 1.0 / (C if uncovered == "gaussianformer2" else C + 1) if C else 0.0
    occupancy, probs = _dispatch.kernel(OP, backend)(
        _dispatch.flatten(gaussians.means, batch, (N, 3), dtype),
        _dispatch.flatten(quats, batch, (N, 4), dtype),
        _dispatch.flatten(gaussians.scales, batch, (N, 3), dtype),
        _dispatch.flatten(gaussians.opacities, batch, (N,), dtype),
        _dispatch.flatten(gaussians.features, batch, (N, C), dtype),
        valid.reshape(B, N).contiguous(),
        list(grid.origin),
        list(grid.voxel_size),
        list(grid.shape),
        float(radius_sigma),
        MODES[mode],
        empty_index,
        fill,
    )[:2]
    return OccupancyOutput(
        occupancy.reshape(*batch, *grid.shape),
        probs.reshape(*batch, *grid.shape, probs.shape[-1]).movedim(-1, -4),
    )


def _check_values(gaussians: Gaussians) -> None:
    check_finite("opacities", gaussians.opacities)
    check_finite("features", gaussians.features)
    opac = gaussians.opacities.detach()
    if opac.numel() and bool(((opac < 0) | (opac > 1)).any()):
        raise ValueError(
            "opacities must lie in [0, 1], got values in "
            f"[{opac.min().item():.4g}, {opac.max().item():.4g}]"
        )
    scales = gaussians.scales.detach()
    if gaussians.valid is not None:
        scales = scales[gaussians.valid]
    if scales.numel() and bool((scales <= 0).any()):
        raise ValueError(
            "scales must be > 0 for every valid Gaussian, got a minimum of "
            f"{scales.min().item():.4g}"
        )
