"""First-hit ray casting through a voxel grid (Amanatides-Woo traversal), as used by RayIoU."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from gaussocc_ops import _dispatch
from gaussocc_ops._checks import (
    check_float,
    check_int,
    check_tensor,
    compute_dtype,
    describe,
    value_checks_enabled,
)
from gaussocc_ops._dispatch import Backend
from gaussocc_ops.types import VoxelGrid


class RaycastOutput(NamedTuple):
    """distance: ``[..., R]`` metres from the origin to where the ray enters the hit voxel
    (``inf`` for a miss). label: ``[..., R]`` int64 label of the hit voxel (``-1`` for a miss)."""

    distance: torch.Tensor
    label: torch.Tensor


def raycast(
    labels: torch.Tensor,
    grid: VoxelGrid,
    origins: torch.Tensor,
    directions: torch.Tensor,
    *,
    empty_class: int,
    ignore_index: int | None = 255,
    max_distance: float = math.inf,
    backend: Backend = "auto",
) -> RaycastOutput:
    """Cast rays through a labelled voxel grid and return the first non-empty voxel on each.

    A ray ``x(t) = o + t d / |d|`` (``t >= 0``) is walked voxel by voxel (Amanatides & Woo);
    the hit is the first voxel whose label is neither ``empty_class`` nor ``ignore_index``
    (ignored voxels are see-through), and the hit distance is the ``t`` at which the ray enters
    it (0 if the origin lies inside it). Origins may lie outside the grid.

    Args:
        labels: ``[..., X, Y, Z]`` integer labels over ``grid``.
        grid: the :class:`VoxelGrid` of ``labels``.
        origins: ``[..., R, 3]`` ray origins (world frame); batch dims broadcast to ``labels``'.
        directions: ``[..., R, 3]`` non-zero ray directions (normalised here).
        empty_class: label of free space.
        ignore_index: label treated as free space too (``None``: no such label).
        max_distance: hits farther than this (metres) count as misses.
        backend: ``"reference"``, ``"cpu"``, ``"cuda"`` or ``"auto"``.

    Returns:
        :class:`RaycastOutput` ``(distance [..., R], label [..., R])``; distance in the compute
        dtype (float32, or float64 for float64 rays).

    Example:
        >>> grid = VoxelGrid((0., 0., 0.), 1.0, (4, 1, 1))
        >>> labels = torch.tensor([0, 0, 3, 0]).view(1, 4, 1, 1)
        >>> out = raycast(labels, grid, torch.tensor([[[0.5, 0.5, 0.5]]]),
        ...               torch.tensor([[[1., 0., 0.]]]), empty_class=0)
        >>> out.distance.tolist(), out.label.tolist()
        ([[1.5]], [[3]])
    """
    if not isinstance(grid, VoxelGrid):
        raise TypeError(f"grid must be gaussocc_ops.VoxelGrid, got {type(grid).__name__}")
    check_tensor("labels", labels, min_dim=3, last=grid.shape)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"labels must be an integer tensor, got {describe(labels)}")
    check_tensor("origins", origins, min_dim=2, last=(None, 3))
    check_tensor("directions", directions, min_dim=2, last=(None, 3))
    check_float("origins", origins)
    check_float("directions", directions)
    if origins.shape != directions.shape:
        raise ValueError(
            f"directions must have the shape of origins {tuple(origins.shape)}, "
            f"got {describe(directions)}"
        )
    for name, t in (("origins", origins), ("directions", directions)):
        if t.device != labels.device:
            raise ValueError(f"{name} is on {t.device} but labels is on {labels.device}")
    check_int("empty_class", empty_class)
    if ignore_index is not None:
        check_int("ignore_index", ignore_index)
    if not max_distance >= 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    labels_batch = labels.shape[:-3]
    rays_batch = origins.shape[:-2]
    try:
        batch = torch.broadcast_shapes(labels_batch, rays_batch)
    except RuntimeError:
        raise ValueError(
            f"rays' batch shape {tuple(rays_batch)} does not broadcast with labels' batch shape "
            f"{tuple(labels_batch)}"
        ) from None
    backend = _dispatch.resolve(backend, labels.device, "raycast")
    R = origins.shape[-2]
    dtype = compute_dtype(origins, directions)
    dirs = directions.to(dtype)
    norms = dirs.norm(dim=-1, keepdim=True)
    if value_checks_enabled() and dirs.numel() and bool((norms == 0).any()):
        raise ValueError("directions must be non-zero vectors")
    dirs = dirs / norms
    flat_labels = _dispatch.flatten(labels, batch, grid.shape, torch.int64)
    if ignore_index is not None:
        flat_labels = torch.where(flat_labels == ignore_index, empty_class, flat_labels)
    distance, label = _dispatch.kernel("raycast", backend)(
        flat_labels,
        _dispatch.flatten(origins, batch, (R, 3), dtype),
        _dispatch.flatten(dirs, batch, (R, 3)),
        list(grid.origin),
        list(grid.voxel_size),
        int(empty_class),
        float(max_distance),
    )
    return RaycastOutput(distance.reshape(*batch, R), label.reshape(*batch, R))
