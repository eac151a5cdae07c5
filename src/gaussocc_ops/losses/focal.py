"""Focal loss (Lin et al. 2017), softmax and sigmoid variants, for dense class maps."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gaussocc_ops._checks import check_tensor, describe
from gaussocc_ops.losses._common import (
    Reduction,
    check_class_vector,
    check_logits_target,
    check_reduction,
    log_sigmoid,
    logit_gap,
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

    Numerics: the modulating factors are evaluated in log space, ``(1 - p)^gamma =
    exp(gamma log(1 - p))``, with ``log p`` and ``log(1 - p)`` as ``log_sigmoid(+-u)`` of the
    target's logit gap ``u = x_y - logsumexp_{k != y} x_k`` (softmax, ``p_y = sigmoid(u)``) or of
    the logit (sigmoid), so value and gradient are finite for every
    finite logit and every ``gamma >= 0`` (also ``0 < gamma < 1``, where ``t^gamma`` has an
    infinite derivative at ``t = 0``), in float32 and float64, and equal the plain formula wherever
    that one is finite. A gradient is exactly 0 only where its true value underflows the dtype.

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
    _check_focal_args(mode, gamma, alpha, reduction)
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
        if C > 1:
            # p_y = sigmoid(u): log p and log(1 - p) both accurate, and (1 - p)^gamma =
            # exp(gamma log(1 - p)) keeps a finite derivative where p rounds to 1
            u = logit_gap(x, safe_target.unsqueeze(1), dim=1).squeeze(1)
            loss = -torch.exp(float(gamma) * log_sigmoid(-u)) * log_sigmoid(u)
        else:
            loss = x[:, 0] * 0.0  # one class: p = 1, the loss is 0 for every gamma
        if alpha is not None:
            a = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
            if a.dim():
                a = check_class_vector("alpha", a, C, x)[safe_target]
            loss = loss * a
        w_i = valid_f if w is None else w[safe_target] * valid_f
        return reduce_weighted(loss * w_i, w_i, reduction)

    a = 0.25 if alpha is None else float(alpha)
    onehot = F.one_hot(safe_target, C).movedim(-1, 1).to(x.dtype)
    log_p = log_sigmoid(x)
    log_1mp = log_sigmoid(-x)
    # p^gamma and (1 - p)^gamma in log space: no infinite derivative of t^gamma at t = 0
    loss = -(
        onehot * a * torch.exp(float(gamma) * log_1mp) * log_p
        + (1 - onehot) * (1 - a) * torch.exp(float(gamma) * log_p) * log_1mp
    )
    w_c = torch.ones(C, dtype=x.dtype, device=x.device) if w is None else w
    w_c = w_c.view(1, C, *([1] * (x.dim() - 2)))
    per_voxel = (loss * w_c).sum(1) * valid_f
    return reduce_weighted(per_voxel, valid_f * w_c.sum(), reduction)


def _check_focal_args(mode: str, gamma: float, alpha, reduction: str) -> None:
    check_reduction(reduction)
    if mode not in ("softmax", "sigmoid"):
        raise ValueError(f"mode must be 'softmax' or 'sigmoid', got {mode!r}")
    try:
        g = float(gamma)
    except (TypeError, ValueError):
        raise TypeError(f"gamma must be a number, got {type(gamma).__name__}") from None
    if not (math.isfinite(g) and g >= 0):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    if alpha is None:
        return
    if isinstance(alpha, torch.Tensor):
        if alpha.dim() > 1:
            raise ValueError(f"alpha must be a float or a [C] tensor, got {describe(alpha)}")
        if alpha.dim() == 1 and mode == "sigmoid":
            raise ValueError("alpha must be a float in sigmoid mode (the weight of positives)")
    elif not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be None, a float or a [C] tensor, got {type(alpha).__name__}")


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`; the arguments are checked here, once.

    ``weight`` and a per-class ``alpha`` are buffers (they follow ``.to(device)``).

    Shape:
        - logits: ``[B, C, *S]``; target: ``[B, *S]``.
        - output: scalar, or ``[B, *S]`` with ``reduction="none"``.

    Example:
        >>> loss_fn = FocalLoss(gamma=2.0, ignore_index=255)
        >>> loss_fn
        FocalLoss(mode='softmax', gamma=2.0, alpha=None, ignore_index=255, reduction='mean')
        >>> loss = loss_fn(torch.randn(1, 3, 4, 4, 4), torch.randint(0, 3, (1, 4, 4, 4)))
    """

    weight: torch.Tensor | None
    alpha_vector: torch.Tensor | None

    def __init__(
        self,
        *,
        mode: Literal["softmax", "sigmoid"] = "softmax",
        gamma: float = 2.0,
        alpha: float | torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
        ignore_index: int | None = 255,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        _check_focal_args(mode, gamma, alpha, reduction)
        if weight is not None:
            check_tensor("weight", weight, min_dim=1)
            if weight.dim() != 1:
                raise ValueError(f"weight must be a [C] tensor, got {describe(weight)}")
        self.mode = mode
        self.gamma = float(gamma)
        self.ignore_index = ignore_index
        self.reduction = reduction
        per_class = isinstance(alpha, torch.Tensor) and alpha.dim() == 1
        self.alpha = None if alpha is None or per_class else float(alpha)
        self.register_buffer("alpha_vector", alpha.detach().clone() if per_class else None)
        self.register_buffer("weight", None if weight is None else weight.detach().clone())

    def extra_repr(self) -> str:
        alpha = "[C] tensor" if self.alpha_vector is not None else self.alpha
        text = (
            f"mode={self.mode!r}, gamma={self.gamma}, alpha={alpha}, "
            f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"
        )
        return text + (", weight=[C] tensor" if self.weight is not None else "")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(
            logits,
            target,
            mode=self.mode,
            gamma=self.gamma,
            alpha=self.alpha if self.alpha_vector is None else self.alpha_vector,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )
