"""Core types: :class:`Gaussians`, :class:`Cameras` and :class:`VoxelGrid`.

Plain dataclasses of tensors, validated on construction. Leading batch dimensions ``...`` are
free: a ``Gaussians`` with means ``[B, N, 3]`` holds B scenes of N Gaussians each.

Construction checks the structure (shapes, dtypes, devices) always and the values (finite, valid
quaternions and intrinsics) while value checks are on (:func:`gaussocc_ops.set_value_checks`;
they read tensors back to the host). Objects derived from validated ones (``to``, ``detach``,
indexing, and the library's own results) are not checked again.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, fields
from typing import Literal

import torch

from gaussocc_ops._checks import (
    check_finite,
    check_float,
    check_tensor,
    describe,
    value_checks_enabled,
)
from gaussocc_ops.geometry import rigid_inverse, viewmat_centers

CameraModel = Literal["pinhole", "ortho"]


# (name, default) of each field of the tensor dataclasses, filled in below their definitions:
# read from here rather than from dataclasses.fields(), which torch.compile cannot trace
_FIELDS: dict[type, tuple[tuple[str, object], ...]] = {}


def _unchecked(cls, **values):
    """An instance of the dataclass ``cls`` with ``values``, without ``__post_init__``: for
    objects built from already validated parts."""
    obj = object.__new__(cls)
    for name, default in _FIELDS[cls]:
        object.__setattr__(obj, name, values[name] if name in values else default)
    return obj


def _map_tensors(obj, fn):
    """``obj`` with ``fn`` applied to each of its tensors (not validated again)."""
    values = {name: getattr(obj, name) for name, _ in _FIELDS[type(obj)]}
    values = {k: fn(v) if isinstance(v, torch.Tensor) else v for k, v in values.items()}
    return _unchecked(type(obj), **values)


@dataclass
class Gaussians:
    """A batch of 3D Gaussians.

    Attributes:
        means: ``[..., N, 3]`` centres (metres, world frame).
        scales: ``[..., N, 3]`` standard deviations along the local axes (metres, ``>= 0``).
        quats: ``[..., N, 4]`` rotations as quaternions ``(w, x, y, z)``; need not be normalised
            (ops normalise them) but must be non-zero.
        opacities: ``[..., N]`` in ``[0, 1]``.
        features: ``[..., N, C]`` per-Gaussian features (semantic probabilities, colours, ...),
            any ``C >= 1``.
        valid: optional ``[..., N]`` bool mask for padded (ragged) batches; invalid Gaussians
            behave as if their opacity were 0.

    Example:
        >>> g = Gaussians(means=torch.zeros(2, 5, 3), scales=torch.ones(2, 5, 3),
        ...               quats=torch.tensor([1., 0, 0, 0]).expand(2, 5, 4),
        ...               opacities=torch.ones(2, 5), features=torch.rand(2, 5, 18))
        >>> g.batch_shape, g.num_gaussians, g.num_channels
        (torch.Size([2]), 5, 18)
    """

    means: torch.Tensor
    scales: torch.Tensor
    quats: torch.Tensor
    opacities: torch.Tensor
    features: torch.Tensor
    valid: torch.Tensor | None = None

    def __post_init__(self) -> None:
        check_tensor("means", self.means, min_dim=2, last=(3,))
        batch_n = self.means.shape[:-1]
        for name, last in (("scales", 3), ("quats", 4)):
            t = check_tensor(name, getattr(self, name), min_dim=2, last=(last,))
            if t.shape[:-1] != batch_n:
                raise ValueError(
                    f"{name} must have shape {tuple(batch_n) + (last,)} to match means, "
                    f"got {describe(t)}"
                )
        check_tensor("opacities", self.opacities)
        if self.opacities.shape != batch_n:
            raise ValueError(
                f"opacities must have shape {tuple(batch_n)} to match means, "
                f"got {describe(self.opacities)}"
            )
        check_tensor("features", self.features, min_dim=2)
        if self.features.shape[:-1] != batch_n:
            raise ValueError(
                f"features must have shape {tuple(batch_n) + ('C',)} to match means, "
                f"got {describe(self.features)}"
            )
        if self.features.shape[-1] < 1:
            raise ValueError(
                f"features must have at least one channel, got {describe(self.features)}"
            )
        device = self.means.device
        for name in ("means", "scales", "quats", "opacities", "features"):
            t = getattr(self, name)
            check_float(name, t)
            if t.device != device:
                raise ValueError(f"{name} is on {t.device} but means is on {device}")
        if self.valid is not None:
            check_tensor("valid", self.valid)
            if self.valid.dtype != torch.bool or self.valid.shape != batch_n:
                raise ValueError(
                    f"valid must be a bool tensor of shape {tuple(batch_n)}, "
                    f"got {describe(self.valid)}"
                )
            if self.valid.device != device:
                raise ValueError(f"valid is on {self.valid.device} but means is on {device}")
        if value_checks_enabled():
            check_finite("means", self.means)
            check_finite("scales", self.scales)
            check_finite("quats", self.quats)
            if self.scales.numel() and bool((self.scales < 0).any()):
                raise ValueError("scales must be >= 0 (standard deviations in metres)")
            if self.quats.numel() and bool((self.quats.detach().norm(dim=-1) == 0).any()):
                raise ValueError("quats must be non-zero quaternions (w, x, y, z)")

    @classmethod
    def _trusted(
        cls,
        means: torch.Tensor,
        scales: torch.Tensor,
        quats: torch.Tensor,
        opacities: torch.Tensor,
        features: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> Gaussians:
        """Gaussians built by the library from validated or derived tensors: not checked."""
        return _unchecked(
            cls,
            means=means,
            scales=scales,
            quats=quats,
            opacities=opacities,
            features=features,
            valid=valid,
        )

    @property
    def batch_shape(self) -> torch.Size:
        return self.means.shape[:-2]

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[-2]

    @property
    def num_channels(self) -> int:
        return self.features.shape[-1]

    @property
    def device(self) -> torch.device:
        return self.means.device

    def effective_opacities(self) -> torch.Tensor:
        """Opacities with invalid (padding) Gaussians set to 0."""
        if self.valid is None:
            return self.opacities
        return self.opacities * self.valid.to(self.opacities.dtype)

    def to(self, *args, **kwargs) -> Gaussians:
        """``Tensor.to`` on every field (dtype changes leave ``valid`` bool)."""

        def move(t):
            if t.dtype == torch.bool:
                return t.to(device=torch.empty(0).to(*args, **kwargs).device)
            return t.to(*args, **kwargs)

        return _map_tensors(self, move)

    def detach(self) -> Gaussians:
        return _map_tensors(self, torch.Tensor.detach)

    def __getitem__(self, index) -> Gaussians:
        """Index the batch dimensions, e.g. ``g[0]`` or ``g[1:3]``."""
        out = _map_tensors(self, lambda t: t[index])
        if (
            out.means.dim() < 2
            or out.means.shape[-1] != 3
            or out.num_gaussians != self.num_gaussians
        ):
            raise IndexError("Gaussians can only be indexed along their batch dimensions")
        return out

    @staticmethod
    def isotropic(
        means: torch.Tensor,
        scale: float | torch.Tensor,
        opacities: torch.Tensor,
        features: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> Gaussians:
        """Spherical Gaussians with identity rotation: ``means [..., N, 3]``, ``scale`` a float or
        ``[..., N]``, ``opacities [..., N]``, ``features [..., N, C]``, ``valid [..., N]``."""
        check_tensor("means", means, min_dim=2, last=(3,))
        scale_t = torch.as_tensor(scale, dtype=means.dtype, device=means.device)
        scales = (
            scale_t.unsqueeze(-1).expand(*means.shape)
            if scale_t.dim()
            else scale_t.expand(*means.shape)
        )
        quats = means.new_zeros(*means.shape[:-1], 4)
        quats[..., 0] = 1.0
        return Gaussians(means, scales, quats, opacities, features, valid)


@dataclass
class Cameras:
    """A batch of cameras (OpenCV convention: x right, y down, z forward).

    Attributes:
        viewmats: ``[..., V, 4, 4]`` world-to-camera transforms.
        Ks: ``[..., V, 3, 3]`` intrinsics. For ``model="pinhole"`` the usual
            ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``; for ``model="ortho"`` ``fx, fy`` are pixels
            per metre and ``(cx, cy)`` the pixel position of the camera origin, so a camera-frame
            point ``(x, y, z)`` lands at ``(fx x + cx, fy y + cy)``.
        height, width: image size in pixels, keyword-only (sizes are ``(H, W)`` everywhere;
            :attr:`image_size` is the pair). Pixel ``(row, col)`` covers
            ``[col, col + 1) x [row, row + 1)``; its centre is ``(col + 0.5, row + 0.5)``.
        model: ``"pinhole"`` or ``"ortho"`` (true orthographic, e.g. a BEV camera).

    Depth is the camera-frame ``z`` for both models. Constructors: ``Cameras(viewmats, Ks,
    height=H, width=W)`` and :meth:`from_cam2world`.

    Example:
        >>> K = torch.tensor([[[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]]])
        >>> viewmat = torch.eye(4)
        >>> viewmat[:3, 3] = torch.tensor([1.0, 2.0, 3.0])  # world -> camera translation
        >>> cams = Cameras(viewmat[None], K, height=96, width=128)
        >>> cams.num_views, cams.image_size, cams.centers()[0].tolist()  # the camera sits at -t
        (1, (96, 128), [-1.0, -2.0, -3.0])
    """

    viewmats: torch.Tensor
    Ks: torch.Tensor
    _: KW_ONLY
    height: int
    width: int
    model: CameraModel = "pinhole"

    def __post_init__(self) -> None:
        check_tensor("viewmats", self.viewmats, min_dim=3, last=(4, 4))
        check_tensor("Ks", self.Ks, min_dim=3, last=(3, 3))
        if self.viewmats.shape[:-2] != self.Ks.shape[:-2]:
            raise ValueError(
                f"viewmats {tuple(self.viewmats.shape)} and Ks {tuple(self.Ks.shape)} must share "
                "their leading [..., V] dims"
            )
        check_float("viewmats", self.viewmats)
        check_float("Ks", self.Ks)
        if self.viewmats.device != self.Ks.device:
            raise ValueError(f"viewmats is on {self.viewmats.device} but Ks is on {self.Ks.device}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.model not in ("pinhole", "ortho"):
            raise ValueError(f"model must be 'pinhole' or 'ortho', got {self.model!r}")
        if value_checks_enabled():
            _check_camera_values(self.viewmats, self.Ks)

    @classmethod
    def _trusted(
        cls,
        viewmats: torch.Tensor,
        Ks: torch.Tensor,
        *,
        height: int,
        width: int,
        model: CameraModel = "pinhole",
    ) -> Cameras:
        """Cameras built by the library from validated or derived tensors: not checked."""
        return _unchecked(cls, viewmats=viewmats, Ks=Ks, height=height, width=width, model=model)

    @property
    def batch_shape(self) -> torch.Size:
        return self.viewmats.shape[:-3]

    @property
    def num_views(self) -> int:
        return self.viewmats.shape[-3]

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)``: the image size in pixels, height first."""
        return self.height, self.width

    @property
    def device(self) -> torch.device:
        return self.viewmats.device

    def centers(self) -> torch.Tensor:
        """Camera positions in the world frame, ``[..., V, 3]`` (for ortho: the camera origin)."""
        return viewmat_centers(self.viewmats)

    @staticmethod
    def from_cam2world(
        cam2world: torch.Tensor,
        Ks: torch.Tensor,
        *,
        height: int,
        width: int,
        model: CameraModel = "pinhole",
        atol: float = 1e-4,
    ) -> Cameras:
        """Cameras from camera-to-world poses (the inverse of ``viewmats``).

        ``cam2world = [R t; 0 1]`` must be rigid (``R R^T = I`` and ``det R = 1`` to ``atol``,
        last row ``[0, 0, 0, 1]``; checked while value checks are on); the view matrix is its
        exact rigid inverse ``[R^T, -R^T t; 0 1]``.

        Args:
            cam2world: ``[..., V, 4, 4]`` camera-to-world transforms (OpenCV axes).
            Ks: ``[..., V, 3, 3]`` intrinsics (see the class docstring).
            height, width: image size in pixels (keywords: sizes are ``(H, W)`` everywhere).
            model: ``"pinhole"`` or ``"ortho"``.
            atol: tolerance of the rigidity check.

        Returns:
            :class:`Cameras` with ``viewmats [..., V, 4, 4]``.

        Example:
            >>> pose = torch.eye(4)
            >>> pose[:3, 3] = torch.tensor([1.0, 2.0, 3.0])  # camera at (1, 2, 3)
            >>> K = torch.tensor([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]])
            >>> cams = Cameras.from_cam2world(pose[None], K[None], height=96, width=128)
            >>> cams.centers()[0].tolist(), cams.viewmats[0, :3, 3].tolist()
            ([1.0, 2.0, 3.0], [-1.0, -2.0, -3.0])
        """
        check_tensor("cam2world", cam2world, min_dim=3, last=(4, 4))
        check_float("cam2world", cam2world)
        if value_checks_enabled():
            check_finite("cam2world", cam2world)
            R = cam2world[..., :3, :3]
            eye = torch.eye(3, dtype=R.dtype, device=R.device)
            bottom = torch.tensor([0.0, 0, 0, 1], dtype=R.dtype, device=R.device)
            if cam2world.numel() and (
                not torch.allclose(R @ R.transpose(-1, -2), eye.expand_as(R), atol=atol)
                or not torch.allclose(torch.linalg.det(R), torch.ones_like(R[..., 0, 0]), atol=atol)
                or not torch.equal(cam2world[..., 3, :], bottom.expand_as(cam2world[..., 3, :]))
            ):
                raise ValueError(
                    "cam2world must be rigid transforms [R t; 0 0 0 1] with R a rotation "
                    f"(R R^T = I, det R = 1 within atol={atol}), got {tuple(cam2world.shape)} "
                    "matrices that are not"
                )
        return Cameras(rigid_inverse(cam2world), Ks, height=height, width=width, model=model)

    def cam2world(self) -> torch.Tensor:
        """``[..., V, 4, 4]`` camera-to-world transforms, the rigid inverse of ``viewmats``."""
        return rigid_inverse(self.viewmats)

    def to(self, *args, **kwargs) -> Cameras:
        return _map_tensors(self, lambda t: t.to(*args, **kwargs))

    def __getitem__(self, index) -> Cameras:
        """Index the batch dimensions (not the views)."""
        out = _map_tensors(self, lambda t: t[index])
        if out.viewmats.dim() < 3:
            raise IndexError("Cameras can only be indexed along their batch dimensions")
        return out


