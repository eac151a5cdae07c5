"""The ray casting of SparseOcc's RayIoU (the Occ3D-nuScenes leaderboard metric), reproduced in
PyTorch so that its numbers can be matched exactly.

Its conventions differ from :func:`gaussocc_ops.raycast` in every detail that moves a number
(see docs/losses_and_metrics.md, "RayIoU protocols"); each is stated where it is implemented.
The walk is vectorised over rays, one loop iteration per voxel step, and runs on the device of
the labels.
"""

from __future__ import annotations

import math
import sys

import torch

from gaussocc_ops.types import VoxelGrid

# the walk gives up after this many voxel steps (including steps outside the grid)
MAX_STEPS = 1000


def sparseocc_ray_pattern() -> torch.Tensor:
    """SparseOcc's query rays: unit directions ``[P * 360, 3]`` (float32).

    Pitches ``-(pi/2 - atan(k + 1))`` for ``k = 0..9``, then continued with the last step
    (``pitch[9] - pitch[8]``) while the last pitch is below 0.21 rad; azimuths 0..359 degrees.
    Direction ``(cos e cos a, cos e sin a, sin e)`` computed in float64, stored as float32,
    pitch-major (all azimuths of the first pitch first).

    Example:
        >>> rays = sparseocc_ray_pattern()
        >>> rays.shape, rays.dtype, round(rays[0, 2].item(), 6)  # first pitch: -45 degrees
        (torch.Size([14040, 3]), torch.float32, -0.707107)
    """
    pitches = [-(math.pi / 2 - math.atan(k + 1)) for k in range(10)]
    while pitches[-1] < 0.21:
        pitches.append(pitches[-1] + (pitches[-1] - pitches[-2]))
    pitch = torch.tensor(pitches, dtype=torch.float64)[:, None]
    azimuth = torch.deg2rad(torch.arange(360, dtype=torch.float64))[None, :]
    rays = torch.stack(
        [
            pitch.cos() * azimuth.cos(),
            pitch.cos() * azimuth.sin(),
            pitch.sin().expand(-1, 360),
        ],
        dim=-1,
    )
    return rays.reshape(-1, 3).float()


def to_voxel_units(points: torch.Tensor, grid: VoxelGrid) -> torch.Tensor:
    """``((points - grid origin) / voxel size)``, in the dtype torch promotes ``points`` and the
    float32 grid constants to (float64 for float64 points), rounded to float32 at the end."""
    dtype = torch.promote_types(points.dtype, torch.float32)
    offset = torch.tensor(grid.origin, dtype=torch.float32, device=points.device).to(dtype)
    scale = torch.tensor(grid.voxel_size, dtype=torch.float32, device=points.device).to(dtype)
    return ((points.to(dtype) - offset) / scale).float()


