"""NumPy voxel ray caster: the Amanatides-Woo walk, vectorised over rays, one loop step per voxel.

A second, plain-NumPy statement of the traversal that the CPU/CUDA kernels implement (same
conventions: the ray is clipped to the grid box, a start exactly on a voxel face belongs to the
voxel the ray moves into, faces crossed at the same ``t`` are stepped together). It serves as the
baseline of ``python -m benchmarks metrics`` and is held to the kernel in tests/test_raycast_dda.py.
"""

from __future__ import annotations

import math

import numpy as np


def raycast_dda(
    labels: np.ndarray,
    origins: np.ndarray,
    directions: np.ndarray,
    grid_origin: tuple[float, float, float],
    voxel_size: tuple[float, float, float],
    empty_label: int,
    max_distance: float = math.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """First non-empty voxel along each ray.

    Args:
        labels: ``[B, X, Y, Z]`` integer labels.
        origins: ``[B, R, 3]`` ray origins (float32 or float64; the walk runs in that dtype).
        directions: ``[B, R, 3]`` unit ray directions.
        grid_origin: world position of the grid's lower corner.
        voxel_size: voxel edge lengths.
        empty_label: label of free space.
        max_distance: hits farther than this count as misses.

    Returns:
        ``(distance [B, R], label [B, R])``: the ``t`` at which the ray enters the hit voxel
        (``inf`` for a miss) and its label (``-1`` for a miss).

    Example:
        >>> labels = np.array([0, 0, 3, 0]).reshape(1, 4, 1, 1)
        >>> o, d = np.array([[[0.5, 0.5, 0.5]]]), np.array([[[1.0, 0.0, 0.0]]])
        >>> raycast_dda(labels, o, d, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 0)
        (array([[1.5]]), array([[3]]))
    """
    dtype = origins.dtype
    B, R = origins.shape[:2]
    shape = np.array(labels.shape[1:], dtype=np.int64)
    flat_labels = labels.reshape(-1)
    lower = np.asarray(grid_origin, dtype=dtype)
    size = np.asarray(voxel_size, dtype=dtype)
    upper = lower + shape.astype(dtype) * size
    o = origins.reshape(-1, 3)
    d = directions.reshape(-1, 3).astype(dtype)
    batch = np.repeat(np.arange(B, dtype=np.int64), R)
    distance = np.full(B * R, np.inf, dtype=dtype)
    label = np.full(B * R, -1, dtype=np.int64)

    # Clip to the box [lower, upper] (slab method); a ray parallel to a slab must start inside it.
    moving = d != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = (1 / np.where(moving, d, 1)).astype(dtype)
        t0 = (lower - o) * inv
        t1 = (upper - o) * inv
    t_lo = np.where(moving, np.minimum(t0, t1), -np.inf)
    t_hi = np.where(moving, np.maximum(t0, t1), np.inf)
    in_slab = moving | ((o >= lower) & (o < upper))
    t = np.maximum(t_lo.max(axis=1), 0).astype(dtype)
    t_exit = t_hi.min(axis=1)
    live = np.flatnonzero(in_slab.all(axis=1) & (t < t_exit) & (t <= max_distance))

    o, d, moving = o[live], d[live], moving[live]
    t, t_exit, batch = t[live], t_exit[live], batch[live]
    g = (o + t[:, None] * d - lower) / size
    idx = np.floor(g).astype(np.int64)
    idx -= (d < 0) & (g == np.floor(g))
    idx = np.clip(idx, 0, shape - 1)
    step = np.sign(d).astype(np.int64)
    face = lower + (idx + (d > 0)).astype(dtype) * size
    with np.errstate(divide="ignore", invalid="ignore"):
        t_next = np.where(moving, (face - o) / np.where(moving, d, 1), np.inf)
        t_delta = np.where(moving, size / np.abs(np.where(moving, d, 1)), np.inf)
    t_next, t_delta = t_next.astype(dtype), t_delta.astype(dtype)

    while live.size:
        flat = ((batch * shape[0] + idx[:, 0]) * shape[1] + idx[:, 1]) * shape[2] + idx[:, 2]
        value = flat_labels[flat]
        hit = value != empty_label
        distance[live[hit]] = t[hit]
        label[live[hit]] = value[hit]
        t_min = t_next.min(axis=1)
        crossing = t_next == t_min[:, None]
        idx += np.where(crossing, step, 0)
        t_next = np.where(crossing, t_next + t_delta, t_next)
        inside = ((idx >= 0) & (idx < shape)).all(axis=1)
        keep = ~hit & (t_min < t_exit) & (t_min <= max_distance) & inside
        live, batch, idx, t, t_exit = live[keep], batch[keep], idx[keep], t_min[keep], t_exit[keep]
        step, t_next, t_delta = step[keep], t_next[keep], t_delta[keep]
    return distance.reshape(B, R), label.reshape(B, R)
