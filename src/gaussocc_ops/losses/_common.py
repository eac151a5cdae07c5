"""Shared helpers of the losses: validation of dense predictions, masked reductions."""

from __future__ import annotations

from typing import Literal

import torch

from gaussocc_ops._checks import check_float, check_tensor, compute_dtype, describe

Reduction = Literal["mean", "sum", "none"]


def check_reduction(reduction: str) -> None:
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
    name: str, value, num_classes: int, like: torch.Tensor
) -> torch.Tensor | None:
    """A per-class ``[C]`` tensor (or None) on ``like``'s device and dtype."""
    if value is None:
        return None
    t = torch.as_tensor(value, device=like.device)
    if t.shape != (num_classes,):
        raise ValueError(f"{name} must have shape ({num_classes},), got {describe(t)}")
    return t.to(like.dtype)


def check_mask(name: str, mask: torch.Tensor | None, shape, device) -> torch.Tensor | None:
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
