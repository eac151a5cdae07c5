"""Reference voxel ray caster: enumerates every voxel-boundary crossing of every ray.

Independent of the Amanatides-Woo walk of the kernels: all plane crossings ``t`` of a ray inside
the grid box are computed at once and sorted; each segment between consecutive crossings lies in
one voxel (found from its midpoint). The first segment of positive length whose voxel is not
``empty_label`` gives the hit; its start is the hit distance. Memory ``O(R (X + Y + Z))``.
"""

from __future__ import annotations

import torch


def raycast(
    labels: torch.Tensor,
    origins: torch.Tensor,
    directions: torch.Tensor,
    grid_origin: tuple[float, float, float],
    voxel_size: tuple[float, float, float],
    empty_label: int,
    max_distance: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ``torch.ops.gaussocc.raycast``: labels ``[B, X, Y, Z]`` int64, unit
    ``directions`` and ``origins`` ``[B, R, 3]`` → ``(distance [B, R], label [B, R])`` with
    label ``-1`` and distance ``inf`` for misses."""
    B, R = origins.shape[:2]
    shape = labels.shape[1:]
    dtype = origins.dtype
    go = origins.new_tensor(grid_origin)
    vs = origins.new_tensor(voxel_size)
    upper = go + vs * origins.new_tensor([float(n) for n in shape])
    o, d = origins, directions

    zero = d == 0
    safe_d = torch.where(zero, torch.ones_like(d), d)
    t0 = (go - o) / safe_d
    t1 = (upper - o) / safe_d
    t_lo = torch.where(zero, torch.full_like(d, -torch.inf), torch.minimum(t0, t1))
    t_hi = torch.where(zero, torch.full_like(d, torch.inf), torch.maximum(t0, t1))
    inside_slab = ~zero | ((o >= go) & (o < upper))
    t_enter = t_lo.amax(-1).clamp(min=0)
    t_exit = t_hi.amin(-1)
    crosses = inside_slab.all(-1) & (t_enter < t_exit)

    crossings = [t_enter.unsqueeze(-1), t_exit.unsqueeze(-1)]
    for a, n in enumerate(shape):
        planes = go[a] + vs[a] * torch.arange(n + 1, dtype=dtype, device=o.device)
        t = (planes - o[..., a : a + 1]) / safe_d[..., a : a + 1]
        crossings.append(torch.where(zero[..., a : a + 1], torch.full_like(t, torch.inf), t))
    t_all = torch.cat(crossings, dim=-1)
    t_all = torch.minimum(torch.maximum(t_all, t_enter.unsqueeze(-1)), t_exit.unsqueeze(-1))
    t_all = t_all.sort(dim=-1).values
    start, stop = t_all[..., :-1], t_all[..., 1:]
    mid = 0.5 * (start + stop)
    points = o.unsqueeze(-2) + mid.unsqueeze(-1) * d.unsqueeze(-2)
    sizes = torch.tensor(shape, device=o.device)
    idx = torch.floor((points - go) / vs).long()
    idx = torch.minimum(idx.clamp(min=0), sizes - 1)
    flat = (idx[..., 0] * shape[1] + idx[..., 1]) * shape[2] + idx[..., 2]
    seg_labels = torch.gather(labels.reshape(B, 1, -1).expand(B, R, -1), 2, flat)
    occupied = (seg_labels != empty_label) & (stop > start) & (start <= max_distance)
    occupied &= crosses.unsqueeze(-1)

    hit = occupied.any(-1)
    first = occupied.to(torch.uint8).argmax(-1, keepdim=True)
    distance = torch.where(
        hit, start.gather(-1, first).squeeze(-1), torch.full_like(t_enter, torch.inf)
    )
    label = torch.where(
        hit, seg_labels.gather(-1, first).squeeze(-1), torch.full_like(first[..., 0], -1)
    )
    return distance, label
