"""SGROccLifter: SGR-OCC's soft-gated 2D -> 3D lifting and ray-constrained anchor refinement,
decoded by a small 3D convolutional voxel head."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from gaussocc_ops.examples.models.backbone import (
    DepthHead,
    TinyBackbone,
    feature_intrinsics,
    fourier_features,
)
from gaussocc_ops.examples.models.common import sensor_cameras, voxel_and_depth_terms
from gaussocc_ops.lift import SoftGatingLifter
from gaussocc_ops.rays import ray_constrained_refine
from gaussocc_ops.types import VoxelGrid


class SGROccOutput(NamedTuple):
    """logits: ``[B, C, X, Y, Z]``. depth: ``[B, 1, h, w]`` predicted z-depth on the feature
    grid. anchors: ``[B, X*Y*Z, 3]`` refined anchors (world frame). delta: ``[B, X*Y*Z]`` the
    bounded ray residuals applied to them (metres)."""

    logits: torch.Tensor
    depth: torch.Tensor
    anchors: torch.Tensor
    delta: torch.Tensor


class SGROccLifter(nn.Module):
    """A small SGR-OCC spatial expert: one anchor per voxel centre, lifted twice.

    1. A backbone gives features ``F2D [B, C, h, w]`` and a head the z-depth ``D`` (trained with
       a Huber loss; SGR-OCC's gate uses the predicted depth).
    2. ``go.SoftGatingLifter`` gathers, for each anchor ``q`` (embedded by an MLP of the Fourier
       features of its normalised position),
       ``F3D(q) = sum_k A_k G(d_proj, D(p_ref + dp_k)) F2D(p_ref + dp_k)`` with the gate
       ``G = alpha exp(-(d_proj - d_pred)^2 / (2 sigma^2))`` (Eq. 1-2).
    3. A linear head on ``[F3D, embedding]`` predicts a depth residual ``dd`` and
       ``go.ray_constrained_refine`` moves the anchor along its camera ray,
       ``P' = P + dd (P - O) / |P - O|`` with ``|dd| < max_delta`` (Eq. 3). The head starts at
       zero, so the anchors start on the voxel centres.
    4. The features lifted again at the refined anchors, with the embedding, form a volume
       ``[B, C + E, X, Y, Z]`` that two 3D convolutions turn into logits ``[B, C_cls, X, Y, Z]``.

    Anchors projecting outside the image or behind the camera get zero features: the head then
    relies on the positional embedding alone.

    Args:
        grid: voxel grid of the predictions. num_classes: classes including the empty one.
        channels: backbone width. embed_dim: anchor embedding width.
        num_points: lifter samples per anchor. max_delta: bound of ``dd`` (default 2 voxels).
        empty_class: index of the empty class.

    Example:
        >>> from gaussocc_ops.examples import scenes
        >>> grid = scenes.indoor_grid((30, 30, 18), 0.16)
        >>> batch = scenes.make_batch([0], grid=grid, image_size=(48, 64))
        >>> model = SGROccLifter(grid, num_classes=9)
        >>> out = model(batch.rgb, batch.K, batch.cam2world)
        >>> out.logits.shape
        torch.Size([1, 9, 30, 30, 18])
        >>> bool(out.delta.abs().max() < model.max_delta)  # the ray residuals stay bounded
        True
        >>> model.loss(out, batch)["total"].backward()
    """

    def __init__(
        self,
        grid: VoxelGrid,
        num_classes: int,
        *,
        channels: int = 16,
        embed_dim: int = 16,
        num_points: int = 8,
        max_delta: float | None = None,
        empty_class: int = 0,
        init_depth: float = 2.5,
        num_freqs: int = 4,
    ) -> None:
        super().__init__()
        self.grid, self.num_classes, self.empty_class = grid, num_classes, empty_class
        self.max_delta = 2 * grid.voxel_size[0] if max_delta is None else max_delta
        self.num_freqs = num_freqs
        # Where Depth Anything / a ViT backbone would plug in: their features replace
        # `backbone` and their depth replaces (or initialises) `depth_head`.
        self.backbone = TinyBackbone(3, channels)
        self.depth_head = DepthHead(channels, init_depth)
        self.embed = nn.Sequential(
            nn.Linear(3 * 2 * num_freqs, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim)
        )
        self.lifter = SoftGatingLifter(embed_dim, num_points, init_radius=1.5)
        self.refine = nn.Linear(channels + embed_dim, 1)
        nn.init.zeros_(self.refine.weight)
        nn.init.zeros_(self.refine.bias)
        self.head = nn.Sequential(
            nn.Conv3d(channels + embed_dim, 16, 3, padding=1),
            nn.GELU(),
            nn.Conv3d(16, num_classes, 1),
        )

    def _anchor_embedding(self, centers: torch.Tensor) -> torch.Tensor:
        lower = centers.new_tensor(self.grid.origin)
        size = centers.new_tensor(self.grid.upper) - lower
        return self.embed(fourier_features((centers - lower) / size - 0.5, self.num_freqs))

    def forward(self, rgb: torch.Tensor, K: torch.Tensor, cam2world: torch.Tensor) -> SGROccOutput:
        """``rgb [B, 3, H, W]``, ``K [B, 3, 3]`` (image pixels), ``cam2world [B, 4, 4]``."""
        B = rgb.shape[0]
        feats = self.backbone(rgb)
        depth = self.depth_head(feats)
        h, w = feats.shape[-2:]
        # one view per batch element, intrinsics of the feature map
        cameras = sensor_cameras(feature_intrinsics(K, rgb.shape[-2:], (h, w)), cam2world, (h, w))
        centers = self.grid.centers().to(rgb).reshape(-1, 3)  # [Q, 3]
        embed = self._anchor_embedding(centers).expand(B, -1, -1)  # [B, Q, E]
        anchors = centers.expand(B, -1, -1)
        lifted = self.lifter(feats, depth, anchors, cameras, embed)  # [B, Q, C]
        raw = self.refine(torch.cat([lifted, embed], -1))[..., 0]
        refined = ray_constrained_refine(
            anchors, raw, cam2world[:, None, :3, 3], max_delta=self.max_delta
        )
        lifted = self.lifter(feats, depth, refined, cameras, embed)
        volume = torch.cat([lifted, embed], -1).transpose(1, 2).unflatten(-1, self.grid.shape)
        delta = self.max_delta * torch.tanh(raw / self.max_delta)
        return SGROccOutput(self.head(volume), depth, refined, delta)

    def loss(
        self, out: SGROccOutput, batch, *, depth_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """Focal + Lovász-softmax (EmbodiedOcc's voxel losses, which SGR-OCC adopts) + the scene-
        class affinity terms, and a Huber loss of the depth that gates the lifting
        (:func:`~gaussocc_ops.examples.models.common.voxel_and_depth_terms`): the named terms
        and ``"total"``."""
        return voxel_and_depth_terms(
            out.logits,
            batch.voxel_labels,
            out.depth,
            batch.depth,
            empty_class=self.empty_class,
            depth_weight=depth_weight,
        )
