"""GPOccLite: GPOcc's pipeline (ray-based volumetric sampling -> sparse semantic Gaussians ->
probabilistic Gaussian-to-occupancy) at toy size, with its streaming memory."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import nn

from gaussocc_ops.accumulate import OccupancyOutput, gaussians_to_occupancy
from gaussocc_ops.examples.models.backbone import DepthHead, TinyBackbone, resize_depth
from gaussocc_ops.examples.models.common import camera_frame, voxel_and_depth_terms
from gaussocc_ops.memory import GaussianMemory
from gaussocc_ops.prune import prune_by_opacity
from gaussocc_ops.rays import ray_directions, ray_volumetric_sample
from gaussocc_ops.types import Cameras, Gaussians, VoxelGrid


class GPOccOutput(NamedTuple):
    """depth: ``[B, 1, h, w]`` predicted z-depth on the feature grid. gaussians: the pruned
    Gaussians ``[B, N', ...]`` (padded, ``valid`` mask). occupancy: ``[B, X, Y, Z]``.
    probs: ``[B, C, X, Y, Z]`` class probabilities, the empty class at ``empty_class``."""

    depth: torch.Tensor
    gaussians: Gaussians
    occupancy: torch.Tensor
    probs: torch.Tensor


class GPOccLite(nn.Module):
    """A small GPOcc: ``rgb + depth prior -> depth -> ray samples -> Gaussians -> occupancy``.

    1. A backbone encodes ``[rgb, 1 / prior]`` into features ``F [B, C, h, w]``
       (``h, w = H/2, W/2``); the depth is the prior area-averaged to that grid, refined by a
       bounded factor ``d = prior * exp(0.2 tanh(conv F))`` (zero-initialised: the prior at
       first), and a head gives a per-pixel sampling extent (GPOcc's predicted ``scale``). The
       prior is the geometry foundation model's depth (VGGT, Depth Anything) of the paper; the
       synthetic data simulate it (:func:`scenes.noisy_prior`).
    2. ``go.ray_volumetric_sample`` places ``K`` points ``x_k = (t + delta_k) r`` behind every
       surface point, ``delta_k = linspace(0, 1, K)_k * extent`` (world frame via ``cam2world``).
    3. An MLP on ``F + E_k`` (``E [K, C]`` a learnt per-sample embedding) predicts each
       Gaussian's mean offset (bounded by half a voxel), scales, rotation, opacity and class
       probabilities over the ``C - 1`` non-empty classes.
    4. ``go.prune_by_opacity`` drops Gaussians with opacity ``<= prune_threshold`` (tau = 0.01).
    5. ``go.gaussians_to_occupancy`` (probabilistic) gives ``o = 1 - prod_i (1 - a_i g_i)`` and
       the class probabilities ``[B, C, X, Y, Z]`` with the empty class at ``empty_class``.

    Args:
        grid: the voxel grid of the predictions.
        num_classes: classes including the empty one.
        channels: backbone width. num_samples: ``K`` points per ray.
        empty_class: index of the empty class (0 in the synthetic scenes).
        scale_range: ``(min, max)`` Gaussian standard deviations in metres.
        init_extent: sampling extent (metres) the extent head starts at.

    Example:
        >>> from gaussocc_ops.examples import scenes
        >>> grid = scenes.indoor_grid((30, 30, 18), 0.16)
        >>> batch = scenes.make_batch([0], grid=grid)
        >>> model = GPOccLite(grid, num_classes=9)
        >>> out = model(batch.rgb, batch.K, batch.cam2world, batch.prior)
        >>> out.probs.shape
        torch.Size([1, 9, 30, 30, 18])
        >>> sorted(model.loss(out, batch))
        ['depth', 'focal', 'geo_scal', 'lovasz', 'sem_scal', 'total']
    """

    def __init__(
        self,
        grid: VoxelGrid,
        num_classes: int,
        *,
        channels: int = 32,
        num_samples: int = 4,
        empty_class: int = 0,
        scale_range: tuple[float, float] = (0.03, 0.15),
        init_extent: float = 0.3,
        prune_threshold: float = 0.01,
    ) -> None:
        super().__init__()
        self.grid, self.num_classes, self.empty_class = grid, num_classes, empty_class
        self.num_samples, self.scale_range = num_samples, scale_range
        self.prune_threshold = prune_threshold
        # Where VGGT / Depth Anything would plug in: their features replace `backbone`, their
        # depth (or point map) replaces `depth_head`.
        self.backbone = TinyBackbone(4, channels)
        self.depth_head = nn.Conv2d(channels, 1, 3, padding=1)
        nn.init.zeros_(self.depth_head.weight)
        nn.init.zeros_(self.depth_head.bias)
        self.extent_head = DepthHead(channels, init_extent, min_depth=0.0)
        self.sample_embed = nn.Parameter(0.02 * torch.randn(num_samples, channels))
        self.mlp = nn.Sequential(nn.Linear(channels, channels), nn.GELU())
        self.offset = nn.Linear(channels, 3)
        self.scale = nn.Linear(channels, 3)
        self.rotation = nn.Linear(channels, 4)
        self.opacity = nn.Linear(channels, 1)
        self.semantics = nn.Linear(channels, num_classes - 1)
        for layer in (self.offset, self.rotation):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            self.rotation.bias[0] = 1.0
            self.opacity.bias.fill_(-2.0)  # start faint: a = 0.12

    def _gaussians(self, rgb, K, cam2world, prior):
        """Features, depth and the unpruned Gaussians ``[B, h*w*K, ...]`` (world frame, or camera
        frame when ``cam2world`` is None)."""
        inverse = torch.where(prior > 0, 1.0 / prior.clamp_min(1e-3), torch.zeros_like(prior))
        feats = self.backbone(torch.cat([rgb, inverse], 1))
        h, w = feats.shape[-2:]
        coarse = resize_depth(prior, (h, w)).clamp_min(0.1)
        depth = coarse * torch.exp(0.2 * torch.tanh(self.depth_head(feats)))
        extent = self.extent_head(feats)
        H, W = rgb.shape[-2:]
        if cam2world is None:  # one camera per batch element, as V cameras of one batch
            cameras = camera_frame(K, (H, W))
        else:
            cameras = Cameras.from_cam2world(cam2world, K, height=H, width=W)
        dirs = ray_directions(cameras, size=(h, w))  # [B, h, w, 3]
        points = ray_volumetric_sample(
            depth[:, 0],
            dirs,
            extent[:, 0],
            self.num_samples,
            depth_type="z",
            cameras=None if cam2world is None else cameras,
        )  # [B, h, w, K, 3]
        x = feats.permute(0, 2, 3, 1)[:, :, :, None, :] + self.sample_embed  # [B, h, w, K, C]
        x = self.mlp(x).flatten(1, 3)  # [B, N, C]
        lo, hi = self.scale_range
        means = points.flatten(1, 3) + 0.5 * self.grid.voxel_size[0] * torch.tanh(self.offset(x))
        g = Gaussians(
            means=means,
            scales=lo + (hi - lo) * torch.sigmoid(self.scale(x)),
            quats=self.rotation(x) + x.new_tensor([1e-3, 0, 0, 0]),
            opacities=torch.sigmoid(self.opacity(x))[..., 0],
            features=self.semantics(x).softmax(-1),
        )
        return depth, g

    def forward(
        self, rgb: torch.Tensor, K: torch.Tensor, cam2world: torch.Tensor, prior: torch.Tensor
    ) -> GPOccOutput:
        """``rgb [B, 3, H, W]``, ``K [B, 3, 3]`` (image pixels), ``cam2world [B, 4, 4]``,
        ``prior [B, 1, H, W]`` the depth prior (camera z in metres)."""
        depth, g = self._gaussians(rgb, K, cam2world, prior)
        g = prune_by_opacity(g, self.prune_threshold).gaussians
        occ = gaussians_to_occupancy(g, self.grid, empty_class=self.empty_class)
        return GPOccOutput(depth, g, occ.occupancy, occ.probs)

    def loss(
        self, out: GPOccOutput, batch, *, depth_weight: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """GPOcc's objective ``L_focal + L_lov + L_scal^geo + L_scal^sem + L_depth`` against
        ``batch.voxel_labels [B, X, Y, Z]`` and ``batch.depth [B, 1, H, W]`` (area-averaged to the
        depth map's grid), by :func:`~gaussocc_ops.examples.models.common.voxel_and_depth_terms`.
        Log-probabilities serve as logits (their softmax is ``probs``)."""
        return voxel_and_depth_terms(
            out.probs.clamp_min(1e-6).log(),
            batch.voxel_labels,
            out.depth,
            batch.depth,
            empty_class=self.empty_class,
            depth_weight=depth_weight,
            probs=out.probs,
        )

    @torch.no_grad()
    def stream(
        self,
        frames: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
        memory: GaussianMemory | None = None,
        *,
        max_size: int | None = 20_000,
    ) -> tuple[GaussianMemory, OccupancyOutput]:
        """Streaming inference (GPOcc's training-free incremental update).

        Each frame ``(rgb [3, H, W], K [3, 3], cam2world [4, 4], prior [1, H, W])`` of one scene
        is turned into
        camera-frame Gaussians, pruned, and fused into ``memory`` (default: a new
        ``GaussianMemory(radius=voxel, gamma=0.3, max_size=max_size)``), which moves them to the
        world frame and merges neighbours within the radius with
        ``theta_i <- (gamma p_i theta_i + (1 - gamma) sum_j p_j theta_j) / (gamma p_i + ...)``.
        Returns the memory and its occupancy on the model's grid.
        """
        if memory is None:
            memory = GaussianMemory(radius=self.grid.voxel_size[0], gamma=0.3, max_size=max_size)
        for rgb, K, cam2world, prior in frames:
            _, g = self._gaussians(rgb[None], K[None], None, prior[None])
            g = prune_by_opacity(g, self.prune_threshold).gaussians[0]
            height, width = rgb.shape[-2:]
            camera = Cameras.from_cam2world(cam2world[None], K[None], height=height, width=width)
            memory.insert(g, camera)
        occ = memory.to_occupancy(self.grid, empty_class=self.empty_class)
        return memory, occ
