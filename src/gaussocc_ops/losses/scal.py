"""Scene-class affinity losses (MonoScene): precision, recall and specificity of the
geometry (``geo_scal_loss``) and of each class (``sem_scal_loss``), optimised directly.

Each term is ``-log(ratio)`` (binary cross-entropy against 1). A term whose denominator set is
empty (no GT positive for recall/precision, no GT negative for specificity) is left out instead
of producing ``0/0``; a frame with no valid voxel gives 0. No NaN on empty frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gaussocc_ops.losses._common import check_logits_target

_EPS = 1e-7


def _neg_log_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    ratio = num / den.clamp(min=torch.finfo(num.dtype).tiny)
    return -torch.log(ratio.clamp(min=_EPS, max=1.0))


def _affinity_terms(p: torch.Tensor, t: torch.Tensor) -> list[torch.Tensor]:
    """Precision, recall, specificity terms of probabilities ``p`` vs 0/1 targets ``t``."""
    terms = []
    tp = (p * t).sum()
    if bool(t.sum() > 0):
        terms.append(_neg_log_ratio(tp, p.sum()))
        terms.append(_neg_log_ratio(tp, t.sum()))
    negatives = 1 - t
    if bool(negatives.sum() > 0):
        terms.append(_neg_log_ratio(((1 - p) * negatives).sum(), negatives.sum()))
    return terms


def _valid_probs(logits, target, ignore_index):
    x = check_logits_target(logits, target)
    probs = F.softmax(x, dim=1).movedim(1, -1).reshape(-1, x.shape[1])
    flat_t = target.reshape(-1)
    if ignore_index is not None:
        keep = flat_t != ignore_index
        probs, flat_t = probs[keep], flat_t[keep]
    return x, probs, flat_t


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
    x, probs, t = _valid_probs(logits, target, ignore_index)
    if not 0 <= empty_class < x.shape[1]:
        raise ValueError(f"empty_class must lie in [0, {x.shape[1]}), got {empty_class}")
    terms = _affinity_terms(1 - probs[:, empty_class], (t != empty_class).to(x.dtype))
    return torch.stack(terms).sum() if terms else x.sum() * 0.0


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
    x, probs, t = _valid_probs(logits, target, ignore_index)
    per_class = []
    for c in range(x.shape[1]):
        fg = (t == c).to(x.dtype)
        if not bool(fg.any()):
            continue
        per_class.append(torch.stack(_affinity_terms(probs[:, c], fg)).sum())
    return torch.stack(per_class).mean() if per_class else x.sum() * 0.0


class GeoScalLoss(nn.Module):
    """Module form of :func:`geo_scal_loss`.

    Example:
        >>> logits, labels = torch.randn(1, 3, 4, 4, 4), torch.randint(0, 3, (1, 4, 4, 4))
        >>> loss = GeoScalLoss(empty_class=0)(logits, labels)
    """

    def __init__(self, *, empty_class: int, ignore_index: int | None = 255) -> None:
        super().__init__()
        self.empty_class = empty_class
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return geo_scal_loss(
            logits, target, empty_class=self.empty_class, ignore_index=self.ignore_index
        )


class SemScalLoss(nn.Module):
    """Module form of :func:`sem_scal_loss`.

    Example:
        >>> loss = SemScalLoss()(torch.randn(1, 3, 4, 4, 4), torch.randint(0, 3, (1, 4, 4, 4)))
    """

    def __init__(self, *, ignore_index: int | None = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sem_scal_loss(logits, target, ignore_index=self.ignore_index)
