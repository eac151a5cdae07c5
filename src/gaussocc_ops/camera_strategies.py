"""GaussRender's virtual camera strategies (GaussRender §3.2, App. E.4).

Every strategy returns per-sample cameras of batch shape ``[B]`` built from "sensor" cameras
(their intrinsics and image size are kept, GaussRender §3.2), and draws its randomness from the
optional ``generator``. :class:`~gaussocc_ops.GaussRenderLoss` takes them by name
(``strategy="elevated"``, ...).

Example:
    One sensor camera 1.5 m above the floor of a 20 m x 20 m grid, looking along ``+x``:

    >>> grid = VoxelGrid((-10., -10., -2.), 0.5, (40, 40, 8))
    >>> K = pinhole_intrinsics(90.0, height=24, width=32)[None]
    >>> cams = Cameras(look_at(torch.tensor([[0., 0, 1.5]]), torch.tensor([[5., 0, 1.5]])),
    ...                K, height=24, width=32)
    >>> elevated(cams, lift=3.0).centers()[0, 0, 2].item()  # 1.5 m + 3 m
    4.5
    >>> out = elevated_around(cams, grid, batch_size=8, generator=torch.Generator().manual_seed(0))
    >>> bool((out.centers()[..., :2].norm(dim=-1) <= 5.0).all())  # half the 10 m scene range
    True
    >>> random(cams, grid, batch_size=3, generator=torch.Generator().manual_seed(0)).num_views
    1
    >>> error = torch.zeros(1, 40, 40, 8); error[0, 30, 5, 2] = 1.0
    >>> out = dynamic(cams, grid, error, generator=torch.Generator().manual_seed(0))
    >>> p = out.viewmats[0, 0] @ torch.tensor([5.25, -7.25, -0.75, 1.0])  # the voxel centre
    >>> abs(p[0].item()) < 1e-4 and abs(p[1].item()) < 1e-4 and p[2].item() > 0  # looked at
    True
"""

from __future__ import annotations

import math

import torch

from gaussocc_ops._dispatch import constant
from gaussocc_ops.cameras import look_at, pinhole_intrinsics  # noqa: F401  (doctests)
from gaussocc_ops.geometry import viewmat_centers
from gaussocc_ops.types import Cameras, VoxelGrid

__all__ = ["dynamic", "elevated", "elevated_around", "random", "sensor"]


def sensor(
    cams: Cameras,
    *,
    batch_size: int | None = None,
    num_views: int | None = None,
    generator: torch.Generator | None = None,
) -> Cameras:
    """The given sensor cameras, or ``num_views`` of them drawn at random per sample.

    GaussRender renders one camera per iteration, changing it across batches (App. E.3); pass
    ``num_views=1`` for that.

    Args:
        cams: ``V`` sensor views, batch shape ``[]`` (shared) or ``[B]``.
        batch_size: ``B``; defaults to the cameras' batch size (1 when unbatched).
        num_views: how many views to keep per sample (``None``: all ``V``, in order).
        generator: source of the random view choice.

    Returns:
        ``Cameras`` of batch shape ``[B]`` with ``num_views`` (or ``V``) views.

    Example:
        >>> K = pinhole_intrinsics(90.0, height=24, width=32)
        >>> eyes = torch.tensor([[0., 0., 1.5], [0., 0., 1.5]])
        >>> cams = Cameras(look_at(eyes, torch.tensor([[5., 0, 1.5], [-5., 0, 1.5]])),
        ...                K.expand(2, 3, 3), height=24, width=32)
        >>> sensor(cams, batch_size=4, num_views=1).viewmats.shape
        torch.Size([4, 1, 4, 4])
    """
    viewmats, Ks = _per_sample(cams, batch_size)
    viewmats, Ks = _pick_views(viewmats, Ks, num_views, generator)
    return Cameras._trusted(viewmats, Ks, height=cams.height, width=cams.width, model=cams.model)


def elevated(
    cams: Cameras,
    *,
    lift: float = 4.0,
    tilt_deg: float = 20.0,
    batch_size: int | None = None,
    num_views: int | None = None,
    generator: torch.Generator | None = None,
) -> Cameras:
    """Sensor cameras lifted by ``lift`` metres along world ``+z`` and tilted down by
    ``tilt_deg`` degrees (a rotation about each camera's own x axis), GaussRender App. E.4.

    Args:
        cams: pinhole sensor views, batch shape ``[]`` or ``[B]``.
        lift: elevation in metres. tilt_deg: extra downward pitch in degrees.
        batch_size, num_views, generator: as in :func:`sensor`.

    Returns:
        ``Cameras`` of batch shape ``[B]`` (example in the module docstring).
    """
    viewmats, Ks = _per_sample(cams, batch_size)
    viewmats, Ks = _pick_views(viewmats, Ks, num_views, generator)
    viewmats = _lift_and_tilt(viewmats, lift, tilt_deg)
    return Cameras._trusted(viewmats, Ks, height=cams.height, width=cams.width, model=cams.model)


