"""Pixels and camera rays of square image patches (e.g. those drawn by ``snog_sample``)."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from gaussocc_ops._checks import (
    check_float,
    check_image_size,
    check_tensor,
    compute_dtype,
    describe,
    value_checks_enabled,
)
from gaussocc_ops.types import Cameras


class PatchPixels(NamedTuple):
    """The ``l x l`` pixels of ``P`` patches per image.

    rows, cols: ``[..., P, l, l]`` int64 pixel row and column (``rows[..., p, i, j]`` is row
        ``row0 + i``, ``cols[..., p, i, j]`` column ``col0 + j``).
    index: ``[..., P, l, l]`` int64 flat index ``row * W + col`` into an image flattened over
        ``(H, W)``.
    uv: ``[..., P, l, l, 2]`` pixel centres ``(x, y) = (col + 0.5, row + 0.5)``, the points to
        unproject for rays (see :func:`patch_rays`).

    Invalid patches map every entry to pixel ``(0, 0)``; mask them with the sampler's ``valid``.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    index: torch.Tensor
    uv: torch.Tensor


def patch_pixels(
    centers: torch.Tensor,
    patch_size: int,
    image_size: tuple[int, int],
    valid: torch.Tensor | None = None,
) -> PatchPixels:
    """Pixels covered by the ``l x l`` patches centred at ``centers``.

    The patch of centre ``(x, y)`` has top-left pixel ``(row0, col0) = (floor(y - l/2 + 1/2),
    floor(x - l/2 + 1/2))`` (exact for the grid-aligned centres of ``snog_sample``; other centres
    snap to the nearest grid patch) and covers rows ``row0 .. row0 + l - 1``, columns
    ``col0 .. col0 + l - 1``.

    Args:
        centers: ``[..., P, 2]`` patch centres ``(x, y)`` in pixels.
        patch_size: ``l``, patch edge in pixels.
        image_size: ``(H, W)``, height first.
        valid: optional ``[..., P]`` bool mask; only valid patches must lie inside the image.

    Returns:
        :class:`PatchPixels` ``(rows, cols, index [..., P, l, l], uv [..., P, l, l, 2])``.

    Raises:
        ValueError: when a (valid) patch reaches outside the image.

    Example:
        >>> px = patch_pixels(torch.tensor([[5., 3.]]), 2, (6, 8))
        >>> px.rows[0].tolist(), px.cols[0].tolist(), px.index[0].tolist()
        ([[2, 2], [3, 3]], [[4, 5], [4, 5]], [[20, 21], [28, 29]])
    """
    check_tensor("centers", centers, min_dim=2, last=(2,))
    check_float("centers", centers)
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    H, W = check_image_size("image_size", tuple(image_size))
    if valid is None:
        valid = torch.ones(centers.shape[:-1], dtype=torch.bool, device=centers.device)
    else:
        check_tensor("valid", valid)
        if valid.dtype != torch.bool or valid.shape != centers.shape[:-1]:
            raise ValueError(
                f"valid must be a bool tensor of shape {tuple(centers.shape[:-1])}, "
                f"got {describe(valid)}"
            )
        if valid.device != centers.device:
            raise ValueError(f"valid is on {valid.device} but centers is on {centers.device}")
    l = patch_size
    top_left = torch.floor(centers.double() + (1 - l) / 2)
    limit = torch.tensor([W - l, H - l], dtype=torch.float64, device=centers.device)
    if value_checks_enabled():
        if not bool(torch.isfinite(top_left[valid]).all()):
            raise ValueError("centers of valid patches contain NaN or Inf values")
        outside = ((top_left < 0) | (top_left > limit)).any(-1) & valid
        if bool(outside.any()):
            raise ValueError(
                f"{int(outside.sum())} patch(es) of size {l} reach outside the {H} x {W} (H x W) "
                "image"
            )
    top_left = torch.where(valid[..., None], top_left, 0.0).long()
    offsets = torch.arange(l, device=centers.device)
    ones = torch.ones(l, dtype=torch.long, device=centers.device)
    rows = top_left[..., 1, None, None] + offsets[:, None] * ones
    cols = top_left[..., 0, None, None] + ones[:, None] * offsets
    rows = torch.where(valid[..., None, None], rows, 0)
    cols = torch.where(valid[..., None, None], cols, 0)
    uv = torch.stack((cols, rows), dim=-1).to(compute_dtype(centers)) + 0.5
    return PatchPixels(rows, cols, rows * W + cols, uv)


