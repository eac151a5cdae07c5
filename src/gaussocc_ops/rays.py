"""Camera rays: per-pixel ray directions, ray-based volumetric sampling (GPOcc) and
ray-constrained refinement of 3D points (SGR-OCC Eq. 3)."""

from __future__ import annotations

import warnings
from typing import Literal

import torch
import torch.nn.functional as F

from gaussocc_ops._checks import (
    check_finite,
    check_float,
    check_image_size,
    check_int,
    check_tensor,
    compute_dtype,
    describe,
    value_checks_enabled,
)
from gaussocc_ops.cameras import resized
from gaussocc_ops.types import Cameras

DepthType = Literal["distance", "z"]


def _broadcast_to(name: str, t: torch.Tensor, shape: torch.Size, what: str) -> torch.Tensor:
    try:
        if torch.broadcast_shapes(t.shape, shape) != shape:
            raise RuntimeError
    except RuntimeError:
        raise ValueError(
            f"{name} ({describe(t)}) must broadcast to {what} {tuple(shape)}"
        ) from None
    return t.expand(shape)


def ray_directions(
    cameras: Cameras,
    *legacy: int,
    size: tuple[int, int] | None = None,
    normalize: bool = True,
    pixel_center: float = 0.5,
    image_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Camera-frame ray directions through every pixel of pinhole cameras.

    Pixel ``(row, col)`` of a ``size = (H, W)`` grid is the point
    ``(u, v) = (col + pixel_center, row + pixel_center)`` and its ray is
    ``K^-1 [u, v, 1]^T = [x, y, 1]`` (OpenCV frame: x right, y down, z forward), divided by its
    norm when ``normalize`` (GPOcc's ``r = [x, y, 1] / sqrt(x^2 + y^2 + 1)``). When the grid is
    not the cameras' image (a resized feature map), ``K`` is that of
    ``cameras.resized(H, W)``: the image's pixel squares map exactly onto the grid's.

    Args:
        cameras: pinhole :class:`Cameras`, batch shape ``[...]`` with ``V`` views.
        size: ``(H, W)`` of the pixel grid to cast rays through (default
            ``cameras.image_size``).
        normalize: unit-length rays (default) or rays with ``z = 1``.
        pixel_center: where in a pixel the ray passes (0.5: the centre).
        legacy, image_size: the deprecated form ``ray_directions(Ks [..., 3, 3], height, width,
            image_size=(H_img, W_img))`` (``DeprecationWarning``): rays of ``Ks`` (rescaled from
            the image to the grid when ``image_size`` is given), shape ``[..., height, width, 3]``.

    Returns:
        ``[..., V, H, W, 3]``, float32 (float64 for float64 cameras). Differentiable in
        ``cameras.Ks``.

    Example:
        >>> K = torch.tensor([[[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]]])
        >>> cams = Cameras(torch.eye(4)[None], K, height=48, width=64)
        >>> ray_directions(cams, normalize=False)[0, 24, 32]
        tensor([0.0050, 0.0050, 1.0000])
        >>> ray_directions(cams, size=(12, 16)).shape  # a 1/4-resolution feature map
        torch.Size([1, 12, 16, 3])
    """
    if isinstance(cameras, torch.Tensor):
        Ks, H, W = _legacy_ray_grid(cameras, legacy, size, image_size)
    else:
        if legacy or image_size is not None:
            raise TypeError(
                "ray_directions takes cameras and keyword-only size=, normalize=, pixel_center= "
                "(height, width and image_size belong to the deprecated Ks form)"
            )
        if not isinstance(cameras, Cameras):
            raise TypeError(f"cameras must be gaussocc_ops.Cameras, got {type(cameras).__name__}")
        if cameras.model != "pinhole":
            raise ValueError(f"cameras must be pinhole, got model={cameras.model!r}")
        H, W = cameras.image_size if size is None else check_image_size("size", size)
        Ks = resized(cameras, H, W).Ks if (H, W) != cameras.image_size else cameras.Ks
    return _pixel_grid_rays(Ks, H, W, normalize, pixel_center)


def _pixel_grid_rays(
    Ks: torch.Tensor, H: int, W: int, normalize: bool, pixel_center: float = 0.5
) -> torch.Tensor:
    """``K^-1 [u, v, 1]`` through the pixels of an ``H x W`` grid for intrinsics ``Ks [..., 3, 3]``
    of that grid (any skew): ``[..., H, W, 3]``. The math of :func:`ray_directions`, for callers
    that already hold checked intrinsics."""
    Ks = Ks.to(compute_dtype(Ks))
    u = torch.arange(W, dtype=Ks.dtype, device=Ks.device) + pixel_center
    v = torch.arange(H, dtype=Ks.dtype, device=Ks.device) + pixel_center
    fx, skew, cx = (Ks[..., 0, i, None, None] for i in range(3))
    fy, cy = Ks[..., 1, 1, None, None], Ks[..., 1, 2, None, None]
    y = (v[:, None] - cy) / fy
    x = (u[None, :] - cx - skew * y) / fx
    x, y = torch.broadcast_tensors(x, y)
    dirs = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    return F.normalize(dirs, dim=-1) if normalize else dirs


def _deprecated_tensor(
    name: str, value: torch.Tensor, last: tuple[int, int], message: str, *, stacklevel: int
) -> None:
    """Warn (``DeprecationWarning``, ``stacklevel`` as seen from the caller) that a deprecated
    form was used, then check its float tensor argument ``value [..., *last]``."""
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel + 1)
    check_tensor(name, value, min_dim=2, last=last)
    check_float(name, value)


def _legacy_ray_grid(
    Ks: torch.Tensor, legacy: tuple, size: tuple[int, int] | None, image_size
) -> tuple[torch.Tensor, int, int]:
    """The deprecated ``ray_directions(Ks, height, width, *, image_size=None)``: ``Ks`` (scaled
    to the grid when ``image_size`` is given), ``H`` and ``W``."""
    if len(legacy) != 2 or size is not None:
        raise TypeError(
            "ray_directions(Ks, height, width) is the deprecated form; use "
            "ray_directions(cameras, size=(H, W))"
        )
    _deprecated_tensor(
        "Ks",
        Ks,
        (3, 3),
        "ray_directions(Ks, height, width, image_size=...) is deprecated; use "
        "ray_directions(Cameras(viewmats, Ks, height=H_img, width=W_img), size=(height, width))",
        stacklevel=3,
    )
    H = check_int("height", legacy[0], 1, type_error=False)
    W = check_int("width", legacy[1], 1, type_error=False)
    if image_size is not None:
        img_h, img_w = check_image_size("image_size", tuple(int(v) for v in image_size))
        Ks = Ks * Ks.new_tensor([W / img_w, H / img_h, 1.0])[:, None]
    if value_checks_enabled() and Ks.numel():
        if bool((Ks[..., 0, 0] == 0).any() | (Ks[..., 1, 1] == 0).any()):
            raise ValueError("Ks must have non-zero fx and fy")
    return Ks, H, W


def ray_volumetric_sample(
    distance: torch.Tensor,
    directions: torch.Tensor,
    extent: float | torch.Tensor,
    num_samples: int,
    *,
    depth_type: DepthType = "distance",
    cameras: Cameras | None = None,
    cam2world: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ray-based volumetric sampling (GPOcc): points from the visible surface into the object.

    ``x_k = (t + delta_k) r`` with ``r`` the unit ray, ``delta_k = linspace(0, 1, K)_k * extent``
    and ``t`` the distance along the ray to the surface: ``t = distance`` for
    ``depth_type="distance"``, ``t = z / r_z`` for a camera-frame z-depth (``depth_type="z"``).
    ``x_0`` is the surface point; the extent is measured along the ray.

    Args:
        distance: ``[..., H, W]`` per-pixel ray distance or z-depth (metres).
        directions: ``[..., H, W, 3]`` camera-frame rays (need not be unit length: they are
            normalised), e.g. :func:`ray_directions`; broadcastable to ``distance``'s shape.
        extent: how far behind the surface the last sample lies (metres): a float or a tensor
            broadcastable to ``distance`` (per-pixel, predicted by a network).
        num_samples: ``K >= 1`` samples per ray (``K = 1``: only the surface point).
        depth_type: ``"distance"`` or ``"z"``.
        cameras: optional :class:`Cameras` of the rays, batch shape and views ``[..., V]``
            broadcasting with the leading dims of ``distance`` (e.g. those of
            :func:`ray_directions`); the points are then returned in the world frame (through
            ``cameras.cam2world()``), else in the camera frame.
        cam2world: deprecated (``DeprecationWarning``): ``[..., 4, 4]`` camera-to-world
            transforms used in place of ``cameras.cam2world()``; pass ``cameras`` instead.

    Returns:
        ``[..., H, W, K, 3]`` points; float32 (float64 if an input is). Differentiable in distance,
        directions, extent and the cameras' view matrices.

    Example:
        >>> K = torch.tensor([[[50.0, 0, 16], [0, 50.0, 12], [0, 0, 1]]])
        >>> cams = Cameras(torch.eye(4)[None], K, height=24, width=32)
        >>> dirs = ray_directions(cams)  # [1, 24, 32, 3]
        >>> pts = ray_volumetric_sample(torch.full((1, 24, 32), 3.0), dirs, 0.4, 5, depth_type="z")
        >>> pts.shape, pts[0, 12, 16, :, 2]
        (torch.Size([1, 24, 32, 5, 3]), tensor([3.0000, 3.1000, 3.2000, 3.3000, 3.4000]))
    """
    check_tensor("distance", distance, min_dim=2)
    check_tensor("directions", directions, min_dim=3, last=(3,))
    check_float("distance", distance)
    check_float("directions", directions)
    num_samples = check_int("num_samples", num_samples, 1, type_error=False)
    if depth_type not in ("distance", "z"):
        raise ValueError(f"depth_type must be 'distance' or 'z', got {depth_type!r}")
    device = distance.device
    if directions.device != device:
        raise ValueError(f"directions is on {directions.device} but distance is on {device}")
    tensors = [distance, directions]
    if isinstance(extent, torch.Tensor):
        check_float("extent", extent)
        if extent.device != device:
            raise ValueError(f"extent is on {extent.device} but distance is on {device}")
        tensors.append(extent)
    if cameras is not None:
        if not isinstance(cameras, Cameras):
            raise TypeError(
                f"cameras must be gaussocc_ops.Cameras or None, got {type(cameras).__name__}"
            )
        if cameras.device != device:
            raise ValueError(f"cameras are on {cameras.device} but distance is on {device}")
        tensors.append(cameras.viewmats)
    if cam2world is not None:
        if cameras is not None:
            raise TypeError("pass cameras or the deprecated cam2world, not both")
        _deprecated_tensor(
            "cam2world",
            cam2world,
            (4, 4),
            "ray_volumetric_sample(..., cam2world=T) is deprecated; pass "
            "cameras=Cameras.from_cam2world(T, Ks, height=H, width=W)",
            stacklevel=2,
        )
        if cam2world.device != device:
            raise ValueError(f"cam2world is on {cam2world.device} but distance is on {device}")
        if value_checks_enabled():
            check_finite("cam2world", cam2world)
        tensors.append(cam2world)
    dtype = compute_dtype(*tensors)

    try:
        shape = torch.broadcast_shapes(distance.shape, directions.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"directions ({describe(directions)}) must broadcast with distance "
            f"({describe(distance)})"
        ) from None
    rays = F.normalize(directions.to(dtype), dim=-1).expand(*shape, 3)
    t = distance.to(dtype).expand(shape)
    if depth_type == "z":
        if value_checks_enabled() and rays.numel() and not bool((rays[..., 2] > 0).all()):
            raise ValueError("depth_type='z' needs directions with a positive z component")
        t = t / rays[..., 2]
    if isinstance(extent, torch.Tensor):
        ext = _broadcast_to("extent", extent.to(dtype), shape, "distance's shape")
    else:
        ext = torch.as_tensor(float(extent), dtype=dtype, device=device)
    steps = torch.linspace(0.0, 1.0, num_samples, dtype=dtype, device=device)
    along = t[..., None] + steps * ext[..., None]  # [..., H, W, K]
    points = along[..., None] * rays[..., None, :]
    if cameras is None and cam2world is None:
        return points
    if cameras is not None:
        cam2world = cameras.cam2world()
    batch = points.shape[:-4]
    try:
        torch.broadcast_shapes(cam2world.shape[:-2], batch)
    except RuntimeError:
        what = (
            "the cameras' batch shape and views" if cameras is not None else "cam2world batch shape"
        )
        raise ValueError(
            f"{what} {tuple(cam2world.shape[:-2])} must broadcast "
            f"with the points' batch shape {tuple(batch)}"
        ) from None
    T = cam2world.to(dtype)[..., None, None, None, :, :]
    return (T[..., :3, :3] * points[..., None, :]).sum(-1) + T[..., :3, 3]


def ray_constrained_refine(
    points: torch.Tensor,
    delta: torch.Tensor,
    cam_centers: torch.Tensor,
    *,
    max_delta: float | None = None,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Ray-constrained refinement (SGR-OCC Eq. 3): move each point along its camera ray.

    ``P' = P + d (P - O) / ||P - O||`` with ``d = delta``, or with the bounded residual
    ``d = max_delta * tanh(delta / max_delta)`` when ``max_delta`` is given (``|d| < max_delta``,
    and ``d ~ delta`` for small residuals). A point at the camera centre (``||P - O|| <= eps``)
    has no ray and does not move.

    Args:
        points: ``[..., 3]`` initial points ``P`` (world frame).
        delta: ``[...]`` depth residuals (metres), broadcastable to ``points.shape[:-1]``.
        cam_centers: ``[..., 3]`` camera centres ``O`` (e.g. ``cameras.centers()``),
            broadcastable to ``points``.
        max_delta: optional bound of the residual (``> 0``).
        eps: norm below which a point has no ray.

    Returns:
        ``[..., 3]`` refined points; float32 (float64 if an input is). Differentiable in all inputs.

    Example:
        >>> points, camera = torch.tensor([[0.0, 3.0, 4.0]]), torch.zeros(3)
        >>> ray_constrained_refine(points, torch.tensor([5.0]), camera)
        tensor([[0., 6., 8.]])
    """
    check_tensor("points", points, min_dim=1, last=(3,))
    check_tensor("delta", delta)
    check_tensor("cam_centers", cam_centers, min_dim=1, last=(3,))
    for name, t in (("points", points), ("delta", delta), ("cam_centers", cam_centers)):
        check_float(name, t)
        if t.device != points.device:
            raise ValueError(f"{name} is on {t.device} but points is on {points.device}")
    if max_delta is not None and not max_delta > 0:
        raise ValueError(f"max_delta must be > 0, got {max_delta}")
    dtype = compute_dtype(points, delta, cam_centers)
    p = points.to(dtype)
    d = _broadcast_to("delta", delta.to(dtype), p.shape[:-1], "points.shape[:-1]")
    o = _broadcast_to("cam_centers", cam_centers.to(dtype), p.shape, "points' shape")
    if max_delta is not None:
        d = max_delta * torch.tanh(d / max_delta)
    offset = p - o
    norm = offset.norm(dim=-1, keepdim=True)
    ray = torch.where(norm > eps, offset / norm.clamp(min=eps), torch.zeros_like(offset))
    return p + d[..., None] * ray
