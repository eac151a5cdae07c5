"""What the occupancy metrics share: count states on ``torchmetrics.Metric``, safe ratios."""

from __future__ import annotations

import torch
import torchmetrics


class CountMetric(torchmetrics.Metric):
    """A ``torchmetrics.Metric`` whose states are additive float64 count tensors.

    Each state is registered with ``add_state(..., dist_reduce_fx="sum")``: ``compute()`` sums
    the states over the ``torch.distributed`` ranks before dividing (torchmetrics' ``sync``),
    ``forward()`` returns the value of the batch and accumulates it, ``reset()`` zeroes the
    states, ``.to(device)`` moves them. Counts are float64, exact up to 2^53.

    ``kwargs`` are torchmetrics' options (``sync_on_compute``, ``process_group``,
    ``dist_sync_on_step``, ``compute_with_cache``, ...).
    """

    full_state_update = False
    is_differentiable = False

    def add_count(self, name: str, shape: tuple[int, ...]) -> None:
        """Register a float64 count state of ``shape``, zero at reset, summed across ranks."""
        self.add_state(name, default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def accumulate(self, name: str, value: torch.Tensor) -> None:
        """Add ``value`` (any numeric dtype, broadcastable) to the count state ``name``."""
        state = getattr(self, name)
        state += value.detach().to(device=state.device, dtype=torch.float64)


def safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with 0 where ``den == 0`` (same shapes, or broadcastable).

    Example:
        >>> safe_ratio(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.0])).tolist()
        [0.5, 0.0]
    """
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.zeros_like(num))


def mean_over(values: torch.Tensor, include: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [...]`` where the bool mask ``include [...]`` holds (0 when nothing is).

    Example:
        >>> mean_over(torch.tensor([1.0, 2.0, 9.0]), torch.tensor([True, True, False])).item()
        1.5
    """
    n = include.sum()
    return torch.where(n > 0, (values * include).sum() / n.clamp(min=1), values.new_zeros(()))