def patch_rays(uv: torch.Tensor, cameras: Cameras, *, normalize: bool = False) -> torch.Tensor:
    """Camera-frame ray directions ``d = K^-1 (u, v, 1)`` through pixel positions.

    ``d`` has ``z = 1``, so the point at depth ``z`` is ``z d`` and the distance along the ray is
    ``z ||d||`` (vipocc Eq. 10); ``normalize=True`` returns unit vectors instead.

    Args:
        uv: ``[*batch, ..., 2]`` pixel positions ``(x, y)`` in the cameras' images, e.g.
            ``patch_pixels(...).uv``.
        cameras: pinhole :class:`Cameras` with one view (``V = 1``) and batch shape ``[*batch]``,
            the leading dims of ``uv``.
        normalize: return unit-length directions.

    Returns:
        ``[*batch, ..., 3]`` directions in the camera frame (x right, y down, z forward).

    Example:
        >>> K = torch.tensor([[[100., 0, 32], [0, 100., 24], [0, 0, 1]]])
        >>> cams = Cameras(torch.eye(4)[None], K, height=48, width=64)
        >>> patch_rays(torch.tensor([[132., 24.]]), cams).tolist()
        [[1.0, 0.0, 1.0]]
    """
    check_tensor("uv", uv, min_dim=1, last=(2,))
    check_float("uv", uv)
    if isinstance(cameras, torch.Tensor):
        Ks, batch = _legacy_intrinsics(cameras, uv), cameras.shape[:-2]
    else:
        if not isinstance(cameras, Cameras):
            raise TypeError(f"cameras must be gaussocc_ops.Cameras, got {type(cameras).__name__}")
        if cameras.model != "pinhole" or cameras.num_views != 1:
            raise ValueError(
                f"cameras must be pinhole with one view, got model={cameras.model!r} and "
                f"{cameras.num_views} views"
            )
        if cameras.device != uv.device:
            raise ValueError(f"cameras are on {cameras.device} but uv is on {uv.device}")
        Ks, batch = cameras.Ks, cameras.batch_shape
    if uv.dim() - 1 < len(batch) or uv.shape[: len(batch)] != batch:
        raise ValueError(
            f"the cameras' batch shape {tuple(batch)} must be the leading dims of uv, "
            f"got {describe(uv)}"
        )
    dtype = compute_dtype(uv, Ks)
    per_image = uv.shape[len(batch) : -1].numel()
    flat = uv.to(dtype).reshape(batch.numel(), per_image, 2)
    K = Ks.to(dtype).reshape(-1, 1, 3, 3)
    fx, skew, cx = K[..., 0, 0], K[..., 0, 1], K[..., 0, 2]
    fy, cy = K[..., 1, 1], K[..., 1, 2]
    y = (flat[..., 1] - cy) / fy
    x = (flat[..., 0] - cx - skew * y) / fx
    dirs = torch.stack((x, y, torch.ones_like(x)), dim=-1)
    if normalize:
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    return dirs.reshape(*uv.shape[:-1], 3)


def _legacy_intrinsics(Ks: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """The deprecated ``patch_rays(uv, Ks)``: ``Ks [*batch, 3, 3]``, validated."""
    warnings.warn(
        "patch_rays(uv, Ks) is deprecated; use patch_rays(uv, cameras) with one-view Cameras",
        DeprecationWarning,
        stacklevel=3,
    )
    check_tensor("Ks", Ks, min_dim=2, last=(3, 3))
    check_float("Ks", Ks)
    if Ks.device != uv.device:
        raise ValueError(f"Ks is on {Ks.device} but uv is on {uv.device}")
    if value_checks_enabled() and Ks.numel():
        if bool((Ks[..., 0, 0] * Ks[..., 1, 1] == 0).any()):
            raise ValueError("Ks must be invertible: fx and fy must be non-zero")
        expected = torch.tensor([0.0, 0.0, 1.0], dtype=Ks.dtype, device=Ks.device)
        if not (bool((Ks[..., 1, 0] == 0).all()) and bool((Ks[..., 2, :] == expected).all())):
            raise ValueError("Ks must be upper-triangular intrinsics with last row [0, 0, 1]")
    return Ks
