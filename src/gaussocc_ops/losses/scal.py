"""Scene-class affinity losses (MonoScene): precision, recall and specificity of the
geometry (``geo_scal_loss``) and of each class (``sem_scal_loss``), optimised directly.

Each term is ``-log(ratio)`` (binary cross-entropy against 1). A term whose denominator set is
empty (no GT positive for recall/precision, no GT negative for specificity) is left out instead
of producing ``0/0``; a frame with no valid voxel gives 0. No NaN on empty frames.

The ratios are never formed: each term is a difference of logs of sums,
``-log(sum q t / sum q) = log sum q - log sum q t``, with ``log q`` and ``log(1 - q)`` of every
voxel taken accurately from the logits (:func:`gaussocc_ops.losses._common.log_softmax_pair`,
:func:`~gaussocc_ops.losses._common.logit_gap`). A sum too small for linear space (below
``sqrt`` of the smallest normal number: a saturated prediction) is taken as a ``logsumexp`` of
the logs instead. Value and gradient are finite for every finite logit and the gradient never
vanishes because a ratio is small; nothing is clamped.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gaussocc_ops.losses._common import (
    check_logits_target,
    log_sigmoid,
    log_softmax_pair,
    logit_gap,
)


def _masked_logsumexp(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``logsumexp`` over dim 0 of ``values [N, K]`` where ``mask``; a column with no true entry
    gets the logsumexp of all its entries instead (finite; the caller discards it), so that no
    ``-inf`` reaches the backward pass."""
    usable = mask | ~mask.any(0, keepdim=True)
    return torch.logsumexp(values.masked_fill(~usable, -math.inf), dim=0)