def elevated_around(
    cams: Cameras,
    grid: VoxelGrid,
    *,
    lift: float = 4.0,
    tilt_deg: float = 20.0,
    max_shift: float = 0.5,
    batch_size: int | None = None,
    num_views: int | None = None,
    generator: torch.Generator | None = None,
) -> Cameras:
    """:func:`elevated` cameras, each moved in the xy plane by a random shift of length up to
    ``max_shift`` times the scene range (GaussRender App. E.4: "up to half the maximum scene
    range"). The scene range is half the grid's larger xy side (50 m for a ``[-50, 50]`` grid);
    shifts are uniform over the disc of that radius.

    Returns:
        ``Cameras`` of batch shape ``[B]`` (example in the module docstring).
    """
    viewmats, Ks = _per_sample(cams, batch_size)
    viewmats, Ks = _pick_views(viewmats, Ks, num_views, generator)
    viewmats = _lift_and_tilt(viewmats, lift, tilt_deg)
    B, V = viewmats.shape[:2]
    radius = max_shift * _scene_range(grid)
    u = _uniform((B, V, 2), generator, viewmats)
    r = radius * u[..., 0].sqrt()
    phi = 2 * math.pi * u[..., 1]
    shift = torch.stack([r * phi.cos(), r * phi.sin(), torch.zeros_like(r)], -1)
    return Cameras._trusted(
        _translate(viewmats, shift), Ks, height=cams.height, width=cams.width, model=cams.model
    )


def random(
    cams: Cameras,
    grid: VoxelGrid,
    *,
    max_distance: float = 1.0,
    height: tuple[float, float] = (0.0, 3.0),
    yaw_deg: float = 180.0,
    pitch_deg: float = 30.0,
    batch_size: int | None = None,
    num_views: int | None = None,
    generator: torch.Generator | None = None,
) -> Cameras:
    """Fully random poses (GaussRender App. E.4): each sensor camera is moved by a random xy
    offset of length up to ``max_distance`` times the scene range, raised by a height drawn
    uniformly from ``height`` (metres), and turned by a yaw drawn from ``[-yaw_deg, yaw_deg]``
    (about world z) and a pitch from ``[-pitch_deg, pitch_deg]`` (about its own x axis).

    Returns:
        ``Cameras`` of batch shape ``[B]`` (example in the module docstring).
    """
    viewmats, Ks = _per_sample(cams, batch_size)
    viewmats, Ks = _pick_views(viewmats, Ks, num_views, generator)
    B, V = viewmats.shape[:2]
    u = _uniform((B, V, 5), generator, viewmats)
    r = max_distance * _scene_range(grid) * u[..., 0].sqrt()
    phi = 2 * math.pi * u[..., 1]
    dz = height[0] + (height[1] - height[0]) * u[..., 2]
    shift = torch.stack([r * phi.cos(), r * phi.sin(), dz], -1)
    yaw = math.radians(yaw_deg) * (2 * u[..., 3] - 1)
    pitch = math.radians(pitch_deg) * (2 * u[..., 4] - 1)
    centers = viewmat_centers(viewmats) + shift
    R = viewmats[..., :3, :3] @ _rot_z(yaw).transpose(-1, -2)
    R = _rot_x(pitch) @ R
    return Cameras._trusted(
        _compose(R, centers), Ks, height=cams.height, width=cams.width, model=cams.model
    )


def dynamic(
    cams: Cameras,
    grid: VoxelGrid,
    error: torch.Tensor,
    *,
    lift: float = 4.0,
    radius: tuple[float, float] = (0.1, 0.5),
    region: int = 1,
    num_views: int | None = None,
    generator: torch.Generator | None = None,
) -> Cameras:
    """Cameras aimed at the voxel of highest current 3D error (GaussRender App. E.4).

    Each camera is placed on a ring around the sensor cameras' mean centre (the ego vehicle),
    at a random angle and a random distance in ``radius`` (fractions of the scene range),
    ``lift`` metres above it, and looks at the centre of the voxel where ``error`` (after a
    ``region^3`` box average, ``region=1``: the single worst voxel, as in the paper) is largest.

    Args:
        cams: pinhole sensor views (for intrinsics, image size and the ego position),
            batch shape ``[]`` or ``[B]``.
        grid: the voxel grid of ``error``.
        error: ``[B, X, Y, Z]`` per-voxel error, e.g. the cross-entropy of the prediction.
        lift: camera height above the ego in metres.
        radius: ``(min, max)`` ring distance as fractions of the scene range.
        region: odd box size of the error averaging.
        num_views, generator: as in :func:`sensor`.

    Returns:
        ``Cameras`` of batch shape ``[B]`` (example in the module docstring).
    """
    if not isinstance(error, torch.Tensor):
        raise TypeError(f"error must be a torch.Tensor, got {type(error).__name__}")
    if error.dim() != 4 or tuple(error.shape[1:]) != grid.shape:
        raise ValueError(
            f"error must have shape [B, *{grid.shape}] (grid.shape), got {tuple(error.shape)}"
        )
    if region < 1 or region % 2 == 0:
        raise ValueError(f"region must be a positive odd int, got {region!r}")
    B = error.shape[0]
    viewmats, Ks = _per_sample(cams, B)
    viewmats, Ks = _pick_views(viewmats, Ks, num_views, generator)
    V = viewmats.shape[1]
    err = error.detach().to(viewmats.dtype)
    if region > 1:
        err = torch.nn.functional.avg_pool3d(
            err[:, None], region, stride=1, padding=region // 2, count_include_pad=False
        )[:, 0]
    worst = err.reshape(B, -1).argmax(-1)
    target = grid.centers(device=viewmats.device, dtype=viewmats.dtype).reshape(-1, 3)[worst]
    ego = viewmat_centers(viewmats).mean(1, keepdim=True)  # [B, 1, 3]
    u = _uniform((B, V, 2), generator, viewmats)
    rng = _scene_range(grid)
    r = rng * (radius[0] + (radius[1] - radius[0]) * u[..., 0])
    phi = 2 * math.pi * u[..., 1]
    eye = ego + torch.stack([r * phi.cos(), r * phi.sin(), torch.full_like(r, lift)], -1)
    viewmats = look_at(eye, target[:, None].expand(B, V, 3))
    return Cameras._trusted(viewmats, Ks, height=cams.height, width=cams.width, model=cams.model)


