"""Huber depth loss with validity masks (GPOcc L_depth)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gaussocc_ops._checks import check_float_tensors, compute_dtype, describe
from gaussocc_ops.losses._common import Reduction, check_mask, check_reduction, reduce_weighted


def depth_huber_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    delta: float = 1.0,
    min_depth: float = 0.0,
    max_depth: float = float("inf"),
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Huber loss between predicted and target depth over valid pixels.

    ``h(r) = r^2 / 2`` for ``|r| <= delta``, ``delta (|r| - delta / 2)`` otherwise, with
    ``r = pred - target``; a pixel is valid where ``mask`` (if given) is true and
    ``min_depth < target < max_depth`` with a finite target. ``"mean"`` averages over valid
    pixels (0 when there are none).

    Args:
        pred: ``[...]`` predicted depth (any shape).
        target: ``[...]`` ground-truth depth, same shape (0, negative or non-finite = missing).
        mask: optional ``[...]`` bool validity mask.
        delta: Huber threshold (metres), > 0.
        min_depth, max_depth: valid target range (exclusive).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (0 at invalid pixels).

    Example:
        >>> pred, target = torch.full((2, 4, 4), 2.0), torch.full((2, 4, 4), 4.0)
        >>> float(depth_huber_loss(pred, target, delta=1.0))
        1.5
    """
    _check_depth_args(delta, min_depth, max_depth, reduction)
    check_float_tensors(pred=pred, target=target)
    if pred.shape != target.shape:
        raise ValueError(
            f"target must have the shape of pred {tuple(pred.shape)}, got {describe(target)}"
        )
    if target.device != pred.device:
        raise ValueError(f"target is on {target.device} but pred is on {pred.device}")
    check_mask("mask", mask, pred.shape, pred.device)
    dtype = compute_dtype(pred, target)
    p, t = pred.to(dtype), target.to(dtype)
    valid = torch.isfinite(t) & (t > min_depth) & (t < max_depth)
    if mask is not None:
        valid &= mask
    safe_t = torch.where(valid, t, p.detach())
    per_pixel = F.huber_loss(p, safe_t, reduction="none", delta=delta) * valid
    return reduce_weighted(per_pixel, valid.to(dtype), reduction)


def _check_depth_args(delta: float, min_depth: float, max_depth: float, reduction: str) -> None:
    check_reduction(reduction)
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    if not min_depth < max_depth:
        raise ValueError(f"need min_depth < max_depth, got {min_depth} and {max_depth}")


class DepthHuberLoss(nn.Module):
    """Module form of :func:`depth_huber_loss`; the options are checked here, once.

    Shape:
        - pred, target, mask: ``[...]`` of one shape (mask bool, optional).
        - output: scalar, or ``[...]`` with ``reduction="none"``.

    Example:
        >>> loss_fn = DepthHuberLoss(delta=0.5, max_depth=80.0)
        >>> loss_fn
        DepthHuberLoss(delta=0.5, min_depth=0.0, max_depth=80.0, reduction='mean')
        >>> loss = loss_fn(torch.rand(2, 8, 8) * 10, torch.rand(2, 8, 8) * 10)
    """

    def __init__(
        self,
        *,
        delta: float = 1.0,
        min_depth: float = 0.0,
        max_depth: float = float("inf"),
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        _check_depth_args(delta, min_depth, max_depth, reduction)
        self.delta = float(delta)
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return (
            f"delta={self.delta}, min_depth={self.min_depth}, max_depth={self.max_depth}, "
            f"reduction={self.reduction!r}"
        )

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return depth_huber_loss(
            pred,
            target,
            mask,
            delta=self.delta,
            min_depth=self.min_depth,
            max_depth=self.max_depth,
            reduction=self.reduction,
        )
