"""Gaussian-to-occupancy accumulation (GaussianFormer-2 probabilistic superposition, as used by
GPOcc's sparse Gaussian-to-occupancy; GaussianFormer's additive variant)."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch

from gaussocc_ops import _ext
from gaussocc_ops._checks import check_finite, compute_dtype
from gaussocc_ops.reference import accumulate as ref
from gaussocc_ops.types import Gaussians, VoxelGrid

Mode = Literal["probabilistic", "additive"]
Backend = Literal["auto", "reference", "cpu", "cuda"]
OP = "accumulate_gaussians"


class OccupancyOutput(NamedTuple):
    """Dense fields over the grid, in the compute dtype (float32, or float64 for float64 input).

    occupancy: ``[..., X, Y, Z]``; ``1 - prod_i (1 - a_i g_i)`` in ``[0, 1]`` (probabilistic) or
        the density ``sum_i a_i g_i`` (additive).
    probs: ``[..., C + 1, X, Y, Z]`` class probabilities with the empty class at ``empty_class``
        (probabilistic), or ``[..., C, X, Y, Z]`` with ``sum_i a_i g_i c_i`` (additive).
    """

    occupancy: torch.Tensor
    probs: torch.Tensor


def gaussians_to_occupancy(
    gaussians: Gaussians,
    grid: VoxelGrid,
    *,
    mode: Mode = "probabilistic",
    radius_sigma: float = 3.0,
    empty_class: int = -1,
    backend: Backend = "auto",
) -> OccupancyOutput:
    """Accumulate semantic Gaussians into a voxel grid.

    At every voxel centre ``x``: ``g_i(x) = exp(-1/2 (x - mu_i)^T Sigma_i^{-1} (x - mu_i))`` inside
    the ellipsoid ``(x - mu_i)^T Sigma_i^{-1} (x - mu_i) <= radius_sigma^2`` (0 outside) and
    ``w_i(x) = a_i g_i(x)``.

    * ``"probabilistic"``: ``o(x) = 1 - prod_i (1 - w_i(x))``; class ``c`` has probability
      ``o(x) sum_i w_i c_ic / sum_i w_i`` and the empty class ``1 - o(x)`` (where
      ``sum_i w_i = 0`` the ratio ``o / sum_i w_i`` takes its limit 1, so the classes get 0).
    * ``"additive"``: ``o(x) = sum_i w_i(x)`` and ``probs = sum_i w_i(x) c_i`` (no empty channel;
      ``empty_class`` is not used).

    Args:
        gaussians: batch shape ``[...]``, ``N`` Gaussians; ``features [..., N, C]`` are class
            probabilities of the ``C`` non-empty classes (e.g. a softmax), used linearly;
            ``opacities`` in ``[0, 1]``; scales ``> 0`` for valid Gaussians. Invalid (padding)
            Gaussians contribute nothing.
        grid: the voxel grid (any origin, shape and anisotropic voxel size).
        mode: ``"probabilistic"`` or ``"additive"``.
        radius_sigma: support radius ``k`` in standard deviations (Mahalanobis distance).
        empty_class: index of the empty class in the ``C + 1`` output channels; negative values
            count from the end (default ``-1``: last).
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
    if mode not in ("probabilistic", "additive"):
        raise ValueError(f"mode must be 'probabilistic' or 'additive', got {mode!r}")
    if isinstance(radius_sigma, bool) or not isinstance(radius_sigma, (int, float)):
        raise TypeError(f"radius_sigma must be a float, got {type(radius_sigma).__name__}")
    if not (radius_sigma > 0 and math.isfinite(radius_sigma)):
        raise ValueError(f"radius_sigma must be positive and finite, got {radius_sigma}")
    C = gaussians.num_channels
    if isinstance(empty_class, bool) or not isinstance(empty_class, int):
        raise TypeError(f"empty_class must be an int, got {type(empty_class).__name__}")
    if not -(C + 1) <= empty_class <= C:
        raise ValueError(
            f"empty_class must index the C + 1 = {C + 1} output channels (features have C = {C}), "
            f"got {empty_class}"
        )
    _check_values(gaussians)
    backend = _resolve_backend(backend, gaussians.device)

    batch = gaussians.batch_shape
    B, N = batch.numel(), gaussians.num_gaussians
    dtype = compute_dtype(gaussians.means, gaussians.features)

    def flat(t, tail):
        return t.to(dtype).reshape(B, *tail).contiguous()

    valid = gaussians.valid
    if valid is None:
        valid = torch.ones(B, N, dtype=torch.bool, device=gaussians.device)
    args = (
        flat(gaussians.means, (N, 3)),
        flat(gaussians.quats, (N, 4)),
        flat(gaussians.scales, (N, 3)),
        flat(gaussians.opacities, (N,)),
        flat(gaussians.features, (N, C)),
        valid.reshape(B, N).contiguous(),
    )
    probabilistic = mode == "probabilistic"
    if backend == "reference":
        occupancy, weight, weighted = ref.accumulate_gaussians(
            *args, grid, radius_sigma, probabilistic
        )
    else:
        occupancy, weight, weighted = torch.ops.gaussocc.accumulate_gaussians(
            *args,
            list(grid.origin),
            list(grid.voxel_size),
            list(grid.shape),
            float(radius_sigma),
            probabilistic,
        )[:3]

    if probabilistic:
        occupancy, probs = _class_probabilities(occupancy, weight, weighted, empty_class % (C + 1))
    else:
        occupancy, probs = weight, weighted
    return OccupancyOutput(
        occupancy.reshape(*batch, *grid.shape),
        probs.reshape(*batch, *grid.shape, probs.shape[-1]).movedim(-1, -4),
    )


