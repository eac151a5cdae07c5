"""Depth building blocks: the Gaussian depth gate (SGR-OCC Eq. 2), inverse-depth alignment of a
depth prior (ViPOcc Eq. 3) and identity-initialised fusion (SGR-OCC Eq. 4-5)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gaussocc_ops._checks import (
    as_scalar,
    check_float_tensors,
    check_int,
    check_number,
    check_positive,
    check_same_device,
    check_tensor,
    describe,
)


def gaussian_depth_gate(
    d_proj: torch.Tensor,
    d_pred: torch.Tensor,
    alpha: float | torch.Tensor,
    sigma: float | torch.Tensor,
) -> torch.Tensor:
    """Gaussian depth gate (SGR-OCC Eq. 2).

    ``G = alpha * exp(-(d_proj - d_pred)^2 / (2 sigma^2))``: close to ``alpha`` where the depth of
    a 3D point (``d_proj``) agrees with the predicted depth at its pixel (``d_pred``), close to 0
    where they disagree by several ``sigma``.

    Args:
        d_proj: ``[...]`` depths of 3D points in the camera (metres).
        d_pred: ``[...]`` predicted depths, broadcastable with ``d_proj``.
        alpha: gate scale (float or one-element tensor).
        sigma: depth tolerance, ``> 0`` (float or one-element tensor).

    Returns:
        The gate, broadcast shape of ``d_proj`` and ``d_pred``; float32 (float64 if an input is).
        Differentiable in every argument.

    Example:
        >>> gaussian_depth_gate(torch.tensor([2.0, 2.5]), torch.tensor([2.0, 2.0]), 1.0, 0.5)
        tensor([1.0000, 0.6065])
    """
    check_float_tensors(d_proj=d_proj, d_pred=d_pred)
    check_same_device(d_proj=d_proj, d_pred=d_pred)
    try:
        torch.broadcast_shapes(d_proj.shape, d_pred.shape)
    except RuntimeError:
        raise ValueError(
            f"d_proj ({describe(d_proj)}) and d_pred ({describe(d_pred)}) must broadcast"
        ) from None
    dtype = torch.float64 if torch.float64 in (d_proj.dtype, d_pred.dtype) else torch.float32
    like = d_proj.to(dtype)
    alpha_t = as_scalar("alpha", alpha, like)
    sigma_t = as_scalar("sigma", sigma, like)
    check_positive("sigma", sigma_t)
    r = like - d_pred.to(dtype)
    return alpha_t * torch.exp(-(r * r) / (2.0 * sigma_t * sigma_t))


class GaussianDepthGate(nn.Module):
    """:func:`gaussian_depth_gate` with a learnable scale ``alpha`` and tolerance ``sigma``.

    ``sigma`` is stored as ``log_sigma`` (``sigma = exp(log_sigma)``), so it stays positive under
    any optimiser step; ``alpha`` is a plain parameter.

    Args:
        alpha: initial scale (default 1).
        sigma: initial tolerance in metres (default 0.5, SGR-OCC's value).

    Shape:
        ``forward(d_proj [...], d_pred [...])`` (broadcastable) → the broadcast shape.

    Example:
        >>> gate = GaussianDepthGate()
        >>> gate
        GaussianDepthGate(alpha=1, sigma=0.5)
        >>> gate(torch.tensor([3.0]), torch.tensor([3.0]))
        tensor([1.], grad_fn=<MulBackward0>)
    """

    def __init__(self, alpha: float = 1.0, sigma: float = 0.5) -> None:
        super().__init__()
        alpha = check_number("alpha", alpha)
        sigma = check_number("sigma", sigma, minimum=0.0, strict=True)
        self.alpha = nn.Parameter(torch.tensor(alpha))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))

    @property
    def sigma(self) -> torch.Tensor:
        """``exp(log_sigma)``, 0-dim."""
        return self.log_sigma.exp()

    def extra_repr(self) -> str:
        with torch.no_grad():
            return f"alpha={self.alpha.item():.4g}, sigma={self.sigma.item():.4g}"

    def forward(self, d_proj: torch.Tensor, d_pred: torch.Tensor) -> torch.Tensor:
        """The gate of ``d_proj`` against ``d_pred`` (see :func:`gaussian_depth_gate`)."""
        return gaussian_depth_gate(d_proj, d_pred, self.alpha, self.sigma)


def inverse_depth_align(
    prior_depth: torch.Tensor,
    residual: torch.Tensor,
    *,
    eps: float = 1e-8,
    min_depth: float = 0.1,
    max_depth: float = 80.0,
) -> torch.Tensor:
    """Inverse-depth alignment of a depth prior (ViPOcc Eq. 3).

    ``D = 1 / clamp(1 / clamp(D_p, min_depth, max_depth) + f + eps, 1 / max_depth, 1 / min_depth)``.
    The prior is clamped to the depth range, the residual ``f`` is added in inverse depth and the
    denominator is clamped to ``[1 / max_depth, 1 / min_depth]``, so the output always lies in
    ``[min_depth, max_depth]`` (never negative, zero or infinite). Where a clamp is active the
    gradient is zero, as for ``torch.clamp``.

    Args:
        prior_depth: ``[...]`` prior depth (e.g. ``[B, 1, H, W]`` from a foundation model), metres.
        residual: residual inverse depth ``f``, broadcastable to ``prior_depth`` (1/metres).
        eps: the small constant of Eq. 3.
        min_depth, max_depth: the output range, ``0 < min_depth < max_depth``.

    Returns:
        Aligned depth of the broadcast shape; float32 (float64 if an input is).

    Example:
        >>> inverse_depth_align(torch.tensor([2.0, 4.0]), torch.tensor([0.0, 0.25]), eps=0.0)
        tensor([2., 2.])
    """
    check_float_tensors(prior_depth=prior_depth, residual=residual)
    check_same_device(prior_depth=prior_depth, residual=residual)
    _check_depth_range(eps, min_depth, max_depth)
    try:
        torch.broadcast_shapes(prior_depth.shape, residual.shape)
    except RuntimeError:
        raise ValueError(
            f"residual ({describe(residual)}) must broadcast to prior_depth "
            f"({describe(prior_depth)})"
        ) from None
    dtype = torch.float64 if torch.float64 in (prior_depth.dtype, residual.dtype) else torch.float32
    prior = prior_depth.to(dtype).clamp(min_depth, max_depth)
    inverse = (1.0 / prior + residual.to(dtype) + eps).clamp(1.0 / max_depth, 1.0 / min_depth)
    return 1.0 / inverse


class InverseDepthAlignment(nn.Module):
    """ViPOcc's inverse-depth alignment module: a convolutional head predicts the residual inverse
    depth ``f = conv(F_s)`` from spatial features and :func:`inverse_depth_align` applies it.

    The head is one ``kernel_size`` convolution to one channel. It is zero-initialised, so before
    training the module returns the clamped prior (up to ``eps``). When the features are smaller
    than the prior, the residual is upsampled bilinearly (``align_corners=False``) to its size.

    Args:
        in_channels: channels of the spatial features.
        kernel_size: odd convolution size (default 3, "same" padding).
        eps, min_depth, max_depth: as in :func:`inverse_depth_align`.

    Shape:
        ``forward(features [B, C_in, h, w], prior_depth [B, 1, H, W])`` → ``[B, 1, H, W]``.

    Example:
        >>> align = InverseDepthAlignment(16)
        >>> align
        InverseDepthAlignment(
          in_channels=16, kernel_size=3, eps=1e-08, min_depth=0.1, max_depth=80.0
          (head): Conv2d(16, 1, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
        )
        >>> out = align(torch.randn(2, 16, 24, 80), torch.full((2, 1, 96, 320), 10.0))
        >>> out.shape, round(out.max().item(), 4)
        (torch.Size([2, 1, 96, 320]), 10.0)
    """

    def __init__(
        self,
        in_channels: int,
        kernel_size: int = 3,
        *,
        eps: float = 1e-8,
        min_depth: float = 0.1,
        max_depth: float = 80.0,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("kernel_size", kernel_size, 1)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
        _check_depth_range(eps, min_depth, max_depth)
        self.in_channels, self.kernel_size = in_channels, kernel_size
        self.head = nn.Conv2d(in_channels, 1, kernel_size, padding=kernel_size // 2)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.eps, self.min_depth, self.max_depth = float(eps), float(min_depth), float(max_depth)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, kernel_size={self.kernel_size}, eps={self.eps}, "
            f"min_depth={self.min_depth}, max_depth={self.max_depth}"
        )

    def forward(self, features: torch.Tensor, prior_depth: torch.Tensor) -> torch.Tensor:
        """The aligned depth (shapes in the class docstring)."""
        check_tensor("features", features, min_dim=4)
        check_tensor("prior_depth", prior_depth, min_dim=4)
        if prior_depth.dim() != 4 or prior_depth.shape[1] != 1:
            raise ValueError(f"prior_depth must be [B, 1, H, W], got {describe(prior_depth)}")
        if features.dim() != 4 or features.shape[0] != prior_depth.shape[0]:
            raise ValueError(
                f"features must be [B, C_in, h, w] with B = {prior_depth.shape[0]}, "
                f"got {describe(features)}"
            )
        residual = self.head(features)
        if residual.shape[-2:] != prior_depth.shape[-2:]:
            residual = F.interpolate(
                residual, size=prior_depth.shape[-2:], mode="bilinear", align_corners=False
            )
        return inverse_depth_align(
            prior_depth, residual, eps=self.eps, min_depth=self.min_depth, max_depth=self.max_depth
        )


class IdentityInitFusion(nn.Module):
    """Identity-initialised fusion (SGR-OCC Eq. 4-5): ``F = W_h F_hist + W_c F_curr + b``.

    At initialisation ``W_h = 0``, ``W_c = I`` and ``b = 0``, so the output equals ``F_curr``.
    ``W_c`` is parametrised as ``I + delta_c`` (``delta_c`` starts at 0) and the layer computes
    ``F_curr + delta_c F_curr + W_h F_hist + b``; the output is then ``F_curr`` bit for bit before
    training, whatever the matmul precision (TF32 included). The gradient of ``delta_c`` is the
    gradient of ``W_c``.

    Args:
        channels: feature channels ``C`` of ``F_curr`` (and of the output).
        hist_channels: channels of ``F_hist`` (default ``channels``).

    Shape:
        ``forward(f_hist [..., C_hist], f_curr [..., C])`` → ``[..., C]``.

    Example:
        >>> fuse = IdentityInitFusion(8)
        >>> fuse
        IdentityInitFusion(channels=8, hist_channels=8)
        >>> cur = torch.randn(4, 8)
        >>> torch.equal(fuse(torch.randn(4, 8), cur), cur)
        True
    """

    def __init__(self, channels: int, hist_channels: int | None = None) -> None:
        super().__init__()
        check_int("channels", channels, 1)
        hist_channels = channels if hist_channels is None else hist_channels
        check_int("hist_channels", hist_channels, 1)
        self.weight_hist = nn.Parameter(torch.zeros(channels, hist_channels))
        self.delta_curr = nn.Parameter(torch.zeros(channels, channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    @property
    def weight_curr(self) -> torch.Tensor:
        """``W_c = I + delta_c``."""
        eye = torch.eye(
            self.delta_curr.shape[0], dtype=self.delta_curr.dtype, device=self.delta_curr.device
        )
        return eye + self.delta_curr

    def extra_repr(self) -> str:
        C, C_hist = self.weight_hist.shape
        return f"channels={C}, hist_channels={C_hist}"

    def forward(self, f_hist: torch.Tensor, f_curr: torch.Tensor) -> torch.Tensor:
        """``F_curr + delta_c F_curr + W_h F_hist + b`` (shapes in the class docstring)."""
        C, C_hist = self.weight_hist.shape
        check_tensor("f_curr", f_curr, min_dim=1, last=(C,))
        check_tensor("f_hist", f_hist, min_dim=1, last=(C_hist,))
        if f_hist.shape[:-1] != f_curr.shape[:-1]:
            raise ValueError(
                f"f_hist ({describe(f_hist)}) and f_curr ({describe(f_curr)}) must share "
                "leading dims"
            )
        update = F.linear(f_curr, self.delta_curr) + F.linear(f_hist, self.weight_hist, self.bias)
        return f_curr + update


def _check_depth_range(eps: float, min_depth: float, max_depth: float) -> None:
    min_depth = check_number("min_depth", min_depth, minimum=0.0, strict=True)
    max_depth = check_number("max_depth", max_depth, minimum=0.0, strict=True)
    if not min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth < inf, got {min_depth}, {max_depth}")
    eps = check_number("eps", eps, minimum=0.0)
    if not eps < 1.0 / max_depth:
        raise ValueError(f"eps must be in [0, 1/max_depth), got {eps}")