def cast(
    labels: torch.Tensor,
    frame: torch.Tensor,
    origin: torch.Tensor,
    end: torch.Tensor,
    empty_class: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Walk each ray through the voxels of its frame and stop at the first occupied voxel.

    Args:
        labels: ``[F, X, Y, Z]`` integer labels; a voxel is occupied unless its label is
            ``empty_class`` (every other value, 255 included, stops the ray).
        frame: ``[R]`` int64 frame of each ray.
        origin, end: ``[R, 3]`` float32 ray origin and a second point on the ray, in voxel units.
        empty_class: the free label.

    Returns:
        ``(distance [R] float64, index [R] int64)``: ``distance`` in voxel units; ``index`` into
        ``labels.reshape(-1)``. For a hit, the ray parameter at which the ray *leaves* the first
        occupied voxel, and that voxel; for a ray that leaves the grid (or gives up after
        ``MAX_STEPS`` steps) without a hit, the exit of the last voxel it visited inside the
        grid, and that voxel; for a ray that never enters the grid, ``-1`` and voxel
        ``(0, 0, 0)`` of its frame.

    Example:
        >>> labels = torch.tensor([0, 0, 3, 0]).view(1, 4, 1, 1)  # X = 4, one row
        >>> o, e = torch.tensor([[0.5, 0.5, 0.5]]), torch.tensor([[1.5, 0.5, 0.5]])
        >>> distance, index = cast(labels, torch.tensor([0]), o, e, empty_class=0)
        >>> distance.item(), index.item()  # voxel 2 is left at x = 3
        (2.5, 2)
    """
    F_, X, Y, Z = labels.shape
    device = labels.device
    occupied = (labels != empty_class).reshape(-1)
    o, e = origin.double(), end.double()
    # direction from the two float32 points, in double: r / |r|, |r|^2 summed x, y, z in order
    r = e - o
    norm = torch.sqrt(r[:, 0] * r[:, 0] + r[:, 1] * r[:, 1] + r[:, 2] * r[:, 2])
    d = r / norm[:, None]
    step = torch.where(d >= 0, 1, -1)
    # the start voxel is int() of the origin: truncation toward zero, so an origin exactly on a
    # face starts in the voxel above it whichever way the ray goes
    v = o.trunc().long()
    boundary = (v + (step > 0).long()).double()
    nonzero = d != 0
    safe_d = torch.where(nonzero, d, torch.ones_like(d))
    t_max = torch.where(nonzero, (boundary - o) / safe_d, sys.float_info.max)
    t_delta = torch.where(nonzero, step.double() / safe_d, sys.float_info.max)

    R = frame.shape[0]
    out_d = torch.full((R,), -1.0, dtype=torch.float64, device=device)
    out_i = frame * (X * Y * Z)  # voxel (0, 0, 0) of the frame: rays that never enter
    # the rays still in the loop, one 1-D tensor per quantity; last_d / last_i: exit and index of
    # the last voxel visited inside the grid (-1: none yet), frozen once a ray is done
    vx, vy, vz = v.unbind(1)
    tx, ty, tz = t_max.unbind(1)
    dx, dy, dz = t_delta.unbind(1)
    sx, sy, sz = step.unbind(1)
    state = {
        "idx": torch.arange(R, device=device),
        "base": frame * (X * Y * Z),
        "vx": vx, "vy": vy, "vz": vz,
        "tx": tx, "ty": ty, "tz": tz,
        "dx": dx, "dy": dy, "dz": dz,
        "sx": sx, "sy": sy, "sz": sz,
        "last_d": torch.full((R,), -1.0, dtype=torch.float64, device=device),
        "last_i": torch.full((R,), -1, dtype=torch.long, device=device),
        "alive": torch.ones(R, dtype=torch.bool, device=device),
    }  # fmt: skip
    # a ray that starts outside the grid and moves away from it (or not at all) on some axis
    # never enters; only then is this checked
    starts_outside = bool(((v < 0) | (v >= torch.tensor([X, Y, Z], device=device))).any())

    def write_out(rows: torch.Tensor) -> None:
        entered = state["last_i"][rows] >= 0
        target = state["idx"][rows]
        out_d[target] = torch.where(entered, state["last_d"][rows], -1.0)
        out_i[target] = torch.where(entered, state["last_i"][rows], out_i[target])

    for it in range(MAX_STEPS + 1):
        st = state
        vx, vy, vz, tx, ty, tz = st["vx"], st["vy"], st["vz"], st["tx"], st["ty"], st["tz"]
        inside = (vx >= 0) & (vx < X) & (vy >= 0) & (vy < Y) & (vz >= 0) & (vz < Z)
        flat = torch.where(inside, st["base"] + (vx * Y + vy) * Z + vz, 0)
        # the face crossed first: if tx < ty: (x if tx < tz else z) else (y if ty < tz else z)
        x_first = (tx < ty) & (tx < tz)
        y_first = (tx >= ty) & (ty < tz)
        z_first = ~(x_first | y_first)
        record = inside & st["alive"]
        t_exit = torch.where(x_first, tx, torch.where(y_first, ty, tz))
        st["last_d"] = torch.where(record, t_exit, st["last_d"])
        st["last_i"] = torch.where(record, flat, st["last_i"])
        left = ~inside & (st["last_i"] >= 0)  # was inside and is no more: through the grid
        done = (record & occupied[flat]) | left
        if starts_outside:
            away = torch.zeros_like(done)
            for c, n, s_, d_ in (
                ("vx", X, "sx", "dx"),
                ("vy", Y, "sy", "dy"),
                ("vz", Z, "sz", "dz"),
            ):
                static = st[d_] == sys.float_info.max
                away |= (st[c] < 0) & ((st[s_] < 0) | static)
                away |= (st[c] >= n) & ((st[s_] > 0) | static)
            done |= away & (st["last_i"] < 0)
        st["alive"] = st["alive"] & ~done
        st["vx"] = vx + st["sx"] * x_first
        st["vy"] = vy + st["sy"] * y_first
        st["vz"] = vz + st["sz"] * z_first
        st["tx"] = torch.where(x_first, tx + st["dx"], tx)
        st["ty"] = torch.where(y_first, ty + st["dy"], ty)
        st["tz"] = torch.where(z_first, tz + st["dz"], tz)
        if it % 8 == 7:  # every few steps: drop the finished rays (one host sync)
            n_alive = int(st["alive"].sum())
            if n_alive < 0.75 * st["alive"].numel():
                write_out((~st["alive"]).nonzero().squeeze(1))
                keep = st["alive"].nonzero().squeeze(1)
                state = {k: t.index_select(0, keep) for k, t in st.items()}
            if n_alive == 0:
                break
    # the rest: finished since the last drop, or still walking after MAX_STEPS steps
    write_out(torch.arange(state["idx"].numel(), device=device))
    return out_d, out_i
