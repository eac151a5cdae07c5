"""Camera construction helpers (OpenCV convention: x right, y down, z forward)."""

from __future__ import annotations

import torch

from gaussocc_ops.types import Cameras, VoxelGrid


def look_at(eye: torch.Tensor, target: torch.Tensor, up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """World-to-camera matrices ``[..., 4, 4]`` of cameras at ``eye [..., 3]`` looking at
    ``target [..., 3]``, with the image's "up" (-y) towards ``up``.

    When the viewing direction is parallel to ``up`` the world x axis serves as image right.
    """
    eye = torch.as_tensor(eye, dtype=torch.get_default_dtype()) if not torch.is_tensor(eye) else eye
    target = torch.as_tensor(target, dtype=eye.dtype, device=eye.device)
    eye, target = torch.broadcast_tensors(eye, target)
    up_t = torch.as_tensor(up, dtype=eye.dtype, device=eye.device).expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(forward, up_t, dim=-1)
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    x_axis = torch.tensor([1.0, 0.0, 0.0], dtype=eye.dtype, device=eye.device).expand_as(eye)
    right = torch.nn.functional.normalize(torch.where(degenerate, x_axis, right), dim=-1)
    down = torch.linalg.cross(forward, right, dim=-1)
    R = torch.stack([right, down, forward], dim=-2)
    viewmat = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    viewmat[..., :3, :3] = R
    viewmat[..., :3, 3] = -(R @ eye.unsqueeze(-1)).squeeze(-1)
    viewmat[..., 3, 3] = 1.0
    return viewmat


def pinhole_intrinsics(
    width: int, height: int, fov_x_deg: float, *, dtype=torch.float32, device=None
):
    """``[3, 3]`` intrinsics of a pinhole camera with horizontal field of view ``fov_x_deg``,
    square pixels and the principal point at the image centre."""
    import math

    f = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
    return torch.tensor(
        [[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=dtype, device=device
    )


def bev(
    grid: VoxelGrid,
    resolution: int | tuple[int, int],
    *,
    height_above: float = 1.0,
    dtype=torch.float32,
    device=None,
) -> Cameras:
    """A true orthographic top-down camera covering the grid's xy extent exactly.

    The camera sits ``height_above`` metres above the grid's top face and looks down (-z). Image
    columns follow world +x and rows follow world -y, so the picture reads like a map with +y up.
    ``resolution`` is ``(height, width)`` in pixels or one int for both. Depth is the distance
    below the camera. Returns ``Cameras`` with a single view, ``[1, 4, 4]``.
    """
    if isinstance(resolution, int):
        resolution = (resolution, resolution)
    H, W = (int(r) for r in resolution)
    (x0, y0, _), (x1, y1, z1) = grid.origin, grid.upper
    cam_z = z1 + height_above
    # camera axes in world: x_c = +x, y_c = -y (image down is world -y), z_c = -z (looking down)
    R = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]], dtype=dtype, device=device)
    eye = torch.tensor([x0, y1, cam_z], dtype=dtype, device=device)
    viewmat = torch.eye(4, dtype=dtype, device=device)
    viewmat[:3, :3] = R
    viewmat[:3, 3] = -(R @ eye)
    K = torch.tensor(
        [[W / (x1 - x0), 0.0, 0.0], [0.0, H / (y1 - y0), 0.0], [0.0, 0.0, 1.0]],
        dtype=dtype,
        device=device,
    )
    return Cameras(viewmat[None], K[None], width=W, height=H, model="ortho")
