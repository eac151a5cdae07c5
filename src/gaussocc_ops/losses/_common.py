"""Shared helpers of the losses: validation of dense predictions, masked reductions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from gaussocc_ops._checks import check_float, check_tensor, compute_dtype, describe

Reduction = Literal["mean", "sum", "none"]


def log_sigmoid(z: torch.Tensor) -> torch.Tensor:
    """``log sigmoid(z) = -softplus(-z)``, accurate for every finite ``z`` (float32 and float64).

    The same function as ``F.logsigmoid``, which costs a constant ~10 ms per call on the CPU
    builds of torch 2.13 whatever the input size; softplus's linear branch starts at
    ``-z > 40``, where ``log1p(e^z)`` is below float64's resolution of ``-z``.

    Example:
        >>> log_sigmoid(torch.tensor([-100.0, 0.0, 100.0])).tolist()
        [-100.0, -0.6931471824645996, -3.783505853677006e-44]
    """
    return -F.softplus(-z, beta=1.0, threshold=40.0)


def logit_gap(x: torch.Tensor, index: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``u = x_y - logsumexp_{k != y} x_k`` for the class ``y = index`` along ``dim``.

    ``p_y = sigmoid(u)`` for ``p = softmax(x)``, so ``log p_y = log_sigmoid(u)`` and
    ``log(1 - p_y) = log_sigmoid(-u)``: both accurate at either end of ``(0, 1)``, with finite
    gradients for finite logits (``log_softmax`` alone rounds ``log p_y`` to 0 once ``p_y`` is
    within an ulp of 1). Needs at least two classes.

    Args:
        x: ``[..., C, ...]`` logits with ``C >= 2`` along ``dim``.
        index: integer class indices with ``x``'s shape and size 1 along ``dim``.
        dim: the class dimension.

    Returns:
        ``u`` with ``index``'s shape, in ``x``'s dtype.

    Example:
        >>> x = torch.tensor([[20.0, 0.0, 0.0]])
        >>> u = logit_gap(x, torch.tensor([[0]]))  # 20 - log 2
        >>> f"{log_sigmoid(u).item():.4g}"  # log p_0 = -2 e^-20, not 0
        '-4.122e-09'
    """
    rest = torch.logsumexp(x.scatter(dim, index, -math.inf), dim, keepdim=True)
    return x.gather(dim, index) - rest


def log_softmax_pair(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p, log(1 - p))`` for ``p = softmax(x)`` over the classes, both accurate and finite
    with finite gradients for finite ``x``.

    Every class but the most likely one has ``p <= 1/2``: ``log p`` from ``log_softmax`` and
    ``log(1 - p) = log1p(-p)`` are accurate there. For the most likely class, ``1 - p`` is the
    sum ``r`` of the other probabilities (no cancellation): ``log(1 - p) = log r`` and
    ``log p = log1p(-r)``, so neither is lost when ``p`` rounds to 1. Rows where ``r`` is below
    ``sqrt`` of the dtype's smallest normal number (a winning margin above ~44 in float32, ~354
    in float64), whose ``r`` would lose digits or underflow, take the winner's values from its
    :func:`logit_gap` ``u`` instead: ``log p = log_sigmoid(u)``, ``log(1 - p) = log_sigmoid(-u)``.

    Args:
        x: ``[N, C]`` logits, ``C >= 2``.

    Returns:
        two ``[N, C]`` tensors of ``x``'s dtype.

    Example:
        >>> log_p, log_1mp = log_softmax_pair(torch.tensor([[0.0, 200.0]], dtype=torch.float64))
        >>> [f"{v:.4g}" for v in log_1mp[0].tolist()]  # the winner's: -200, not log(0)
        ['-1.384e-87', '-200']
    """
    log_p = torch.log_softmax(x, dim=1)
    p = log_p.exp()
    top_index = x.argmax(1, keepdim=True)
    top = torch.zeros_like(x).scatter_(1, top_index, 1.0)  # 0/1, as a factor
    others = 1.0 - top
    rest = (p * others).sum(1, keepdim=True)  # 1 - p of the winner
    exact = rest < math.sqrt(torch.finfo(x.dtype).tiny)
    # rows left to the exact branch get a harmless value, so that no gradient is 0 * inf
    safe_rest = torch.where(exact, torch.full_like(rest, 0.5), rest)
    log_1mp = torch.log1p(-p * others) + top * safe_rest.log()
    log_p = log_p * others + top * torch.log1p(-safe_rest)
    if bool(exact.any()):
        rows = exact.squeeze(1).nonzero().squeeze(1)
        u = logit_gap(x[rows], top_index[rows], dim=1)
        cols = top_index[rows].squeeze(1)
        log_p = log_p.index_put((rows, cols), log_sigmoid(u).squeeze(1))
        log_1mp = log_1mp.index_put((rows, cols), log_sigmoid(-u).squeeze(1))
    return log_p, log_1mp


def check_reduction(reduction: str) -> None:
    """Raise ``ValueError`` unless ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def check_logits_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``logits [B, C, *S]`` float and ``target [B, *S]`` integer; returns logits upcast to the
    compute dtype."""
    check_tensor("logits", logits, min_dim=2)
    check_float("logits", logits)
    check_tensor("target", target)
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise TypeError(
            f"target must be an integer tensor of class indices, got {describe(target)}"
        )
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target must have shape {expected} to match logits {tuple(logits.shape)}, "
            f"got {describe(target)}"
        )
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits is on {logits.device}")
    return logits.to(compute_dtype(logits))


def check_class_vector(
    name: str, value: torch.Tensor | Sequence[float] | None, num_classes: int, like: torch.Tensor
) -> torch.Tensor | None:
    """A per-class ``[C]`` tensor (or None) on ``like``'s device and dtype."""
    if value is None:
        return None
    t = torch.as_tensor(value, device=like.device)
    if t.shape != (num_classes,):
        raise ValueError(f"{name} must have shape ({num_classes},), got {describe(t)}")
    return t.to(like.dtype)


def check_mask(
    name: str, mask: torch.Tensor | None, shape: Sequence[int], device: torch.device
) -> torch.Tensor | None:
    """``mask`` (or None) checked to be a bool tensor of ``shape`` on ``device``."""
    if mask is None:
        return None
    check_tensor(name, mask)
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor, got {describe(mask)}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {describe(mask)}")
    if mask.device != device:
        raise ValueError(f"{name} is on {mask.device} but the inputs are on {device}")
    return mask


def reduce_weighted(values: torch.Tensor, weights: torch.Tensor, reduction: str) -> torch.Tensor:
    """``sum(values) / sum(weights)`` for "mean" (0 when every weight is 0), ``sum(values)`` for
    "sum", ``values`` for "none". ``values`` must already be 0 wherever the weight is 0."""
    if reduction == "none":
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    return total / weights.sum().clamp(min=torch.finfo(values.dtype).tiny)
