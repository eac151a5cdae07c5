"""Self-supervised image losses of ViPOcc (Eq. 8-11): temporal photometric alignment by depth
warping, and rendering reconstruction consistency for depth and RGB.

Pixel ``(row, col)`` has homogeneous centre ``x~ = (col + 0.5, row + 0.5, 1)``; depth maps hold
camera-frame ``z`` (``D x~ = K p``), rendered "distances" hold ``|p|``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from gaussocc_ops._checks import check_float, check_tensor, compute_dtype, describe
from gaussocc_ops.losses._common import check_mask
from gaussocc_ops.losses.ssim import ssim
from gaussocc_ops.rays import _pixel_grid_rays


def _check_image(name, t, ndim):
    check_tensor(name, t, min_dim=ndim)
    check_float(name, t)
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dims, got {describe(t)}")


def _check_same(name, t, ref_name, ref, shape):
    if tuple(t.shape) != tuple(shape):
        raise ValueError(
            f"{name} must have shape {tuple(shape)} to match {ref_name}, got {describe(t)}"
        )
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}")


class Warp(NamedTuple):
    """image: ``[B, C, H, W]`` source sampled at the projections. valid: ``[B, H, W]`` bool,
    projection in front of the camera and inside the image. depth: ``[B, H, W]`` z of the
    target points in the source frame. grid: ``[B, H, W, 2]`` ``grid_sample`` coordinates."""

    image: torch.Tensor
    valid: torch.Tensor
    depth: torch.Tensor
    grid: torch.Tensor


def warp_to_target(
    source: torch.Tensor,
    target_depth: torch.Tensor,
    target_to_source: torch.Tensor,
    Ks: torch.Tensor,
    *,
    min_depth: float = 1e-3,
) -> Warp:
    """Warp ``source`` into the target view: ``x~_s ~ K T D_t(x) K^{-1} x~_t`` (ViPOcc Eq. 8),
    sampled bilinearly (``grid_sample``, ``align_corners=False``, zeros outside).

    Args:
        source: ``[B, C, H, W]``. target_depth: ``[B, H, W]`` z-depth of the target view.
        target_to_source: ``[B, 4, 4]`` relative pose mapping target-camera points to the source
            camera. Ks: ``[B, 3, 3]`` intrinsics shared by both views.
        min_depth: projections with source-frame z below this are invalid.

    Example:
        >>> src = torch.rand(1, 3, 8, 10)
        >>> K = torch.tensor([[[10.0, 0, 5], [0, 10.0, 4], [0, 0, 1]]])
        >>> w = warp_to_target(src, torch.full((1, 8, 10), 2.0), torch.eye(4)[None], K)
        >>> bool(w.valid.all()), torch.allclose(w.image, src, atol=1e-5)  # identity pose
        (True, True)
    """
    B, _, H, W = source.shape
    points = _pixel_grid_rays(Ks, H, W, normalize=False) * target_depth.unsqueeze(-1)
    R, t = target_to_source[:, :3, :3], target_to_source[:, :3, 3]
    cam = torch.einsum("bij,bhwj->bhwi", R, points) + t[:, None, None, :]
    z = cam[..., 2]
    front = z > min_depth
    safe_z = torch.where(front, z, torch.ones_like(z))
    proj = torch.einsum("bij,bhwj->bhwi", Ks, cam / safe_z.unsqueeze(-1))
    grid = torch.stack([2 * proj[..., 0] / W - 1, 2 * proj[..., 1] / H - 1], dim=-1)
    grid = torch.where(front.unsqueeze(-1), grid, torch.full_like(grid, -2.0))
    inside = (grid.abs() <= 1).all(-1)
    image = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return Warp(image, front & inside, z, grid)


def photometric_alignment_loss(
    target: torch.Tensor,
    source: torch.Tensor,
    target_depth: torch.Tensor,
    target_to_source: torch.Tensor,
    Ks: torch.Tensor,
    *,
    source_depth: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    ssim_weight: float = 0.0,
    min_depth: float = 1e-3,
) -> torch.Tensor:
    """Temporal alignment loss (ViPOcc Eq. 9): ``(1/N) sum_x M(x) |I_t(x) - I^_t(x)|`` where
    ``I^_t`` is ``source`` warped by :func:`warp_to_target` and ``N`` the number of valid pixels.

    ``M = 1 - |z_s - D_s(x_s)| / (z_s + D_s(x_s))`` is the depth-consistency weight of
    Bian et al. (2019) when ``source_depth`` is given (``z_s``: projected depth,
    ``D_s(x_s)``: source depth sampled at the projection), else 1. Valid pixels project in front
    of the source camera and inside its image (and, with ``source_depth``, onto a positive
    depth), and satisfy ``mask``. The error is the channel mean of
    ``(1 - w) |I - I^| + w (1 - SSIM) / 2`` with ``w = ssim_weight`` (0: plain L1, as Eq. 9).

    Args:
        target, source: ``[B, C, H, W]`` images. target_depth: ``[B, H, W]`` z-depth.
        target_to_source: ``[B, 4, 4]``. Ks: ``[B, 3, 3]``.
        source_depth: optional ``[B, H, W]``. mask: optional ``[B, H, W]`` bool.
        ssim_weight: in ``[0, 1]``. min_depth: see :func:`warp_to_target`.

    Returns:
        scalar, 0 when no pixel is valid.

    Example:
        >>> img = torch.rand(1, 3, 8, 8); K = torch.tensor([[[8., 0, 4], [0, 8., 4], [0, 0, 1]]])
        >>> depth, pose = torch.full((1, 8, 8), 5.0), torch.eye(4)[None]
        >>> float(photometric_alignment_loss(img, img, depth, pose, K))
        0.0
    """
    _check_image("target", target, 4)
    _check_image("source", source, 4)
    _check_same("source", source, "target", target, target.shape)
    B, _, H, W = target.shape
    _check_image("target_depth", target_depth, 3)
    _check_same("target_depth", target_depth, "target", target, (B, H, W))
    _check_image("target_to_source", target_to_source, 3)
    _check_same("target_to_source", target_to_source, "target", target, (B, 4, 4))
    _check_image("Ks", Ks, 3)
    _check_same("Ks", Ks, "target", target, (B, 3, 3))
    if source_depth is not None:
        _check_image("source_depth", source_depth, 3)
        _check_same("source_depth", source_depth, "target", target, (B, H, W))
    check_mask("mask", mask, (B, H, W), target.device)
    _check_alignment_args(ssim_weight, min_depth)
    dtype = compute_dtype(target, source, target_depth, target_to_source, Ks, source_depth)
    tgt, src = target.to(dtype), source.to(dtype)
    warp = warp_to_target(
        src, target_depth.to(dtype), target_to_source.to(dtype), Ks.to(dtype), min_depth=min_depth
    )
    valid = warp.valid if mask is None else warp.valid & mask
    weight = valid.to(dtype)
    if source_depth is not None:
        sampled = F.grid_sample(
            source_depth.to(dtype).unsqueeze(1),
            warp.grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        ).squeeze(1)
        valid = valid & (sampled > 0)
        total = (warp.depth + sampled).clamp(min=torch.finfo(dtype).tiny)
        consistency = (1 - (warp.depth - sampled).abs() / total).clamp(0, 1)
        weight = valid.to(dtype) * torch.where(valid, consistency, torch.zeros_like(consistency))
    error = (tgt - warp.image).abs()
    if ssim_weight > 0:
        error = (1 - ssim_weight) * error + ssim_weight * (1 - ssim(tgt, warp.image)) / 2
    error = error.mean(1)
    return (weight * error).sum() / valid.sum().clamp(min=1).to(dtype)


def depth_reconstruction_consistency_loss(
    rendered_distance: torch.Tensor,
    depth: torch.Tensor,
    Ks: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """ViPOcc Eq. 10: ``(1/M) sum_x | D^_r(x) / |K^{-1} x~| - D^(x) |`` — the rendered ray
    distance converted to z-depth against the predicted depth, over the ``M`` valid pixels
    (``mask`` and finite values; 0 when none).

    Args:
        rendered_distance: ``[B, H, W]`` distance along the pixel ray (``|p|``).
        depth: ``[B, H, W]`` predicted z-depth. Ks: ``[B, 3, 3]``.
        mask: optional ``[B, H, W]`` bool.

    Example:
        >>> K = torch.tensor([[[4., 0, 2], [0, 4., 2], [0, 0, 1]]])
        >>> ones = torch.ones(1, 4, 4)
        >>> float(depth_reconstruction_consistency_loss(ones, ones, K)) > 0
        True
    """
    _check_image("rendered_distance", rendered_distance, 3)
    _check_image("depth", depth, 3)
    _check_same("depth", depth, "rendered_distance", rendered_distance, rendered_distance.shape)
    B, H, W = depth.shape
    _check_image("Ks", Ks, 3)
    _check_same("Ks", Ks, "rendered_distance", rendered_distance, (B, 3, 3))
    check_mask("mask", mask, (B, H, W), depth.device)
    dtype = compute_dtype(rendered_distance, depth, Ks)
    r, d = rendered_distance.to(dtype), depth.to(dtype)
    valid = torch.isfinite(r) & torch.isfinite(d)
    if mask is not None:
        valid &= mask
    ray_norm = _pixel_grid_rays(Ks.to(dtype), H, W, normalize=False).norm(dim=-1)
    diff = torch.where(valid, r / ray_norm - d, torch.zeros_like(d)).abs()
    return diff.sum() / valid.sum().clamp(min=1).to(dtype)


def rgb_reconstruction_loss(
    rendered: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    betas: tuple[float, float] = (0.85, 0.15),
    window_size: int = 3,
) -> torch.Tensor:
    """ViPOcc Eq. 11: ``beta1 (1 - SSIM(I, I^_r)) / 2 + beta2 |I - I^_r|``, averaged over channels
    and valid pixels (``(1 - SSIM) / 2`` is the dissimilarity used as "SSIM term" by Monodepth2
    and BTS). ``betas = (0.85, 0.15)``.

    Args:
        rendered, target: ``[B, C, H, W]`` images or patches. mask: optional ``[B, H, W]`` bool.
        betas: ``(beta1, beta2)``. window_size: SSIM window (box).

    Example:
        >>> img = torch.rand(2, 3, 8, 8)
        >>> float(rgb_reconstruction_loss(img, img))
        0.0
    """
    _check_image("rendered", rendered, 4)
    _check_image("target", target, 4)
    _check_same("target", target, "rendered", rendered, rendered.shape)
    B, _, H, W = rendered.shape
    check_mask("mask", mask, (B, H, W), rendered.device)
    _check_rgb_args(betas, window_size)
    dtype = compute_dtype(rendered, target)
    x, y = rendered.to(dtype), target.to(dtype)
    per_pixel = (
        betas[0] * (1 - ssim(y, x, window_size=window_size)) / 2 + betas[1] * (y - x).abs()
    ).mean(1)
    valid = torch.ones_like(per_pixel, dtype=torch.bool) if mask is None else mask
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1).to(dtype)


def _check_alignment_args(ssim_weight: float, min_depth: float) -> None:
    if not 0 <= ssim_weight <= 1:
        raise ValueError(f"ssim_weight must lie in [0, 1], got {ssim_weight}")
    if not min_depth >= 0:
        raise ValueError(f"min_depth must be >= 0, got {min_depth}")


def _check_rgb_args(betas: tuple[float, float], window_size: int) -> None:
    if len(betas) != 2:
        raise ValueError(f"betas must be (beta1, beta2), got {betas!r}")
    if (
        isinstance(window_size, bool)
        or not isinstance(window_size, int)
        or window_size < 1
        or (window_size % 2 == 0)
    ):
        raise ValueError(f"window_size must be a positive odd int, got {window_size!r}")


class PhotometricAlignmentLoss(nn.Module):
    """Module form of :func:`photometric_alignment_loss`; the options are checked here, once.

    Shape:
        - target, source: ``[B, C, H, W]``; target_depth, source_depth, mask: ``[B, H, W]``;
          target_to_source: ``[B, 4, 4]``; Ks: ``[B, 3, 3]``.
        - output: scalar.

    Example:
        >>> loss_fn = PhotometricAlignmentLoss(ssim_weight=0.85)
        >>> loss_fn
        PhotometricAlignmentLoss(ssim_weight=0.85, min_depth=0.001)
    """

    def __init__(self, *, ssim_weight: float = 0.0, min_depth: float = 1e-3) -> None:
        super().__init__()
        _check_alignment_args(ssim_weight, min_depth)
        self.ssim_weight = float(ssim_weight)
        self.min_depth = float(min_depth)

    def extra_repr(self) -> str:
        return f"ssim_weight={self.ssim_weight}, min_depth={self.min_depth}"

    def forward(
        self,
        target: torch.Tensor,
        source: torch.Tensor,
        target_depth: torch.Tensor,
        target_to_source: torch.Tensor,
        Ks: torch.Tensor,
        source_depth: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return photometric_alignment_loss(
            target,
            source,
            target_depth,
            target_to_source,
            Ks,
            source_depth=source_depth,
            mask=mask,
            ssim_weight=self.ssim_weight,
            min_depth=self.min_depth,
        )


class ReconstructionConsistencyLoss(nn.Module):
    """ViPOcc's ``L_rc^d + L_rc^rgb`` (Eq. 10 + Eq. 11):
    :func:`depth_reconstruction_consistency_loss` plus :func:`rgb_reconstruction_loss`.

    Shape:
        - rendered_distance, depth, mask: ``[B, H, W]``; Ks: ``[B, 3, 3]``;
          rendered_rgb, rgb: ``[B, C, H, W]``.
        - output: scalar.

    Example:
        >>> loss_fn = ReconstructionConsistencyLoss(betas=(0.85, 0.15))
        >>> loss_fn
        ReconstructionConsistencyLoss(betas=(0.85, 0.15), window_size=3)
    """

    def __init__(self, *, betas: tuple[float, float] = (0.85, 0.15), window_size: int = 3) -> None:
        super().__init__()
        _check_rgb_args(betas, window_size)
        self.betas = (float(betas[0]), float(betas[1]))
        self.window_size = window_size

    def extra_repr(self) -> str:
        return f"betas={self.betas}, window_size={self.window_size}"

    def forward(
        self,
        rendered_distance: torch.Tensor,
        depth: torch.Tensor,
        Ks: torch.Tensor,
        rendered_rgb: torch.Tensor,
        rgb: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return depth_reconstruction_consistency_loss(
            rendered_distance, depth, Ks, mask
        ) + rgb_reconstruction_loss(
            rendered_rgb, rgb, mask, betas=self.betas, window_size=self.window_size
        )
