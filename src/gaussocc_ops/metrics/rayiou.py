"""RayIoU: occupancy compared along query rays instead of per voxel, under SparseOcc's protocol
(the Occ3D leaderboard's numbers) or this library's own ("entry", any grid)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch

from gaussocc_ops._checks import check_float, check_tensor, describe
from gaussocc_ops.metrics import _sparseocc
from gaussocc_ops.metrics._inputs import as_labels, check_class_args, check_pair
from gaussocc_ops.metrics._sparseocc import sparseocc_ray_pattern
from gaussocc_ops.metrics.base import CountMetric, mean_over, safe_ratio
from gaussocc_ops.raycast import raycast
from gaussocc_ops.types import VoxelGrid

Protocol = Literal["entry", "sparseocc"]
_ENTRY_PITCHES = tuple(float(p) for p in range(-30, 11, 2))


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


class RayIoU(CountMetric):
    """RayIoU: rays are cast from sensor origins through the GT and the predicted grids; the
    first occupied voxel on each gives a (class, distance) pair.

    For class ``c`` and threshold ``tau``, over the evaluated rays:
    ``TP = #{rays: gt class = pred class = c, |d_pred - d_gt| < tau}``,
    ``IoU_c(tau) = TP / (#gt rays of c + #pred rays of c - TP)`` with counts summed over the
    dataset. ``rayiou@tau`` averages the classes other than ``empty_class`` and ``rayiou`` the
    ``(threshold, class)`` pairs (1, 2, 4 m by default).

    Two protocols, both with the states and the counting above:

    * ``protocol="sparseocc"``: SparseOcc's released RayIoU, the metric of the Occ3D-nuScenes
      leaderboard, reproduced in every detail that moves a number (pass Occ3D labels
      ``[B, 200, 200, 16]`` on ``VoxelGrid((-40, -40, -1), 0.4, (200, 200, 16))``,
      ``num_classes=18, empty_class=17`` and the lidar origins of each frame to ``update``).
      Its ray pattern (:func:`sparseocc_ray_pattern`); every label but ``empty_class`` stops a
      ray (255 too); the distance is where the ray *leaves* the first occupied voxel; the walk
      starts in the voxel ``int()`` of the origin in voxel units, origin and ``origin + dir``
      being mapped to voxel units and rounded to float32 first, so an origin on a voxel face
      starts in the voxel above it; a ray that hits nothing takes the exit of the last voxel it
      visited and its (empty) label. Rays whose GT label is ``empty_class`` are dropped; a kept
      ray whose label lies outside ``[0, num_classes)`` (255) counts for no class, while the
      other grid's class still counts. Distances are float32 (metres), compared in float32.
      Undefined IoUs (``0 / 0``) are NaN and left out of the means (``nanmean``); the means are
      NaN when nothing is defined. Needs cubic voxels. Runs in PyTorch on the labels' device.
    * ``protocol="entry"`` (default, this library's convention, any grid): rays from
      ``origins`` (default: the grid centre) in the pattern ``num_azimuths`` x ``pitch_degrees``
      (:func:`ray_pattern`), cast with :func:`gaussocc_ops.raycast`; ``ignore_index`` voxels are
      see-through in both grids; the distance is where the ray *enters* the first occupied
      voxel; rays without a GT hit are dropped, a predicted miss has no class; GT hits beyond
      ``max_distance`` are dropped and predicted ones count as misses. Classes with a zero
      denominator have IoU 0 and are left out of the mean (``absent="exclude"``) or kept as 0
      (``absent="zero"``).

    Args:
        grid: the :class:`VoxelGrid` of the label volumes.
        num_classes, empty_class, ignore_index: label conventions.
        protocol: ``"entry"`` or ``"sparseocc"`` (see above).
        thresholds: distance tolerances in metres.
        origins: ``[O, 3]`` default ray origins (world frame); ``"entry"`` defaults to the grid's
            centre, ``"sparseocc"`` needs origins here or in every ``update``.
        num_azimuths, pitch_degrees: the ``"entry"`` ray pattern (default 360 azimuths, pitches
            -30..10 degrees in steps of 2); ``"sparseocc"`` fixes its own.
        max_distance, absent, backend: ``"entry"`` only (``backend``: the ray-casting kernel,
            see :func:`gaussocc_ops.raycast`).
        kwargs: torchmetrics' options (``sync_on_compute``, ``process_group``, ...).

    Example:
        >>> grid = VoxelGrid((-4., -4., -1.), 0.5, (16, 16, 4))
        >>> gt = torch.zeros(1, 16, 16, 4, dtype=torch.long); gt[:, :2] = 1; gt[:, -2:] = 2
        >>> m = RayIoU(grid, num_classes=3, empty_class=0, num_azimuths=32, pitch_degrees=[0.0])
        >>> m.update(gt.clone(), gt)
        >>> m.compute()["rayiou"].item()
        1.0
    """

    higher_is_better = True
    origins: torch.Tensor | None
    directions: torch.Tensor

    def __init__(
        self,
        grid: VoxelGrid,
        num_classes: int,
        empty_class: int,
        *,
        protocol: Protocol = "entry",
        ignore_index: int | None = 255,
        thresholds: Sequence[float] = (1.0, 2.0, 4.0),
        origins: torch.Tensor | None = None,
        num_azimuths: int | None = None,
        pitch_degrees: Sequence[float] | None = None,
        max_distance: float = math.inf,
        absent: Literal["zero", "exclude"] = "exclude",
        backend: str = "auto",
        **kwargs: Any,
    ) -> None:
        if not isinstance(grid, VoxelGrid):
            raise TypeError(f"grid must be gaussocc_ops.VoxelGrid, got {type(grid).__name__}")
        check_class_args(num_classes, empty_class, absent)
        if protocol not in ("entry", "sparseocc"):
            raise ValueError(f"protocol must be 'entry' or 'sparseocc', got {protocol!r}")
        if len(thresholds) == 0 or any(not t > 0 for t in thresholds):
            raise ValueError(f"thresholds must be positive distances, got {tuple(thresholds)}")
        if protocol == "sparseocc":
            fixed = {
                "num_azimuths": num_azimuths is None,
                "pitch_degrees": pitch_degrees is None,
                "max_distance": max_distance == math.inf,
                "absent": absent == "exclude",
                "backend": backend == "auto",
            }
            if not all(fixed.values()):
                given = [k for k, ok in fixed.items() if not ok]
                raise ValueError(
                    f"protocol='sparseocc' fixes {', '.join(given)}; leave them at their defaults"
                )
            if ignore_index is not None and 0 <= ignore_index < num_classes:
                raise ValueError(
                    f"protocol='sparseocc' counts every label in [0, {num_classes}) as a class; "
                    f"ignore_index={ignore_index} must lie outside (e.g. 255) or be None"
                )
            if len(set(grid.voxel_size)) != 1:
                raise ValueError(
                    f"protocol='sparseocc' needs cubic voxels, got voxel_size={grid.voxel_size}"
                )
            directions = sparseocc_ray_pattern()
        else:
            azimuths = 360 if num_azimuths is None else num_azimuths
            pitches = _ENTRY_PITCHES if pitch_degrees is None else tuple(pitch_degrees)
            if azimuths < 1 or len(pitches) == 0:
                raise ValueError("need num_azimuths >= 1 and at least one pitch angle")
            directions = ray_pattern(azimuths, pitches)
            if origins is None:
                centre = [(lo + hi) / 2 for lo, hi in zip(grid.origin, grid.upper, strict=True)]
                origins = torch.tensor([centre])
        if origins is not None:
            check_tensor("origins", origins, min_dim=2, last=(None, 3))
            check_float("origins", origins)
            if origins.dim() != 2:
                raise ValueError(f"origins must be [O, 3], got {describe(origins)}")
            if protocol == "entry":
                origins = origins.float()
        super().__init__(**kwargs)
        self.grid = grid
        self.num_classes = num_classes
        self.empty_class = empty_class
        self.protocol = protocol
        self.ignore_index = ignore_index
        self.thresholds = tuple(float(t) for t in thresholds)
        self.max_distance = float(max_distance)
        self.absent = absent
        self.backend = backend
        self.register_buffer("origins", origins, persistent=False)
        self.register_buffer("directions", directions, persistent=False)
        self.add_count("gt_count", (num_classes,))
        self.add_count("pred_count", (num_classes,))
        self.add_count("tp", (len(self.thresholds), num_classes))

    def extra_repr(self) -> str:
        return (
            f"protocol={self.protocol!r}, num_classes={self.num_classes}, "
            f"empty_class={self.empty_class}, ignore_index={self.ignore_index}, "
            f"thresholds={self.thresholds}, rays_per_origin={self.directions.shape[0]}"
        )

    def update(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        origins: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> None:
        """Add a batch.

        Args:
            pred: ``[B, X, Y, Z]`` int labels or ``[B, C, X, Y, Z]`` scores.
            target: ``[B, X, Y, Z]`` int labels.
            origins: ray origins for this batch (world frame): ``[O, 3]`` for every frame,
                ``[B, O, 3]``, or a sequence of ``B`` tensors ``[O_b, 3]`` (e.g. the lidar origins
                of each frame); default: the ones given at construction. Under ``"sparseocc"``
                they are used in their own dtype, as SparseOcc does: float64 origins (what its
                evaluation loader yields) reproduce its numbers bit for bit.
        """
        pred = as_labels("pred", pred, self.num_classes)
        target = as_labels("target", target, self.num_classes)
        check_pair(pred, target, None, 4)
        if tuple(target.shape[-3:]) != self.grid.shape or target.dim() != 4:
            raise ValueError(
                f"target must be [B, X, Y, Z] with (X, Y, Z) = {self.grid.shape}, "
                f"got {describe(target)}"
            )
        per_frame = self._origins_per_frame(origins, target.shape[0], target.device)
        if self.protocol == "sparseocc":
            self._update_sparseocc(pred, target, per_frame)
        else:
            self._update_entry(pred, target, per_frame)

    def _origins_per_frame(self, origins, B: int, device: torch.device) -> list[torch.Tensor]:
        o = self.origins if origins is None else origins
        if o is None:
            raise ValueError(
                "protocol='sparseocc' casts rays from the sensor origins of each frame: pass "
                "origins to update() (or to the constructor)"
            )
        if isinstance(o, torch.Tensor):
            check_tensor("origins", o, min_dim=2, last=(None, 3))
            if o.dim() == 2:
                o = o.expand(B, -1, -1)
            if o.dim() != 3 or o.shape[0] != B:
                raise ValueError(f"origins must be [O, 3] or [{B}, O, 3], got {describe(o)}")
            frames = list(o.unbind(0))
        else:
            frames = list(o)
            if len(frames) != B:
                raise ValueError(
                    f"origins must hold one [O, 3] tensor per frame ({B}), got {len(frames)}"
                )
        for b, f in enumerate(frames):
            check_tensor(f"origins[{b}]", f, min_dim=2, last=(None, 3))
            check_float(f"origins[{b}]", f)
        return [f.to(device) for f in frames]

    def _update_entry(self, pred, target, frames: list[torch.Tensor]) -> None:
        counts = {len(f) for f in frames}
        if len(counts) != 1:  # raycast takes one ray count per batch: cast frame by frame
            for b, f in enumerate(frames):
                self._update_entry(pred[b : b + 1], target[b : b + 1], [f])
            return
        o = torch.stack(frames).float()
        B, n_o, n_d = o.shape[0], o.shape[1], self.directions.shape[0]
        d = self.directions.to(target.device)
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
        self._count(gt.label[keep], pr.label[keep], (pr.distance[keep] - gt.distance[keep]).abs())

    def _update_sparseocc(self, pred, target, frames: list[torch.Tensor]) -> None:
        B = target.shape[0]
        rays = self.directions.to(target.device)
        starts, ends, frame_of = [], [], []
        for b, f in enumerate(frames):
            # origin and origin + direction in voxel units, each rounded to float32
            dtype = torch.promote_types(f.dtype, torch.float32)
            f = f.to(dtype)
            ends.append(_sparseocc.to_voxel_units(rays.to(dtype)[None] + f[:, None], self.grid))
            starts.append(
                _sparseocc.to_voxel_units(f, self.grid)[:, None].expand(-1, rays.shape[0], 3)
            )
            frame_of.append(torch.full((f.shape[0] * rays.shape[0],), b, device=target.device))
        start = torch.cat([s.reshape(-1, 3) for s in starts])
        end = torch.cat([e.reshape(-1, 3) for e in ends])
        frame = torch.cat(frame_of).long()
        # one walk for both grids: the prediction's frames follow the GT's
        labels = torch.cat([target, pred])
        distance, index = _sparseocc.cast(
            labels,
            torch.cat([frame, frame + B]),
            start.repeat(2, 1),
            end.repeat(2, 1),
            self.empty_class,
        )
        # distances leave the walk as float32 voxel units, scaled to metres in float32
        size = torch.tensor(self.grid.voxel_size[0], dtype=torch.float32, device=distance.device)
        metres = distance.float() * size
        label = labels.reshape(-1)[index]
        n = frame.shape[0]
        g_lab, p_lab = label[:n], label[n:]
        keep = g_lab != self.empty_class
        self._count(g_lab[keep], p_lab[keep], (metres[n:] - metres[:n])[keep].abs())

    def _count(self, g_lab: torch.Tensor, p_lab: torch.Tensor, error: torch.Tensor) -> None:
        """Add the evaluated rays: labels of the GT and prediction (outside ``[0, C)``: no
        class) and their distance errors."""
        C = self.num_classes
        g_in = (g_lab >= 0) & (g_lab < C)
        p_in = (p_lab >= 0) & (p_lab < C)
        self.accumulate("gt_count", torch.bincount(g_lab[g_in], minlength=C))
        self.accumulate("pred_count", torch.bincount(p_lab[p_in], minlength=C))
        same = g_in & (g_lab == p_lab)
        tp = [
            torch.bincount(g_lab[same & (error < torch.tensor(t, dtype=error.dtype))], minlength=C)
            for t in self.thresholds
        ]
        self.accumulate("tp", torch.stack(tp))

    def compute(self) -> dict[str, torch.Tensor]:
        """``rayiou`` (mean over thresholds and classes), ``rayiou@<t>`` per threshold and
        ``iou_per_class`` ``[T, C]``."""
        union = self.gt_count + self.pred_count - self.tp
        if self.protocol == "sparseocc":
            iou = self.tp / union  # 0 / 0 = NaN: undefined, left out of the means
            keep = torch.ones(self.num_classes, dtype=torch.bool, device=iou.device)
            keep[self.empty_class] = False
            per_t = iou[:, keep].nanmean(1)
            out = {"rayiou": iou[:, keep].nanmean(), "iou_per_class": iou}
        else:
            iou = safe_ratio(self.tp, union)
            include = torch.ones_like(iou, dtype=torch.bool)
            include[:, self.empty_class] = False
            if self.absent == "exclude":
                include &= union > 0
            per_t = torch.stack(
                [mean_over(iou[j], include[j]) for j in range(len(self.thresholds))]
            )
            out = {"rayiou": per_t.mean(), "iou_per_class": iou}
        for j, t in enumerate(self.thresholds):
            out[f"rayiou@{t:g}"] = per_t[j]
        return out
