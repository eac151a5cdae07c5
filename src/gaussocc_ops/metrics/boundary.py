"""Boundary F1 of occupancy (SGR-OCC App. B.1): surface voxels matched within a tolerance."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gaussocc_ops.metrics._inputs import as_labels, check_pair, valid_voxels
from gaussocc_ops.metrics.base import CountMetric, safe_ratio


def occupancy_boundary(occupied: torch.Tensor) -> torch.Tensor:
    """Boundary voxels of ``occupied [B, X, Y, Z]``: occupied voxels with at least one
    6-connected neighbour inside the grid that is free.

    Example:
        >>> occ = torch.zeros(1, 5, 5, 5, dtype=torch.bool)
        >>> occ[0, 1:4, 1:4, 1:4] = True  # a 3x3x3 cube: all but its centre are boundary
        >>> int(occupancy_boundary(occ).sum())
        26
    """
    padded = F.pad(occupied.to(torch.uint8), (1, 1, 1, 1, 1, 1), value=1).bool()
    X, Y, Z = occupied.shape[-3:]
    free_neighbour = torch.zeros_like(occupied)
    for axis in range(3):
        for shift in (0, 2):
            sl = [slice(None)] * occupied.dim()
            for a, n in zip(range(3), (X, Y, Z), strict=True):
                start = shift if a == axis else 1
                sl[occupied.dim() - 3 + a] = slice(start, start + n)
            free_neighbour |= ~padded[tuple(sl)]
    return occupied & free_neighbour


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Voxels within Chebyshev distance ``radius`` of a true voxel of ``mask [B, X, Y, Z]``."""
    if radius == 0:
        return mask
    k = 2 * radius + 1
    return F.max_pool3d(mask.unsqueeze(1).float(), k, stride=1, padding=radius).squeeze(1).bool()


class BoundaryF1(CountMetric):
    """Boundary F1 of occupancy with a voxel tolerance.

    Boundaries are extracted from ``label != empty_class`` (ignored GT voxels count as free)
    with :func:`occupancy_boundary`; boundary voxels at ignored / masked-out positions are not
    counted. ``precision`` = fraction of predicted boundary voxels within Chebyshev distance
    ``tolerance`` of a GT boundary voxel, ``recall`` = the converse, ``f1 = 2 P R / (P + R)``;
    counts are summed over the dataset (0 when undefined). A ``torchmetrics.Metric``
    (``kwargs``: its options).

    Example:
        >>> m = BoundaryF1(empty_class=0)
        >>> t = torch.zeros(1, 6, 6, 6, dtype=torch.long); t[:, 2:4, 2:4, 2:4] = 1
        >>> m.update(t.roll(1, dims=1), t); m.compute()["f1"].item()
        1.0
    """

    higher_is_better = True

    def __init__(
        self,
        empty_class: int,
        *,
        ignore_index: int | None = 255,
        tolerance: int = 1,
        **kwargs: Any,
    ) -> None:
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0 voxels, got {tolerance}")
        super().__init__(**kwargs)
        self.empty_class = empty_class
        self.ignore_index = ignore_index
        self.tolerance = int(tolerance)
        self.add_count("counts", (4,))  # matched pred, pred, matched gt, gt

    def extra_repr(self) -> str:
        return (
            f"empty_class={self.empty_class}, ignore_index={self.ignore_index}, "
            f"tolerance={self.tolerance}"
        )

    def update(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        """Add a batch: ``pred`` ``[B, X, Y, Z]`` labels (or ``[B, C, X, Y, Z]`` scores),
        ``target`` ``[B, X, Y, Z]``, optional bool ``mask``."""
        pred = pred.argmax(1) if pred.dtype.is_floating_point else as_labels("pred", pred, 0)
        target = as_labels("target", target, 0)
        check_pair(pred, target, mask, 4)
        valid = valid_voxels(target, self.ignore_index, mask)
        t_occ = target != self.empty_class
        if self.ignore_index is not None:
            t_occ &= target != self.ignore_index
        bp = occupancy_boundary(pred != self.empty_class) & valid
        bg = occupancy_boundary(t_occ) & valid
        matched_pred = (bp & dilate(bg, self.tolerance)).sum()
        matched_gt = (bg & dilate(bp, self.tolerance)).sum()
        self.accumulate("counts", torch.stack([matched_pred, bp.sum(), matched_gt, bg.sum()]))

    def compute(self) -> dict[str, torch.Tensor]:
        """``precision``, ``recall`` and ``f1``."""
        mp, n_p, mg, n_g = self.counts
        precision, recall = safe_ratio(mp, n_p), safe_ratio(mg, n_g)
        return {
            "precision": precision,
            "recall": recall,
            "f1": safe_ratio(2 * precision * recall, precision + recall),
        }
