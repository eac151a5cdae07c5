"""A tiny convolutional encoder shared by the example models.

It stands in for the frozen foundation model of each paper: VGGT's aggregated tokens (GPOcc),
Depth Anything V2's features and depth (ViPOcc, SGR-OCC's depth prior). Replacing it by one of
those means returning their dense features ``[B, C, h, w]`` (and, for a depth foundation model,
using its depth as the prior or the depth head's input); nothing else in the models changes.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class TinyBackbone(nn.Module):
    """Three 3x3 convolutions, the first of stride 2: ``[B, C_in, H, W] -> [B, C, H/2, W/2]``.

    Example:
        >>> TinyBackbone(3, 16)(torch.rand(2, 3, 48, 64)).shape
        torch.Size([2, 16, 24, 32])
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GELU(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class DepthHead(nn.Module):
    """Metric z-depth from features: ``min_depth + softplus(conv(F))``, starting near ``init``
    metres everywhere (the bias is set so that the initial map is close to ``init``)."""

    def __init__(self, channels: int, init: float, min_depth: float = 0.1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 3, padding=1)
        self.min_depth = min_depth
        with torch.no_grad():
            self.conv.weight.mul_(0.1)
            self.conv.bias.fill_(math.log(math.expm1(init - min_depth)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.min_depth + F.softplus(self.conv(features))


def fourier_features(x: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """``[..., D] -> [..., D * 2 * num_freqs]``: ``sin`` and ``cos`` of ``2^k pi x``."""
    freqs = math.pi * 2.0 ** torch.arange(num_freqs, dtype=x.dtype, device=x.device)
    angles = (x[..., None] * freqs).flatten(-2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def resize_depth(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average a ``[B, 1, H, W]`` depth map to ``size``, ignoring pixels without depth
    (``<= 0``); cells with no valid pixel get 0."""
    valid = (depth > 0).to(depth.dtype)
    total = F.adaptive_avg_pool2d(depth * valid, size)
    count = F.adaptive_avg_pool2d(valid, size)
    return torch.where(count > 0, total / count.clamp_min(1e-12), torch.zeros_like(total))


def feature_intrinsics(Ks: torch.Tensor, image_size, feature_size) -> torch.Tensor:
    """Intrinsics of an ``image_size`` image rescaled to a ``feature_size`` map (``(H, W)``)."""
    (H, W), (h, w) = image_size, feature_size
    return Ks * Ks.new_tensor([w / W, h / H, 1.0])[:, None]
