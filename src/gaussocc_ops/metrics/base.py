"""What the occupancy metrics share: count states on ``torchmetrics.Metric``, safe ratios."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torchmetrics

from gaussocc_ops.metrics._inputs import check_class_args


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


class ClassIoUMetric(CountMetric):
    """A :class:`CountMetric` of occupancy (``geo_counts``: TP, FP, FN) and per-class
    (``class_counts [3, C]``: TP, FP, FN) confusion counts, with the options and the IoU / mIoU
    arithmetic that :class:`SSCMetrics` and :class:`BEVIoU` share."""

    higher_is_better = True

    def __init__(
        self,
        num_classes: int,
        empty_class: int,
        *,
        ignore_index: int | None = 255,
        absent: Literal["zero", "exclude"] = "zero",
        **kwargs: Any,
    ) -> None:
        check_class_args(num_classes, empty_class, absent)
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.empty_class = empty_class
        self.ignore_index = ignore_index
        self.absent = absent
        self.add_count("geo_counts", (3,))  # TP, FP, FN
        self.add_count("class_counts", (3, num_classes))

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, empty_class={self.empty_class}, "
            f"ignore_index={self.ignore_index}, absent={self.absent!r}"
        )

    def class_iou(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(iou_per_class [C], miou)``: ``TP / (TP + FP + FN)`` per class (0 for a zero
        union) and its mean over the non-empty classes under the ``absent`` rule."""
        tp, fp, fn = self.class_counts
        union = tp + fp + fn
        iou = safe_ratio(tp, union)
        include = torch.ones_like(iou, dtype=torch.bool)
        include[self.empty_class] = False
        if self.absent == "exclude":
            include &= union > 0
        return iou, mean_over(iou, include)


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
