"""Focal loss (Lin et al. 2017), softmax and sigmoid variants, for dense class maps."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gaussocc_ops.losses._common import (
    Reduction,
    check_class_vector,
    check_logits_target,
    check_reduction,
    reduce_weighted,
)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    mode: Literal["softmax", "sigmoid"] = "softmax",
    gamma: float = 2.0,
    alpha: float | torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int | None = 255,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Focal loss over ``C`` classes.

    softmax: ``l_i = -w_{y_i} a_{y_i} (1 - p_{i,y_i})^gamma log p_{i,y_i}`` with ``p = softmax``.
    sigmoid: ``l_i = -sum_c w_c [y_ic a (1 - p_ic)^gamma log p_ic + (1 - y_ic)(1 - a) p_ic^gamma
    log(1 - p_ic)]`` with ``p = sigmoid``, ``y`` one-hot (RetinaNet form).
    ``"mean"`` divides the summed loss by the summed weights of the counted voxels
    (``sum_i w_{y_i}`` for softmax, ``sum_i sum_c w_c`` for sigmoid), as ``F.cross_entropy`` does;
    with no valid voxel the loss is 0.

    Args:
        logits: ``[B, C, *S]`` unnormalised scores (``S`` any spatial dims, e.g. ``X, Y, Z``).
        target: ``[B, *S]`` int class indices in ``[0, C)`` or ``ignore_index``.
        mode: ``"softmax"`` (multi-class) or ``"sigmoid"`` (one-vs-all).
        gamma: focusing exponent (0 gives weighted cross-entropy).
        alpha: softmax: ``None`` (1), a float or a ``[C]`` per-class factor; sigmoid: the float
            weight of positives (``None``: 0.25), negatives get ``1 - alpha``.
        weight: optional ``[C]`` per-class weights.
        ignore_index: target value that is skipped (``None``: none).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[B, *S]``, 0 at ignored voxels).

    Example:
        >>> logits = torch.randn(2, 4, 8, 8, 2)
        >>> target = torch.randint(0, 4, (2, 8, 8, 2))
        >>> bool(focal_loss(logits, target, gamma=0.0).isclose(F.cross_entropy(logits, target)))
        True
    """
    check_reduction(reduction)
    if mode not in ("softmax", "sigmoid"):
        raise ValueError(f"mode must be 'softmax' or 'sigmoid', got {mode!r}")
    if not gamma >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    x = check_logits_target(logits, target)
    C = x.shape[1]
    w = check_class_vector("weight", weight, C, x)
    valid = (
        torch.ones_like(target, dtype=torch.bool)
        if ignore_index is None
        else target != ignore_index
    )
    safe_target = torch.where(valid, target, torch.zeros_like(target)).long()
    if bool(((safe_target < 0) | (safe_target >= C)).any()):
        raise ValueError(f"target values must lie in [0, {C}) or equal ignore_index={ignore_index}")
    valid_f = valid.to(x.dtype)

    if mode == "softmax":
        log_p = F.log_softmax(x, dim=1).gather(1, safe_target.unsqueeze(1)).squeeze(1)
        p = log_p.exp()
        loss = -((1 - p).clamp(min=0) ** gamma) * log_p
        if alpha is not None:
            a = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
            if a.dim():
                a = check_class_vector("alpha", a, C, x)[safe_target]
            loss = loss * a
        w_i = valid_f if w is None else w[safe_target] * valid_f
        return reduce_weighted(loss * w_i, w_i, reduction)

    a = 0.25 if alpha is None else alpha
    if isinstance(a, torch.Tensor) and a.dim():
        raise ValueError("alpha must be a float in sigmoid mode")
    a = float(a)
    onehot = F.one_hot(safe_target, C).movedim(-1, 1).to(x.dtype)
    log_p = F.logsigmoid(x)
    log_1mp = F.logsigmoid(-x)
    p = log_p.exp()
    loss = -(onehot * a * (1 - p) ** gamma * log_p + (1 - onehot) * (1 - a) * p**gamma * log_1mp)
    w_c = torch.ones(C, dtype=x.dtype, device=x.device) if w is None else w
    w_c = w_c.view(1, C, *([1] * (x.dim() - 2)))
    per_voxel = (loss * w_c).sum(1) * valid_f
    return reduce_weighted(per_voxel, valid_f * w_c.sum(), reduction)


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`; keyword arguments are stored and reused.

    Example:
        >>> loss_fn = FocalLoss(gamma=2.0, ignore_index=255)
        >>> loss = loss_fn(torch.randn(1, 3, 4, 4, 4), torch.randint(0, 3, (1, 4, 4, 4)))
    """

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.kwargs = kwargs

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, target, **self.kwargs)