_FIELDS.update(
    {cls: tuple((f.name, f.default) for f in fields(cls)) for cls in (Gaussians, Cameras)}
)


def _check_camera_values(viewmats: torch.Tensor, Ks: torch.Tensor) -> None:
    """The value checks of :class:`Cameras`: finite, invertible intrinsics without skew."""
    check_finite("viewmats", viewmats)
    check_finite("Ks", Ks)
    if not Ks.numel():
        return
    fx, fy = Ks[..., 0, 0], Ks[..., 1, 1]
    if bool(((fx == 0) | (fy == 0)).any()):
        raise ValueError("Ks must be invertible: fx and fy must be non-zero")
    bottom = Ks[..., 2, :]
    expected = torch.tensor([0.0, 0.0, 1.0], dtype=bottom.dtype, device=bottom.device)
    if not torch.allclose(bottom, expected.expand_as(bottom)):
        raise ValueError("Ks must have last row [0, 0, 1]")
    if bool((Ks[..., 1, 0] != 0).any()):
        raise ValueError("Ks must have K[1, 0] == 0 (upper-triangular intrinsics)")
    if bool((Ks[..., 0, 1] != 0).any()):
        raise ValueError("Ks with skew (K[0, 1] != 0) are not supported")


@dataclass(frozen=True)
class VoxelGrid:
    """An axis-aligned voxel grid.

    Voxel ``(i, j, k)`` has centre ``origin + (idx + 0.5) * voxel_size``; dense tensors over the
    grid are laid out ``[..., X, Y, Z]``.

    Attributes:
        origin: world position of the grid's minimum corner (3 floats).
        voxel_size: voxel edge lengths (3 floats; a single float means cubic voxels).
        shape: number of voxels ``(X, Y, Z)``.

    Example:
        >>> grid = VoxelGrid.from_bounds((-50, -50, -5), (50, 50, 3), (200, 200, 16))
        >>> grid.voxel_size, grid.centers().shape, grid.centers()[0, 0, 0].tolist()
        ((0.5, 0.5, 0.5), torch.Size([200, 200, 16, 3]), [-49.75, -49.75, -4.75])
    """

    origin: tuple[float, float, float]
    voxel_size: tuple[float, float, float]
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        def as_floats(name, value):
            if isinstance(value, torch.Tensor):
                value = value.tolist()
            if isinstance(value, (int, float)):
                value = (value,) * 3
            value = tuple(float(v) for v in value)
            if len(value) != 3:
                raise ValueError(f"{name} must have 3 entries, got {value!r}")
            return value

        origin = as_floats("origin", self.origin)
        size = as_floats("voxel_size", self.voxel_size)
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 3 or any(s <= 0 for s in shape):
            raise ValueError(f"shape must be 3 positive ints, got {self.shape!r}")
        if any(not (s > 0) or s == float("inf") for s in size):
            raise ValueError(f"voxel_size must be positive and finite, got {size!r}")
        if any(o != o or abs(o) == float("inf") for o in origin):
            raise ValueError(f"origin must be finite, got {origin!r}")
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "voxel_size", size)
        object.__setattr__(self, "shape", shape)

    @staticmethod
    def from_bounds(lower, upper, shape) -> VoxelGrid:
        """The grid of ``shape`` voxels that exactly covers the box ``[lower, upper]``."""
        size = tuple((float(u) - float(l)) / int(s) for l, u, s in zip(lower, upper, shape))
        return VoxelGrid(tuple(float(v) for v in lower), size, tuple(shape))

    @property
    def num_voxels(self) -> int:
        X, Y, Z = self.shape
        return X * Y * Z

    @property
    def upper(self) -> tuple[float, float, float]:
        """World position of the maximum corner."""
        return tuple(o + n * s for o, n, s in zip(self.origin, self.shape, self.voxel_size))

    def centers(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """Voxel centres, ``[X, Y, Z, 3]``."""
        axes = [
            o + (torch.arange(n, device=device, dtype=dtype) + 0.5) * s
            for o, n, s in zip(self.origin, self.shape, self.voxel_size)
        ]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)

    def world_to_index(self, points: torch.Tensor) -> torch.Tensor:
        """Continuous voxel coordinates of ``points [..., 3]``; voxel ``i`` spans ``[i, i + 1)``."""
        origin = points.new_tensor(self.origin)
        size = points.new_tensor(self.voxel_size)
        return (points - origin) / size

    def to(self, *args, **kwargs) -> VoxelGrid:
        """Grids hold no tensors; returns ``self`` (for symmetry with the other types)."""
        return self
