"""Camera construction helpers (OpenCV convention: x right, y down, z forward): view matrices,
intrinsics, the BEV camera and resizing. GaussRender's virtual camera strategies are in
:mod:`gaussocc_ops.camera_strategies` (also reachable here under their old names)."""

from __future__ import annotations

import math
import warnings

import torch

from gaussocc_ops._checks import check_image_size, check_number
from gaussocc_ops._dispatch import constant
from gaussocc_ops.types import Cameras, VoxelGrid


def look_at(
    eye: torch.Tensor, target: torch.Tensor, up: tuple[float, float, float] = (0.0, 0.0, 1.0)
) -> torch.Tensor:
    """World-to-camera matrices ``[..., 4, 4]`` of cameras at ``eye [..., 3]`` looking at
    ``target [..., 3]``, with the image's "up" (-y) towards ``up``.

    When the viewing direction is parallel to ``up`` the world x axis serves as image right.

    Example:
        >>> vm = look_at(torch.tensor([0.0, 0.0, 0.0]), torch.tensor([5.0, 0.0, 0.0]))
        >>> (vm @ torch.tensor([5.0, 0.0, 0.0, 1.0])).tolist()  # straight ahead, 5 m away
        [0.0, 0.0, 5.0, 1.0]
    """
    eye = torch.as_tensor(eye, dtype=torch.get_default_dtype()) if not torch.is_tensor(eye) else eye
    target = torch.as_tensor(target, dtype=eye.dtype, device=eye.device)
    eye, target = torch.broadcast_tensors(eye, target)
    up_t = (
        torch.as_tensor(up, dtype=eye.dtype, device=eye.device)
        if torch.is_tensor(up)
        else constant([float(v) for v in up], eye.dtype, eye.device)
    ).expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(forward, up_t, dim=-1)
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    x_axis = constant([1.0, 0.0, 0.0], eye.dtype, eye.device).expand_as(eye)
    right = torch.nn.functional.normalize(torch.where(degenerate, x_axis, right), dim=-1)
    down = torch.linalg.cross(forward, right, dim=-1)
    R = torch.stack([right, down, forward], dim=-2)
    viewmat = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    viewmat[..., :3, :3] = R
    viewmat[..., :3, 3] = -(R @ eye.unsqueeze(-1)).squeeze(-1)
    viewmat[..., 3, 3] = 1.0
    return viewmat


def pinhole_intrinsics(
    *args: float,
    fov_x_deg: float | None = None,
    height: int | None = None,
    width: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``[3, 3]`` intrinsics of a pinhole camera of a ``height x width`` image with horizontal
    field of view ``fov_x_deg`` (degrees, in ``(0, 180)``), square pixels and the principal point
    at the image centre.

    Called as ``pinhole_intrinsics(fov_x_deg, *, height, width)``. The former form
    ``pinhole_intrinsics(width, height, fov_x_deg)`` (width first; ``fov_x_deg`` positional or
    keyword) still works and gives a ``DeprecationWarning``.

    Example:
        >>> K = pinhole_intrinsics(90.0, height=480, width=640)
        >>> K[0].tolist()  # f = 320 for a 90 degree field of view
        [320.0, 0.0, 320.0]
    """
    if len(args) + (fov_x_deg is not None) == 3 and height is None and width is None:
        warnings.warn(
            "pinhole_intrinsics(width, height, fov_x_deg) is deprecated; use "
            "pinhole_intrinsics(fov_x_deg, height=height, width=width)",
            DeprecationWarning,
            stacklevel=2,
        )
        width, height = args[0], args[1]
        fov_x_deg = args[2] if len(args) == 3 else fov_x_deg
    elif len(args) + (fov_x_deg is not None) == 1:
        fov_x_deg = args[0] if args else fov_x_deg
    else:
        raise TypeError(
            "pinhole_intrinsics takes fov_x_deg and the keyword-only height= and width= (or the "
            f"deprecated (width, height, fov_x_deg)), got {len(args)} positional arguments"
        )
    if height is None or width is None:
        raise TypeError("pinhole_intrinsics needs the keyword arguments height= and width=")
    H, W = check_image_size("(height, width)", (height, width))
    fov = check_number("fov_x_deg", fov_x_deg, minimum=0.0, strict=True)
    if not fov < 180:
        raise ValueError(f"fov_x_deg must lie in (0, 180), got {fov_x_deg}")
    f = 0.5 * W / math.tan(math.radians(fov) / 2)
    return torch.tensor(
        [[f, 0.0, W / 2], [0.0, f, H / 2], [0.0, 0.0, 1.0]], dtype=dtype, device=device
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

    Example:
        >>> grid = VoxelGrid.from_bounds((-50, -50, -5), (50, 50, 3), (200, 200, 16))
        >>> cam = bev(grid, 400)
        >>> cam.model, cam.Ks[0, 0, 0].item()  # 4 pixels per metre
        ('ortho', 4.0)
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
    return Cameras._trusted(viewmat[None], K[None], height=H, width=W, model="ortho")


def resized(cams: Cameras, height: int, width: int) -> Cameras:
    """The same cameras rendering ``height x width`` pixels (intrinsics scaled accordingly, so
    that the image's pixel squares map exactly onto the new ones).

    Args:
        cams: any :class:`Cameras`.
        height, width: the new image size in pixels.

    Returns:
        :class:`Cameras` with the same view matrices, ``Ks`` scaled by ``width / cams.width``
        (``fx, skew, cx``) and ``height / cams.height`` (``fy, cy``), and ``image_size``
        ``(height, width)``.

    Example:
        >>> K = pinhole_intrinsics(90.0, height=480, width=640)[None]
        >>> cams = Cameras(torch.eye(4)[None], K, height=480, width=640)
        >>> small = resized(cams, 240, 320)
        >>> small.image_size, small.Ks[0, 0].tolist()
        ((240, 320), [160.0, 0.0, 160.0])
    """
    if not isinstance(cams, Cameras):
        raise TypeError(f"cams must be gaussocc_ops.Cameras, got {type(cams).__name__}")
    height, width = check_image_size("(height, width)", (height, width))
    sx, sy = width / cams.width, height / cams.height
    scale = constant([[sx, 0.0, sx], [0.0, sy, sy], [0.0, 0.0, 1.0]], cams.Ks.dtype, cams.device)
    return Cameras._trusted(
        cams.viewmats, cams.Ks * scale, height=height, width=width, model=cams.model
    )


_STRATEGIES = ("sensor", "elevated", "elevated_around", "random", "dynamic")


def __getattr__(name: str):
    # the camera strategies under their old names (gaussocc_ops.cameras.sensor, ...)
    if name in _STRATEGIES:
        from gaussocc_ops import camera_strategies

        return getattr(camera_strategies, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
