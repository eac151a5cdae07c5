"""Lovász-softmax loss (Berman et al. 2018): a convex surrogate of the per-class Jaccard loss."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gaussocc_ops.losses._common import check_logits_target


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. errors sorted in decreasing
    order: ``g_i = J(1..i) - J(1..i-1)`` with ``J(k) = 1 - |gt \\ first k| / |gt ∪ first k|``.

    Args:
        gt_sorted: ``[N]`` 0/1 foreground indicator (float) in the order of decreasing error.

    Returns:
        ``[N]`` weights ``g`` (``sum_i g_i = J(1..N)``).

    Example:
        >>> g = lovasz_grad(torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64))  # J: 1/2, 2/3, 1
        >>> [round(v, 6) for v in g.tolist()]
        [0.5, 0.166667, 0.333333]
    """
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def lovasz_softmax_flat(
    probs: torch.Tensor,
    labels: torch.Tensor,
    classes: Literal["present", "all"] | Sequence[int] = "present",
) -> torch.Tensor:
    """Lovász-softmax of flat predictions: the mean over the chosen classes of
    ``sum_i e_(i) g_i`` with ``e_c = |[y == c] - p_c|`` sorted decreasingly and ``g`` from
    :func:`lovasz_grad`.

    Args:
        probs: ``[N, C]`` class probabilities.
        labels: ``[N]`` int classes (no ignored entries).
        classes: ``"present"`` averages over the classes that occur in ``labels`` (0 if none),
            ``"all"`` over every class, or an explicit list of class indices.

    Returns:
        scalar loss, differentiable w.r.t. ``probs``.

    Example:
        >>> probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> lovasz_softmax_flat(probs, torch.tensor([0, 1])).item()  # perfect: 0
        0.0
    """
    C = probs.shape[1]
    if isinstance(classes, str):
        class_ids = range(C)
    else:
        class_ids = [int(c) for c in classes]
        if any(c < 0 or c >= C for c in class_ids):
            raise ValueError(f"classes must lie in [0, {C}), got {list(class_ids)}")
    losses = []
    for c in class_ids:
        fg = (labels == c).to(probs.dtype)
        if classes == "present" and not bool(fg.any()):
            continue
        errors = (fg - probs[:, c]).abs()
        errors_sorted, order = errors.sort(descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[order])))
    if not losses:
        return probs.sum() * 0.0
    return torch.stack(losses).mean()


def lovasz_softmax(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    classes: Literal["present", "all"] | Sequence[int] = "present",
    ignore_index: int | None = 255,
    per_sample: bool = False,
    from_logits: bool = True,
) -> torch.Tensor:
    """Lovász-softmax loss on dense predictions.

    For each class ``c``: errors ``e_i = |[y_i = c] - p_ic|`` sorted decreasingly, loss
    ``sum_i e_(i) (J_c(1..i) - J_c(1..i-1))`` — the Lovász extension of the Jaccard loss
    ``J_c(M) = |M| / |{y = c} ∪ M|`` evaluated at ``e``; averaged over classes.

    Args:
        logits: ``[B, C, *S]`` scores (or probabilities when ``from_logits=False``).
        target: ``[B, *S]`` class indices or ``ignore_index``.
        classes: ``"present"`` (classes in the target; 0 when the target is all ignored),
            ``"all"``, or an explicit list of class indices.
        ignore_index: skipped target value (``None``: none).
        per_sample: average the loss of each batch element instead of pooling the batch.
        from_logits: apply ``softmax`` over ``C`` first.

    Returns:
        scalar loss, differentiable w.r.t. ``logits``.

    Example:
        >>> loss = lovasz_softmax(torch.randn(2, 5, 4, 4, 4), torch.randint(0, 5, (2, 4, 4, 4)))
    """
    _check_classes(classes)
    x = check_logits_target(logits, target)
    probs = F.softmax(x, dim=1) if from_logits else x
    C = probs.shape[1]
    flat_p = probs.movedim(1, -1).reshape(probs.shape[0], -1, C)
    flat_t = target.reshape(target.shape[0], -1)

    def one(p, t):
        keep = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        return lovasz_softmax_flat(p[keep], t[keep], classes)

    if per_sample:
        if flat_p.shape[0] == 0:
            return probs.sum() * 0.0
        return torch.stack([one(p, t) for p, t in zip(flat_p, flat_t, strict=True)]).mean()
    return one(flat_p.reshape(-1, C), flat_t.reshape(-1))


def _check_classes(classes) -> None:
    if isinstance(classes, str):
        if classes not in ("present", "all"):
            raise ValueError(f"classes must be 'present', 'all' or a list of ints, got {classes!r}")
    else:
        try:
            [operator.index(c) for c in classes]
        except TypeError:
            raise TypeError(
                f"classes must be 'present', 'all' or a list of ints, got {classes!r}"
            ) from None


class LovaszSoftmaxLoss(nn.Module):
    """Module form of :func:`lovasz_softmax`; the options are checked here, once.

    Shape:
        - logits: ``[B, C, *S]`` (probabilities with ``from_logits=False``); target: ``[B, *S]``.
        - output: scalar.

    Example:
        >>> loss_fn = LovaszSoftmaxLoss(classes="present")
        >>> loss_fn
        LovaszSoftmaxLoss(classes='present', ignore_index=255, per_sample=False, from_logits=True)
        >>> loss = loss_fn(torch.randn(1, 3, 4, 4), torch.randint(0, 3, (1, 4, 4)))
    """

    def __init__(
        self,
        *,
        classes: Literal["present", "all"] | Sequence[int] = "present",
        ignore_index: int | None = 255,
        per_sample: bool = False,
        from_logits: bool = True,
    ) -> None:
        super().__init__()
        _check_classes(classes)
        self.classes = classes if isinstance(classes, str) else [operator.index(c) for c in classes]
        self.ignore_index = ignore_index
        self.per_sample = bool(per_sample)
        self.from_logits = bool(from_logits)

    def extra_repr(self) -> str:
        return (
            f"classes={self.classes!r}, ignore_index={self.ignore_index}, "
            f"per_sample={self.per_sample}, from_logits={self.from_logits}"
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return lovasz_softmax(
            logits,
            target,
            classes=self.classes,
            ignore_index=self.ignore_index,
            per_sample=self.per_sample,
            from_logits=self.from_logits,
        )
