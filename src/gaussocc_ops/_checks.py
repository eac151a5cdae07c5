"""Input validation shared by every op.

Errors name the argument, what was expected and what came.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {t.dtype}, device {t.device}"


def check_tensor(
    name: str, value, *, min_dim: int = 0, last: Sequence[int | None] = ()
) -> torch.Tensor:
    """Check that ``value`` is a tensor with at least ``min_dim`` dims whose trailing sizes are
    ``last`` (None matches any size)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    need = max(min_dim, len(last))
    if value.dim() < need:
        raise ValueError(f"{name} must have at least {need} dims, got {describe(value)}")
    if last:
        tail = tuple(value.shape[value.dim() - len(last) :])
        for got, want in zip(tail, last):
            if want is not None and got != want:
                spec = ", ".join("*" if w is None else str(w) for w in last)
                raise ValueError(f"{name} must have shape [..., {spec}], got {describe(value)}")
    return value


def check_float(name: str, t: torch.Tensor) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating-point tensor, got {describe(t)}")


def check_finite(name: str, t: torch.Tensor) -> None:
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf values ({describe(t)})")


def check_same_device(**tensors: torch.Tensor) -> torch.device:
    items = [(k, v) for k, v in tensors.items() if v is not None]
    device = items[0][1].device
    for k, v in items[1:]:
        if v.device != device:
            raise ValueError(
                f"{k} is on {v.device} but {items[0][0]} is on {device}; "
                "all inputs must share a device"
            )
    return device


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (half precision is upcast)."""
    return (
        torch.float64
        if any(t is not None and t.dtype == torch.float64 for t in tensors)
        else torch.float32
    )