def _log_sums(
    log_q: torch.Tensor, log_1mq: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(log sum q, log sum q t, log sum (1 - q)(1 - t))`` per column of ``[N, K]`` inputs.

    Summed in linear space, which is exact enough while each sum is at least ``sqrt`` of the
    smallest normal number; a column with a smaller (or empty) sum is summed in log space with
    ``logsumexp`` instead (a saturated prediction), so that nothing underflows to ``log 0``."""
    q, one_minus_q = log_q.exp(), log_1mq.exp()
    t_f = t.to(q.dtype)
    sums = torch.stack([q.sum(0), (q * t_f).sum(0), (one_minus_q * (1.0 - t_f)).sum(0)])
    small = sums < math.sqrt(torch.finfo(sums.dtype).tiny)
    logs = torch.where(small, torch.ones_like(sums), sums).log()
    if bool(small.any()):
        exact = torch.stack(
            [
                torch.logsumexp(log_q, dim=0),
                _masked_logsumexp(log_q, t),
                _masked_logsumexp(log_1mq, ~t),
            ]
        )
        logs = torch.where(small, exact, logs)
    return logs[0], logs[1], logs[2]


def _affinity_terms(log_q: torch.Tensor, log_1mq: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per column ``k`` of ``[N, K]`` inputs: the sum of the defined terms ``-log precision``,
    ``-log recall`` and ``-log specificity`` of ``q_k`` against the bool targets ``t[:, k]``."""
    n_pos = t.sum(0).to(log_q.dtype)
    n_neg = (~t).sum(0).to(log_q.dtype)
    log_q_sum, log_tp, log_tn = _log_sums(log_q, log_1mq, t)
    precision = log_q_sum - log_tp
    recall = torch.log(n_pos.clamp(min=1)) - log_tp
    specificity = torch.log(n_neg.clamp(min=1)) - log_tn
    zero = torch.zeros_like(precision)
    return torch.where(n_pos > 0, precision + recall, zero) + torch.where(
        n_neg > 0, specificity, zero
    )


def _valid_logits(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N, C]`` (``C >= 2``) and labels ``[N]`` of the valid voxels."""
    x = check_logits_target(logits, target)
    C = x.shape[1]
    if C < 2:
        raise ValueError(f"logits need at least 2 classes, got {C} ({tuple(logits.shape)})")
    flat = x.movedim(1, -1).reshape(-1, C)
    flat_t = target.reshape(-1)
    if ignore_index is not None:
        keep = flat_t != ignore_index
        flat, flat_t = flat[keep], flat_t[keep]
    return flat, flat_t


def geo_scal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    empty_class: int,
    ignore_index: int | None = 255,
) -> torch.Tensor:
    """Geometric scene-class affinity loss.

    With ``q = 1 - p_empty`` (probability of occupied) and ``t = [y != empty]`` over valid voxels:
    ``-log(sum q t / sum q) - log(sum q t / sum t) - log(sum (1-q)(1-t) / sum (1-t))``, summed over
    the terms that are defined. The batch is pooled.

    Args:
        logits: ``[B, C, *S]`` scores. target: ``[B, *S]`` class indices or ``ignore_index``.
        empty_class: index of the free-space class.
        ignore_index: skipped target value.

    Example:
        >>> logits, labels = torch.randn(1, 4, 8, 8, 4), torch.randint(0, 4, (1, 8, 8, 4))
        >>> loss = geo_scal_loss(logits, labels, empty_class=0)
    """
    _check_empty_class(empty_class)
    C = logits.shape[1] if logits.dim() >= 2 else 0
    if not empty_class < C:
        raise ValueError(
            f"empty_class must lie in [0, {C}) for logits {tuple(logits.shape)}, got {empty_class}"
        )
    x, t = _valid_logits(logits, target, ignore_index)
    # p_empty = sigmoid(u) with u the empty class's logit gap: log q = log(1 - p_empty) =
    # log_sigmoid(-u) and log(1 - q) = log p_empty = log_sigmoid(u)
    u = logit_gap(x, torch.full_like(t, empty_class).unsqueeze(1), dim=1)
    occupied = (t != empty_class).unsqueeze(1)
    return _affinity_terms(log_sigmoid(-u), log_sigmoid(u), occupied).sum()


def sem_scal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int | None = 255,
) -> torch.Tensor:
    """Semantic scene-class affinity loss.

    For every class ``c`` present in the valid target voxels, the sum of the defined precision,
    recall and specificity terms of ``p_c`` against ``[y = c]``; averaged over those classes
    (0 when no class is present). The batch is pooled.

    Args:
        logits: ``[B, C, *S]`` scores. target: ``[B, *S]`` class indices or ``ignore_index``.
        ignore_index: skipped target value.

    Example:
        >>> loss = sem_scal_loss(torch.randn(1, 4, 8, 8, 4), torch.randint(0, 4, (1, 8, 8, 4)))
    """
    x, t = _valid_logits(logits, target, ignore_index)
    log_p, log_1mp = log_softmax_pair(x)
    C = log_p.shape[1]
    onehot = t.unsqueeze(1) == torch.arange(C, device=t.device)
    present = onehot.any(0)
    per_class = _affinity_terms(log_p, log_1mp, onehot)
    count = present.sum()
    total = torch.where(present, per_class, torch.zeros_like(per_class)).sum()
    return total / count.clamp(min=1).to(total.dtype)


def _check_empty_class(empty_class: int) -> None:
    if isinstance(empty_class, bool) or not isinstance(empty_class, int) or empty_class < 0:
        raise ValueError(f"empty_class must be an int >= 0, got {empty_class!r}")


class GeoScalLoss(nn.Module):
    """Module form of :func:`geo_scal_loss`.

    Shape:
        - logits: ``[B, C, *S]`` with ``C > empty_class``; target: ``[B, *S]``.
        - output: scalar.

    Example:
        >>> logits, labels = torch.randn(1, 3, 4, 4, 4), torch.randint(0, 3, (1, 4, 4, 4))
        >>> loss_fn = GeoScalLoss(empty_class=0)
        >>> loss_fn
        GeoScalLoss(empty_class=0, ignore_index=255)
        >>> loss = loss_fn(logits, labels)
    """

    def __init__(self, *, empty_class: int, ignore_index: int | None = 255) -> None:
        super().__init__()
        _check_empty_class(empty_class)
        self.empty_class = empty_class
        self.ignore_index = ignore_index

    def extra_repr(self) -> str:
        return f"empty_class={self.empty_class}, ignore_index={self.ignore_index}"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return geo_scal_loss(
            logits, target, empty_class=self.empty_class, ignore_index=self.ignore_index
        )


class SemScalLoss(nn.Module):
    """Module form of :func:`sem_scal_loss`.

    Shape:
        - logits: ``[B, C, *S]``; target: ``[B, *S]``.
        - output: scalar.

    Example:
        >>> loss_fn = SemScalLoss()
        >>> loss_fn
        SemScalLoss(ignore_index=255)
        >>> loss = loss_fn(torch.randn(1, 3, 4, 4, 4), torch.randint(0, 3, (1, 4, 4, 4)))
    """

    def __init__(self, *, ignore_index: int | None = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sem_scal_loss(logits, target, ignore_index=self.ignore_index)