def _per_sample(cams: Cameras, batch_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``viewmats [B, V, 4, 4]`` and ``Ks [B, V, 3, 3]`` of cameras with batch shape [] or [B]."""
    if not isinstance(cams, Cameras):
        raise TypeError(f"cams must be gaussocc_ops.Cameras, got {type(cams).__name__}")
    if len(cams.batch_shape) > 1:
        raise ValueError(f"cams must have batch shape [] or [B], got {tuple(cams.batch_shape)}")
    own = cams.batch_shape[0] if cams.batch_shape else None
    B = batch_size if batch_size is not None else (own or 1)
    if own is not None and own not in (1, B):
        raise ValueError(f"cams have batch size {own} but batch_size is {B}")
    V = cams.num_views
    return cams.viewmats.expand(B, V, 4, 4), cams.Ks.expand(B, V, 3, 3)


def _pick_views(viewmats, Ks, num_views, generator):
    if num_views is None:
        return viewmats, Ks
    B, V = viewmats.shape[:2]
    if isinstance(num_views, bool) or not isinstance(num_views, int) or not 1 <= num_views <= V:
        raise ValueError(f"num_views must be an int in [1, {V}], got {num_views!r}")
    order = _uniform((B, V), generator, viewmats).argsort(-1)[:, :num_views]
    pick = lambda t: torch.gather(t, 1, order[..., None, None].expand(B, num_views, *t.shape[2:]))  # noqa: E731
    return pick(viewmats), pick(Ks)


def _uniform(shape, generator, like: torch.Tensor) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(shape, generator=generator, device=device)
    return u.to(like.device, like.dtype, non_blocking=True)  # (a blocking copy would wait)


def _scene_range(grid: VoxelGrid) -> float:
    (x0, y0, _), (x1, y1, _) = grid.origin, grid.upper
    return 0.5 * max(x1 - x0, y1 - y0)


def _compose(R: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """World-to-camera matrices with rotation ``R`` and camera centres ``centers``."""
    viewmat = torch.zeros(*R.shape[:-2], 4, 4, dtype=R.dtype, device=R.device)
    viewmat[..., :3, :3] = R
    viewmat[..., :3, 3] = -(R @ centers.unsqueeze(-1)).squeeze(-1)
    viewmat[..., 3, 3] = 1.0
    return viewmat


def _translate(viewmats: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    return _compose(viewmats[..., :3, :3], viewmat_centers(viewmats) + shift)


def _rot_x(angle: torch.Tensor) -> torch.Tensor:
    """Rotations about the camera x axis; a positive angle turns the view downwards (+y)."""
    c, s = angle.cos(), angle.sin()
    o, z = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*angle.shape, 3, 3)


def _rot_z(angle: torch.Tensor) -> torch.Tensor:
    """Rotations about world z (counter-clockwise seen from above)."""
    c, s = angle.cos(), angle.sin()
    o, z = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*angle.shape, 3, 3)


def _lift_and_tilt(viewmats: torch.Tensor, lift: float, tilt_deg: float) -> torch.Tensor:
    tilt = torch.full(
        viewmats.shape[:-2], math.radians(tilt_deg), dtype=viewmats.dtype, device=viewmats.device
    )
    R = _rot_x(tilt) @ viewmats[..., :3, :3]
    up = constant([0.0, 0.0, float(lift)], viewmats.dtype, viewmats.device)
    return _compose(R, viewmat_centers(viewmats) + up)
