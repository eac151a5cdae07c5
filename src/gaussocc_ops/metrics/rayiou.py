"""RayIoU (SparseOcc protocol): occupancy compared along query rays instead of per voxel."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from gaussocc_ops._checks import check_tensor, describe
from gaussocc_ops.metrics._inputs import as_labels, check_class_args, check_pair
from gaussocc_ops.metrics.base import Metric, mean_over, safe_ratio
from gaussocc_ops.raycast import raycast
from gaussocc_ops.types import VoxelGrid


def ray_pattern(num_azimuths: int, pitch_degrees: Sequence[float]) -> torch.Tensor:
    """Unit directions ``[P * A, 3]`` of a spinning sensor: azimuths ``2 pi k / A`` around z,
    elevations ``pitch_degrees`` above the xy plane; ``(cos e cos a, cos e sin a, sin e)``, with
    components below 1e-12 set to exactly 0.

    Example:
        >>> dirs = ray_pattern(4, [0.0])  # four horizontal rays
        >>> dirs.tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]
    """
    az = torch.arange(num_azimuths, dtype=torch.float64) * (2 * math.pi / num_azimuths)
    el = torch.deg2rad(torch.as_tensor(list(pitch_degrees), dtype=torch.float64))
    e, a = torch.meshgrid(el, az, indexing="ij")
    dirs = torch.stack([e.cos() * a.cos(), e.cos() * a.sin(), e.sin()], dim=-1)
    # cos(pi / 2) is 6e-17, not 0: snap so that axis-aligned rays are exactly axis-aligned
    dirs = torch.where(dirs.abs() < 1e-12, torch.zeros_like(dirs), dirs)
    return dirs.reshape(-1, 3).float()


class RayIoU(Metric):
    """RayIoU: rays are cast from sensor origins through the GT and the predicted grids; the
    first non-empty voxel on each gives a (class, distance) pair.

    Only rays that hit something in the GT are evaluated. For class ``c`` and threshold ``tau``:
    ``TP = #{rays: gt class = pred class = c, |d_pred - d_gt| < tau}``,
    ``IoU_c(tau) = TP / (#gt rays of c + #pred rays of c - TP)`` with counts summed over the
    dataset; a predicted miss has no class. ``RayIoU(tau)`` averages the non-empty classes and
    ``rayiou`` the thresholds (1, 2, 4 m). Classes with a zero denominator have IoU 0 and are
    left out of the mean (``absent="exclude"``, default) or kept as 0 (``absent="zero"``).

    Args:
        grid: the :class:`VoxelGrid` of the label volumes.
        num_classes, empty_class, ignore_index: label conventions (ignored voxels are
            see-through, in both grids).
        thresholds: distance tolerances in metres.
        origins: ``[O, 3]`` default ray origins (world frame); default: the grid's centre.
        num_azimuths, pitch_degrees: the ray pattern (:func:`ray_pattern`) cast from each origin.
        max_distance: GT hits farther than this are not evaluated; predicted hits farther count
            as misses.
        backend: ray-casting backend (see :func:`gaussocc_ops.raycast`).

    Example:
        >>> grid = VoxelGrid((-4., -4., -1.), 0.5, (16, 16, 4))
        >>> gt = torch.zeros(1, 16, 16, 4, dtype=torch.long); gt[:, :2] = 1; gt[:, -2:] = 2
        >>> m = RayIoU(grid, num_classes=3, empty_class=0, num_azimuths=32, pitch_degrees=[0.0])
        >>> m.update(gt.clone(), gt)
        >>> m.compute()["rayiou"].item()
        1.0
    """

    def __init__(
        self,
        grid: VoxelGrid,
        num_classes: int,
        empty_class: int,
        *,
        ignore_index: int | None = 255,
        thresholds: Sequence[float] = (1.0, 2.0, 4.0),
        origins: torch.Tensor | None = None,
        num_azimuths: int = 360,
        pitch_degrees: Sequence[float] = tuple(float(p) for p in range(-30, 11, 2)),
        max_distance: float = math.inf,
        absent: Literal["zero", "exclude"] = "exclude",
        backend: str = "auto",
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(grid, VoxelGrid):
            raise TypeError(f"grid must be gaussocc_ops.VoxelGrid, got {type(grid).__name__}")
        check_class_args(num_classes, empty_class, absent)
        if len(thresholds) == 0 or any(not t > 0 for t in thresholds):
            raise ValueError(f"thresholds must be positive distances, got {tuple(thresholds)}")
        if num_azimuths < 1 or len(pitch_degrees) == 0:
            raise ValueError("need num_azimuths >= 1 and at least one pitch angle")
        super().__init__(device)
        self.grid = grid
        self.num_classes = num_classes
        self.empty_class = empty_class
        self.ignore_index = ignore_index
        self.thresholds = tuple(float(t) for t in thresholds)
        self.max_distance = float(max_distance)
        self.absent = absent
        self.backend = backend
        if origins is None:
            origins = torch.tensor(
                [[(lo + hi) / 2 for lo, hi in zip(grid.origin, grid.upper, strict=True)]]
            )
        check_tensor("origins", origins, min_dim=2, last=(None, 3))
        self.origins = origins.float()
        self.directions = ray_pattern(num_azimuths, pitch_degrees)
        self.add_state("gt_count", (num_classes,))
        self.add_state("pred_count", (num_classes,))
        self.add_state("tp", (len(self.thresholds), num_classes))

    def update(
        self, pred: torch.Tensor, target: torch.Tensor, origins: torch.Tensor | None = None
    ) -> None:
        """Add a batch.

        Args:
            pred: ``[B, X, Y, Z]`` int labels or ``[B, C, X, Y, Z]`` scores.
            target: ``[B, X, Y, Z]`` int labels.
            origins: optional ``[O, 3]`` or ``[B, O, 3]`` ray origins for this batch (e.g. the
                ego positions of the frames); default: the ones given at construction.
        """
        pred = as_labels("pred", pred, self.num_classes)
        target = as_labels("target", target, self.num_classes)
        check_pair(pred, target, None, 4)
        if tuple(target.shape[-3:]) != self.grid.shape:
            raise ValueError(
                f"target must be [B, X, Y, Z] with (X, Y, Z) = {self.grid.shape}, "
                f"got {describe(target)}"
            )
        B = target.shape[0]
        o = self.origins if origins is None else origins
        check_tensor("origins", o, min_dim=2, last=(None, 3))
        o = o.to(device=target.device, dtype=torch.float32)
        if o.dim() == 2:
            o = o.expand(B, -1, -1)
        if o.dim() != 3 or o.shape[0] != B:
            raise ValueError(f"origins must be [O, 3] or [{B}, O, 3], got {describe(o)}")
        d = self.directions.to(target.device)
        n_o, n_d = o.shape[1], d.shape[0]
        ray_o = o.unsqueeze(2).expand(B, n_o, n_d, 3).reshape(B, -1, 3)
        ray_d = d.expand(B, n_o, n_d, 3).reshape(B, -1, 3)
        cast = dict(
            empty_class=self.empty_class,
            ignore_index=self.ignore_index,
            max_distance=self.max_distance,
            backend=self.backend,
        )
        gt = raycast(target, self.grid, ray_o, ray_d, **cast)
        pr = raycast(pred, self.grid, ray_o, ray_d, **cast)
        keep = gt.label >= 0
        g_lab, p_lab = gt.label[keep], pr.label[keep]
        error = (pr.distance[keep] - gt.distance[keep]).abs()
        C = self.num_classes
        self._add("gt_count", torch.bincount(g_lab, minlength=C))
        self._add("pred_count", torch.bincount(p_lab[p_lab >= 0], minlength=C))
        same = g_lab == p_lab
        tp = [torch.bincount(g_lab[same & (error < t)], minlength=C) for t in self.thresholds]
        self._add("tp", torch.stack(tp))

    def compute(self) -> dict[str, torch.Tensor]:
        """``rayiou`` (mean over thresholds), ``rayiou@<t>`` per threshold and
        ``iou_per_class`` ``[T, C]``."""
        s = self.states()
        union = s["gt_count"] + s["pred_count"] - s["tp"]
        iou = safe_ratio(s["tp"], union)
        include = torch.ones_like(iou, dtype=torch.bool)
        include[:, self.empty_class] = False
        if self.absent == "exclude":
            include &= union > 0
        per_t = torch.stack([mean_over(iou[j], include[j]) for j in range(len(self.thresholds))])
        out = {"rayiou": per_t.mean(), "iou_per_class": iou}
        for j, t in enumerate(self.thresholds):
            out[f"rayiou@{t:g}"] = per_t[j]
        return out