def _class_probabilities(occupancy, weight, weighted, empty_index):
    """``[B, V]`` occupancy and sums -> occupancy and ``[B, V, C + 1]`` probabilities."""
    tiny = torch.finfo(weight.dtype).tiny ** 0.5
    covered = weight > tiny
    ratio = torch.where(
        covered,
        occupancy / torch.where(covered, weight, torch.ones_like(weight)),
        torch.ones_like(weight),
    )
    classes = weighted * ratio.unsqueeze(-1)
    empty = (1 - occupancy).unsqueeze(-1)
    probs = torch.cat([classes[..., :empty_index], empty, classes[..., empty_index:]], dim=-1)
    return occupancy, probs


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


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in ("auto", "reference", "cpu", "cuda"):
        raise ValueError(
            f"backend must be one of 'auto', 'reference', 'cpu', 'cuda', got {backend!r}"
        )
    if backend == "auto":
        if _ext.kernel_available(OP, device):
            return device.type
        _ext.warn_fallback("gaussians_to_occupancy")
        return "reference"
    if backend != "reference":
        if device.type != backend:
            raise ValueError(f"backend={backend!r} needs tensors on {backend}, got {device}")
        if not _ext.kernel_available(OP, device):
            raise RuntimeError(
                f"backend={backend!r} is not available: the {backend.upper()} kernels were not "
                "compiled (gaussocc_ops.build_info(): "
                f"{_ext.build_info()['error'] or 'no such kernel'})"
            )
    return backend


def _register_autograd() -> None:
    """Backward formula and fake (meta) kernels of the compiled accumulation ops."""
    lib = "gaussocc::"

    @torch.library.register_fake(lib + OP)
    def _(
        means,
        quats,
        scales,
        opacities,
        features,
        valid,
        origin,
        voxel_size,
        shape,
        radius_sigma,
        probabilistic,
    ):
        B, N, C = features.shape
        V = shape[0] * shape[1] * shape[2]
        return (
            means.new_empty(B, V),
            means.new_empty(B, V),
            means.new_empty(B, V, C),
            means.new_empty(B, V),
            means.new_empty(B, V, dtype=torch.int32),
        )

    def setup(ctx, inputs, output):
        means, quats, scales, opacities, features, valid, origin, voxel_size, shape, k, prob = (
            inputs
        )
        ctx.save_for_backward(
            means, quats, scales, opacities, features, valid, output[3], output[4]
        )
        ctx.cfg = (origin, voxel_size, shape, k, prob)
        ctx.mark_non_differentiable(output[3], output[4])

    def backward(ctx, g_occ, g_weight, g_weighted, *_):
        means, quats, scales, opacities, features, valid, log_t, n_opaque = ctx.saved_tensors

        def grad(g, like):
            return torch.zeros_like(like) if g is None else g.contiguous()

        grads = torch.ops.gaussocc.accumulate_gaussians_backward(
            means,
            quats,
            scales,
            opacities,
            features,
            valid,
            log_t,
            n_opaque,
            grad(g_occ, log_t),
            grad(g_weight, log_t),
            grad(g_weighted, log_t.unsqueeze(-1).expand(*log_t.shape, features.shape[-1])),
            *ctx.cfg,
        )
        return (*grads, None, None, None, None, None, None)

    torch.library.register_autograd(lib + OP, backward, setup_context=setup)

    @torch.library.register_fake(lib + OP + "_backward")
    def _(
        means,
        quats,
        scales,
        opacities,
        features,
        valid,
        log_t,
        n_opaque,
        g_occ,
        g_weight,
        g_weighted,
        origin,
        voxel_size,
        shape,
        radius_sigma,
        probabilistic,
    ):
        return (
            torch.empty_like(means),
            torch.empty_like(quats),
            torch.empty_like(scales),
            torch.empty_like(opacities),
            torch.empty_like(features),
        )


_ext.on_load(OP, _register_autograd)
