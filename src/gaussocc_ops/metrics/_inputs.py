"""Validation of the dense label inputs shared by the occupancy metrics."""

from __future__ import annotations

import torch

from gaussocc_ops._checks import check_tensor, describe


def as_labels(name: str, value: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer labels as given, or the argmax over dim 1 of float scores ``[B, C, ...]``."""
    check_tensor(name, value)
    if value.dtype.is_floating_point:
        if value.dim() < 2 or value.shape[1] != num_classes:
            raise ValueError(
                f"{name} scores must be [B, {num_classes}, ...], got {describe(value)}"
            )
        return value.argmax(1)
    if value.dtype == torch.bool or value.is_complex():
        raise TypeError(f"{name} must hold integer labels or float scores, got {describe(value)}")
    return value.long()


def check_pair(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, min_dim: int
) -> None:
    """Labels ``pred`` and ``target`` of one shape (``>= min_dim`` dims) and device, and an
    optional bool ``mask`` of that shape."""
    if target.dim() < min_dim:
        raise ValueError(f"target must have at least {min_dim} dims, got {describe(target)}")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred labels {tuple(pred.shape)} and target {tuple(target.shape)} must match"
        )
    if pred.device != target.device:
        raise ValueError(f"pred is on {pred.device} but target is on {target.device}")
    if mask is not None:
        check_tensor("mask", mask)
        if mask.dtype != torch.bool or mask.shape != target.shape:
            raise ValueError(
                f"mask must be bool with shape {tuple(target.shape)}, got {describe(mask)}"
            )
        if mask.device != target.device:
            raise ValueError(f"mask is on {mask.device} but target is on {target.device}")


def check_class_args(num_classes: int, empty_class: int, absent: str) -> None:
    """``num_classes >= 1``, ``empty_class`` in ``[0, num_classes)``, ``absent`` a known rule."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not 0 <= empty_class < num_classes:
        raise ValueError(f"empty_class must lie in [0, {num_classes}), got {empty_class}")
    if absent not in ("zero", "exclude"):
        raise ValueError(f"absent must be 'zero' or 'exclude', got {absent!r}")


def valid_voxels(
    target: torch.Tensor, ignore_index: int | None, mask: torch.Tensor | None
) -> torch.Tensor:
    """Bool ``[...]``: ``target != ignore_index`` (everything with ``None``) and ``mask``."""
    valid = (
        torch.ones_like(target, dtype=torch.bool)
        if ignore_index is None
        else target != ignore_index
    )
    return valid if mask is None else valid & mask
