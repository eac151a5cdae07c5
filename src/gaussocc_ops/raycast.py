"""First-hit ray casting through a voxel grid (Amanatides-Woo traversal), as used by RayIoU."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch

from gaussocc_ops import _ext
from gaussocc_ops._checks import check_float, check_tensor, compute_dtype, describe
from gaussocc_ops.reference import raycast as ref
from gaussocc_ops.types import VoxelGrid

Backend = Literal["auto", "reference", "cpu", "cuda"]


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
    R = origins.shape[-2]
    B = batch.numel()
    dtype = compute_dtype(origins, directions)
    dirs = directions.to(dtype)
    norms = dirs.norm(dim=-1, keepdim=True)
    if dirs.numel() and bool((norms == 0).any()):
        raise ValueError("directions must be non-zero vectors")
    dirs = dirs / norms
    flat_labels = labels.to(torch.int64).expand(*batch, *grid.shape).reshape(B, *grid.shape)
    if ignore_index is not None:
        flat_labels = torch.where(flat_labels == ignore_index, empty_class, flat_labels)
    o = origins.to(dtype).expand(*batch, R, 3).reshape(B, R, 3)
    d = dirs.expand(*batch, R, 3).reshape(B, R, 3)
    args = (
        flat_labels.contiguous(),
        o.contiguous(),
        d.contiguous(),
        list(grid.origin),
        list(grid.voxel_size),
        int(empty_class),
        float(max_distance),
    )
    if _resolve_backend(backend, labels.device) == "reference":
        distance, label = ref.raycast(*args)
    else:
        distance, label = torch.ops.gaussocc.raycast(*args)
    return RaycastOutput(distance.reshape(*batch, R), label.reshape(*batch, R))


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in ("auto", "reference", "cpu", "cuda"):
        raise ValueError(
            f"backend must be one of 'auto', 'reference', 'cpu', 'cuda', got {backend!r}"
        )
    if backend == "auto":
        if _ext.kernel_available("raycast", device):
            return device.type
        _ext.warn_fallback("raycast")
        return "reference"
    if backend != "reference":
        if device.type != backend:
            raise ValueError(f"backend={backend!r} needs tensors on {backend}, got {device}")
        if not _ext.kernel_available("raycast", device):
            raise RuntimeError(
                f"backend={backend!r} is not available: the {backend.upper()} kernels were not "
                f"compiled (gaussocc_ops.build_info(): "
                f"{_ext.build_info()['error'] or 'no such kernel'})"
            )
    return backend


def _register_fake() -> None:
    @torch.library.register_fake("gaussocc::raycast")
    def _(labels, origins, directions, grid_origin, voxel_size, empty_label, max_distance):
        B, R = origins.shape[:2]
        return origins.new_empty(B, R), origins.new_empty(B, R, dtype=torch.int64)


_ext.on_load("raycast", _register_fake)
