"""Structural similarity (SSIM) of image batches, windowed and differentiable."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from gaussocc_ops._checks import check_float, check_tensor, compute_dtype, describe


def _window(kind: str, size: int, sigma: float, dtype, device) -> torch.Tensor:
    if kind == "box":
        w1 = torch.full((size,), 1.0 / size, dtype=dtype, device=device)
    else:
        x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
        w1 = torch.exp(-0.5 * (x / sigma) ** 2)
        w1 = w1 / w1.sum()
    return w1[:, None] * w1[None, :]


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    window_size: int = 3,
    window: Literal["box", "gaussian"] = "box",
    sigma: float = 1.5,
    c1: float = 0.01**2,
    c2: float = 0.03**2,
) -> torch.Tensor:
    """Per-pixel SSIM map.

    ``SSIM = (2 mu_x mu_y + c1)(2 s_xy + c2) / ((mu_x^2 + mu_y^2 + c1)(s_x^2 + s_y^2 + c2))``
    with local means/variances under a ``window_size`` box or Gaussian window, images padded by
    reflection so the map has the input's size. Defaults (3x3 box, c1 = 0.01², c2 = 0.03² for
    images in [0, 1]) are those of the self-supervised depth literature (Monodepth2, BTS).

    Args:
        x, y: ``[B, C, H, W]`` images (same shape; H, W > window_size // 2 for reflection).
        window_size: odd window width. window: ``"box"`` or ``"gaussian"`` (std ``sigma``).
        c1, c2: stabilising constants.

    Returns:
        ``[B, C, H, W]`` SSIM in ``[-1, 1]`` (1 for identical images).

    Example:
        >>> img = torch.rand(1, 3, 16, 16)
        >>> bool(torch.allclose(ssim(img, img), torch.ones(1, 3, 16, 16)))
        True
    """
    check_tensor("x", x, min_dim=4)
    check_tensor("y", y, min_dim=4)
    check_float("x", x)
    check_float("y", y)
    if x.dim() != 4 or x.shape != y.shape:
        raise ValueError(
            f"x and y must both be [B, C, H, W] of one shape, got {describe(x)} and {describe(y)}"
        )
    if y.device != x.device:
        raise ValueError(f"y is on {y.device} but x is on {x.device}")
    if window not in ("box", "gaussian"):
        raise ValueError(f"window must be 'box' or 'gaussian', got {window!r}")
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd int, got {window_size}")
    dtype = compute_dtype(x, y)
    x, y = x.to(dtype), y.to(dtype)
    B, C, H, W = x.shape
    pad = window_size // 2
    if x.numel() == 0:
        return x.new_ones(x.shape)
    if pad and (H <= pad or W <= pad):
        raise ValueError(f"images of size {H}x{W} are too small for window_size={window_size}")
    kernel = _window(window, window_size, sigma, dtype, x.device).expand(
        C, 1, window_size, window_size
    )

    def local_mean(t):
        t = F.pad(t, (pad, pad, pad, pad), mode="reflect") if pad else t
        return F.conv2d(t, kernel, groups=C)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov = local_mean(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return num / den
