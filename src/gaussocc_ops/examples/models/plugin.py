"""GaussRenderPlugin: a small camera-to-voxel model trained with or without ``GaussRenderLoss``.

GaussRender is a plug-in: any model that outputs voxel logits can add the rendering loss to its
3D losses, ``L = L_3D + lambda L_2D``. This model is the smallest useful such model.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from gaussocc_ops import losses
from gaussocc_ops.cameras import resized
from gaussocc_ops.depth import gaussian_depth_gate
from gaussocc_ops.examples.models.backbone import (
    DepthHead,
    TinyBackbone,
    feature_intrinsics,
    resize_depth,
)
from gaussocc_ops.gaussrender import GaussRenderLoss
from gaussocc_ops.types import Cameras, VoxelGrid


class PluginOutput(NamedTuple):
    """logits: ``[B, C, X, Y, Z]``. depth: ``[B, 1, h, w]``, z-depth on the feature grid."""

    logits: torch.Tensor
    depth: torch.Tensor


def sensor_cameras(K: torch.Tensor, cam2world: torch.Tensor, image_size) -> Cameras:
    """The batch's own cameras as :class:`Cameras` of batch shape ``[B]`` with one view:
    ``K [B, 3, 3]``, ``cam2world [B, 4, 4]``, ``image_size = (H, W)``."""
    H, W = image_size
    return Cameras(torch.linalg.inv(cam2world)[:, None], K[:, None], width=W, height=H)


class GaussRenderPlugin(nn.Module):
    """Image -> voxel logits by projecting voxel centres into the image (camera-aware lifting).

    1. ``TinyBackbone`` gives features ``F [B, C, h, w]`` (stride 2) and ``DepthHead`` a z-depth
       map ``D`` (Huber-supervised).
    2. Every voxel centre ``x`` is moved to the camera, ``(u, v, z) = proj(K T_world->cam x)``,
       and reads ``F(u, v)`` and ``D(u, v)`` bilinearly (``grid_sample``; zero outside the image).
    3. Per voxel: the features, the depth gate ``G = exp(-(z - D(u, v))^2 / (2 sigma^2))``
       (``go.gaussian_depth_gate``, ``sigma`` = 1.5 voxels: "this voxel is on the visible
       surface"), the free-space cue ``sigmoid((D(u, v) - z) / sigma)``, the in-view mask and
       the normalised voxel position form a volume ``[B, C + 6, X, Y, Z]``.
    4. Three 3D convolutions turn it into logits ``[B, num_classes, X, Y, Z]``.

    ``loss(out, batch)`` is cross-entropy + Lovász-softmax (+ Huber depth) and, when the model
    was built with ``gaussrender_weight > 0``, ``GaussRenderLoss`` rendered from the batch's own
    camera (GaussRender's "sensor" strategy) and an orthographic BEV view. Every term is a mean
    over the batch of per-sample means, so data-parallel training (which averages gradients)
    matches one process on the whole batch.

    Args:
        grid: voxel grid of the predictions. num_classes: classes including the empty one.
        channels: backbone width. hidden: width of the 3D head. empty_class: the empty class.
        gaussrender_weight: ``lambda`` of the rendering loss (0 disables it).
        lovasz_weight: weight of the Lovász-softmax term. depth_weight: of the depth term.
        render_size: ``(H, W)`` the camera view is rendered at in the loss (default: the image).

    Example:
        >>> from gaussocc_ops.examples import scenes
        >>> grid = scenes.indoor_grid((30, 30, 18), 0.16)
        >>> batch = scenes.make_batch([0], grid=grid, image_size=(48, 64))
        >>> model = GaussRenderPlugin(grid, num_classes=9, gaussrender_weight=15.0)
        >>> out = model(batch.rgb, batch.K, batch.cam2world)
        >>> out.logits.shape
        torch.Size([1, 9, 30, 30, 18])
        >>> sorted(model.loss(out, batch))
        ['ce', 'depth', 'gaussrender', 'lovasz', 'total']
    """

    def __init__(
        self,
        grid: VoxelGrid,
        num_classes: int,
        *,
        channels: int = 16,
        hidden: int = 24,
        empty_class: int = 0,
        gaussrender_weight: float = 0.0,
        lovasz_weight: float = 1.0,
        depth_weight: float = 1.0,
        render_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.grid = grid
        self.num_classes = num_classes
        self.empty_class = empty_class
        self.lovasz_weight = lovasz_weight
        self.depth_weight = depth_weight
        self.render_size = render_size
        self.sigma = 1.5 * max(grid.voxel_size)
        self.backbone = TinyBackbone(3, channels)
        self.depth_head = DepthHead(channels, init=2.5)
        self.head = nn.Sequential(
            nn.Conv3d(channels + 6, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv3d(hidden, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv3d(hidden, num_classes, 1),
        )
        centers = grid.centers()  # [X, Y, Z, 3]
        lo = torch.tensor(grid.origin)
        hi = torch.tensor(grid.upper)
        self.register_buffer("centers", centers.reshape(-1, 3), persistent=False)
        position = (2 * (centers - lo) / (hi - lo) - 1).permute(3, 0, 1, 2)
        self.register_buffer("position", position.contiguous(), persistent=False)
        self.gaussrender = None
        if gaussrender_weight > 0:
            self.gaussrender = GaussRenderLoss(
                None,
                grid=grid,
                num_classes=num_classes,
                empty_class=empty_class,
                weight=gaussrender_weight,
                bev=True,
            )

    def forward(self, rgb: torch.Tensor, K: torch.Tensor, cam2world: torch.Tensor) -> PluginOutput:
        """``rgb [B, 3, H, W]``, ``K [B, 3, 3]`` (image pixels), ``cam2world [B, 4, 4]``."""
        B, _, H, W = rgb.shape
        feats = self.backbone(rgb)
        depth = self.depth_head(feats)
        h, w = feats.shape[-2:]
        Kf = feature_intrinsics(K, (H, W), (h, w))
        world2cam = torch.linalg.inv(cam2world)
        p = self.centers @ world2cam[:, :3, :3].transpose(1, 2) + world2cam[:, None, :3, 3]
        z = p[..., 2]
        uv = (p @ Kf.transpose(1, 2))[..., :2] / z.clamp(min=1e-3)[..., None]
        grid_xy = 2 * uv / uv.new_tensor([w, h]) - 1  # align_corners=False pixel convention
        inside = (z > 1e-3) & (grid_xy.abs() <= 1).all(-1)
        sample = torch.cat([feats, depth], 1)
        read = F.grid_sample(sample, grid_xy[:, None], align_corners=False)[:, :, 0]  # [B, C+1, N]
        read = read * inside[:, None]
        f2d, d_pix = read[:, :-1], read[:, -1]
        gate = gaussian_depth_gate(z, d_pix, 1.0, self.sigma) * inside
        free = torch.sigmoid((d_pix - z) / self.sigma) * inside
        cues = torch.stack([gate, free, inside.to(z.dtype)], 1)
        volume = torch.cat([f2d, cues], 1).reshape(B, -1, *self.grid.shape)
        volume = torch.cat([volume, self.position.expand(B, -1, -1, -1, -1)], 1)
        return PluginOutput(self.head(volume), depth)

    def loss(self, out: PluginOutput, batch) -> dict[str, torch.Tensor]:
        """Named terms and ``"total"`` for ``out`` against a :class:`scenes.Batch`."""
        target = batch.voxel_labels
        terms = {
            "ce": F.cross_entropy(out.logits, target),
            "lovasz": losses.lovasz_softmax(out.logits, target, per_sample=True),
        }
        gt_depth = resize_depth(batch.depth, tuple(out.depth.shape[-2:]))
        per_sample = [losses.depth_huber_loss(d, t) for d, t in zip(out.depth, gt_depth)]
        terms["depth"] = torch.stack(per_sample).mean()
        total = terms["ce"] + self.lovasz_weight * terms["lovasz"]
        total = total + self.depth_weight * terms["depth"]
        if self.gaussrender is not None:
            cams = sensor_cameras(batch.K, batch.cam2world, tuple(batch.rgb.shape[-2:]))
            if self.render_size is not None:
                cams = resized(cams, *self.render_size)
            terms["gaussrender"] = self.gaussrender(out.logits, target, cams=cams)
            total = total + terms["gaussrender"]
        terms["total"] = total
        return terms
