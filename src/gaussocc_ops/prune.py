"""Opacity pruning of Gaussians (GPOcc, tau = 0.01), with an optional top-k cap."""

from __future__ import annotations

from typing import NamedTuple

import torch

from gaussocc_ops.types import Gaussians


class PrunedGaussians(NamedTuple):
    """gaussians: the kept Gaussians ``[..., K, ...]`` (padded, with a ``valid`` mask);
    indices: ``[..., K]`` int64 position of each kept Gaussian in the input, ``-1`` for padding."""

    gaussians: Gaussians
    indices: torch.Tensor


def prune_by_opacity(
    gaussians: Gaussians, threshold: float = 0.01, max_count: int | None = None
) -> PrunedGaussians:
    """Drop Gaussians whose opacity is ``<= threshold`` (and invalid ones), then keep at most
    ``max_count`` per scene, those of highest opacity.

    Kept Gaussians stay in their input order. Scenes of a batch keep different numbers; the
    output has ``K = max kept`` slots per scene, filled with padding (``valid=False``, opacity 0,
    unit scales, identity rotation, zero means and features) after the kept ones. Gradients flow
    to the kept entries.

    Args:
        gaussians: batch shape ``[...]``, ``N`` Gaussians (``effective_opacities()`` is used).
        threshold: opacity threshold in ``[0, 1]``.
        max_count: optional cap ``>= 0`` per scene (ties broken by the lower index).

    Returns:
        :class:`PrunedGaussians` ``(gaussians, indices)``.

    Example:
        >>> opacities = torch.tensor([[0.5, 0.005, 0.9], [0.0, 0.2, 0.0]])
        >>> g = Gaussians.isotropic(torch.zeros(2, 3, 3), 0.1, opacities, torch.ones(2, 3, 1))
        >>> pruned = prune_by_opacity(g)
        >>> pruned.indices.tolist(), pruned.gaussians.valid.tolist()
        ([[0, 2], [1, -1]], [[True, True], [True, False]])
    """
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians must be gaussocc_ops.Gaussians, got {type(gaussians).__name__}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a float, got {type(threshold).__name__}")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if max_count is not None and (
        isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 0
    ):
        raise ValueError(f"max_count must be None or an int >= 0, got {max_count!r}")

    batch, N = gaussians.batch_shape, gaussians.num_gaussians
    B = batch.numel()
    device = gaussians.device
    opac = gaussians.effective_opacities().detach().reshape(B, N)
    keep = opac > threshold
    if gaussians.valid is not None:
        keep &= gaussians.valid.reshape(B, N)
    if max_count is not None and max_count < N:
        score = torch.where(keep, opac.double(), torch.full_like(opac, -1.0, dtype=torch.float64))
        ranked = torch.sort(score, dim=1, descending=True, stable=True).indices
        capped = torch.zeros_like(keep)
        capped.scatter_(1, ranked[:, :max_count], True)
        keep &= capped

    counts = keep.sum(1)
    K = int(counts.max().item()) if counts.numel() else 0
    arange = torch.arange(N, device=device).expand(B, N)
    order = torch.sort(torch.where(keep, arange, arange + N), dim=1, stable=True).values[
        :, :K
    ] % max(N, 1)
    slot_valid = torch.arange(K, device=device).expand(B, K) < counts[:, None]
    indices = torch.where(slot_valid, order, torch.full_like(order, -1))

    def take(t: torch.Tensor, pad: float | list[float]) -> torch.Tensor:
        tail = t.shape[len(batch) + 1 :]
        flat = t.reshape(B, N, *tail)
        idx = order.reshape(B, K, *(1 for _ in tail)).expand(B, K, *tail)
        picked = flat.gather(1, idx)
        pad_t = torch.tensor(pad, dtype=t.dtype, device=device).expand_as(picked)
        mask = slot_valid.reshape(B, K, *(1 for _ in tail))
        return torch.where(mask, picked, pad_t).reshape(*batch, K, *tail)

    C = gaussians.num_channels
    pruned = Gaussians(
        means=take(gaussians.means, [0.0, 0.0, 0.0]),
        scales=take(gaussians.scales, [1.0, 1.0, 1.0]),
        quats=take(gaussians.quats, [1.0, 0.0, 0.0, 0.0]),
        opacities=take(gaussians.opacities, 0.0),
        features=take(gaussians.features, [0.0] * C),
        valid=slot_valid.reshape(*batch, K),
    )
    return PrunedGaussians(pruned, indices.reshape(*batch, K))
