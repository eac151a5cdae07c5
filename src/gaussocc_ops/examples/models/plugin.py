"""GaussRenderPlugin: a small RGB-D-to-voxel model trained with or without ``GaussRenderLoss``.

GaussRender is a plug-in: any model that outputs voxel logits can add the rendering loss to its
3D losses, ``L = L_3D + lambda L_2D``. This model is the smallest useful such model.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from gaussocc_ops import cameras as camlib
from gaussocc_ops import losses
from gaussocc_ops.depth import gaussian_depth_gate
from gaussocc_ops.examples.models.backbone import TinyBackbone
from gaussocc_ops.examples.models.common import sensor_cameras
from gaussocc_ops.gaussrender import GaussRenderLoss
from gaussocc_ops.types import Cameras, VoxelGrid

#: GaussRender's camera strategies (App. E.4) as this model applies them, with the parameters
#: used for the synthetic rooms (4.8 x 4.8 x 2.9 m, an overview camera about 2.2 m high). The
#: paper gives no numbers for them; the library defaults are sized for driving scenes (4 m lift,
#: random offsets up to the whole 50 m scene range), which would put every camera outside a room.
CAMERA_STRATEGIES = {
    "sensor": {},
    "elevated": {"lift": 1.5, "tilt_deg": 20.0},
    "elevated_around": {"lift": 1.5, "tilt_deg": 20.0, "max_shift": 0.5},
    "random": {"max_distance": 0.5, "height": (0.0, 1.5), "yaw_deg": 180.0, "pitch_deg": 30.0},
}


class PluginOutput(NamedTuple):
    """logits: ``[B, C, X, Y, Z]`` voxel class scores (softmax over ``C``)."""

    logits: torch.Tensor


class GaussRenderPlugin(nn.Module):
    """RGB + depth prior -> voxel logits by projecting voxel centres into the image.

    1. ``TinyBackbone`` encodes ``[rgb, 1 / depth]`` into features ``F [B, C, H/2, W/2]``.
       ``depth`` is a depth prior: a depth sensor's or a depth foundation model's output
       (the synthetic data simulate one with :func:`scenes.noisy_prior`).
    2. Every voxel centre ``x`` is moved to the camera, ``(u, v, z) = proj(K T_world->cam x)``;
       it reads ``F(u, v)`` bilinearly and the prior depth ``D(u, v)`` at the nearest pixel
       (zero outside the image).
    3. Per voxel: the features, the depth gate ``G = exp(-(z - D)^2 / (2 sigma^2))``
       (``go.gaussian_depth_gate``, ``sigma`` = 1.5 voxels: "on the visible surface"), the
       free-space cue ``sigmoid((D - z) / sigma)``, the signed distance behind the surface
       ``clamp(z - D, -2, 2)`` metres, the in-view mask and the normalised voxel position.
    4. A small 3D head: a 3^3 convolution, a half-resolution branch (two 3^3 convolutions,
       the first of stride 2, upsampled trilinearly and added) for context, another 3^3
       convolution and a 1^3 classifier: logits ``[B, num_classes, X, Y, Z]``.

    ``loss(out, batch)`` is cross-entropy + Lovász-softmax and, when the model was built with
    ``gaussrender_weight > 0``, ``GaussRenderLoss`` (semantic and depth L1 of the renders of the
    prediction against those of the ground truth) from one camera per sample chosen by
    ``camera_strategy`` from the batch's own camera, plus the orthographic BEV view. Every
    term is a mean over the batch of per-sample means, so data-parallel training (which averages
    gradients) matches one process on the whole batch.

    Args:
        grid: voxel grid of the predictions. num_classes: classes including the empty one.
        channels: backbone width. hidden: width of the 3D head. empty_class: the empty class.
        gaussrender_weight: ``lambda`` of the rendering loss (0 disables it).
        camera_strategy: GaussRender's camera strategy, a key of :data:`CAMERA_STRATEGIES`.
        strategy_kwargs: overrides of that strategy's parameters.
        render_size: ``(H, W)`` of the rendered camera view (default ``(48, 64)``).
        render_mask: ``[X, Y, Z]`` bool, the voxels the rendering loss sees (both renders);
            default all. The examples leave the ceiling out (:func:`scenes.below_ceiling`) so
            that the BEV view and cameras above the room see inside.
        bev: add GaussRender's orthographic BEV view.
        lovasz_weight: weight of the Lovász-softmax term.
        generator: random source of the camera strategies.

    Example:
        >>> from gaussocc_ops.examples import scenes
        >>> grid = scenes.indoor_grid((30, 30, 18), 0.16)
        >>> batch = scenes.make_batch([0], grid=grid)
        >>> model = GaussRenderPlugin(grid, num_classes=9, gaussrender_weight=15.0)
        >>> out = model(batch.rgb, batch.K, batch.cam2world, batch.depth)
        >>> out.logits.shape
        torch.Size([1, 9, 30, 30, 18])
        >>> sorted(model.loss(out, batch))
        ['ce', 'gaussrender', 'lovasz', 'total']
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
        camera_strategy: str = "sensor",
        strategy_kwargs: dict | None = None,
        render_size: tuple[int, int] | None = (48, 64),
        render_mask: torch.Tensor | None = None,
        bev: bool = True,
        lovasz_weight: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if camera_strategy not in CAMERA_STRATEGIES:
            raise ValueError(
                f"camera_strategy must be one of {sorted(CAMERA_STRATEGIES)}, "
                f"got {camera_strategy!r}"
            )
        if gaussrender_weight < 0:
            raise ValueError(f"gaussrender_weight must be >= 0, got {gaussrender_weight}")
        if render_mask is not None and tuple(render_mask.shape) != grid.shape:
            raise ValueError(
                f"render_mask must have the grid's shape {grid.shape}, "
                f"got {tuple(render_mask.shape)}"
            )
        self.grid = grid
        self.num_classes = num_classes
        self.empty_class = empty_class
        self.lovasz_weight = lovasz_weight
        self.gaussrender_weight = float(gaussrender_weight)
        self.camera_strategy = camera_strategy
        self.strategy_kwargs = {**CAMERA_STRATEGIES[camera_strategy], **(strategy_kwargs or {})}
        self.render_size = render_size
        self.generator = generator
        self.sigma = 1.5 * max(grid.voxel_size)
        self.backbone = TinyBackbone(4, channels)
        self.inp = nn.Sequential(nn.Conv3d(channels + 7, hidden, 3, padding=1), nn.GELU())
        self.coarse = nn.Sequential(
            nn.Conv3d(hidden, hidden, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv3d(hidden, hidden, 3, padding=1),
            nn.GELU(),
        )
        self.mid = nn.Sequential(nn.Conv3d(hidden, hidden, 3, padding=1), nn.GELU())
        self.classifier = nn.Conv3d(hidden, num_classes, 1)
        for layer in (self.inp, self.coarse, self.mid, self.classifier):
            layer.to(memory_format=torch.channels_last_3d)
        centers = grid.centers()  # [X, Y, Z, 3]
        lo = torch.tensor(grid.origin)
        hi = torch.tensor(grid.upper)
        self.register_buffer("centers", centers.reshape(-1, 3), persistent=False)
        position = (2 * (centers - lo) / (hi - lo) - 1).permute(3, 0, 1, 2)
        self.register_buffer("position", position.contiguous(), persistent=False)
        mask = None if render_mask is None else render_mask.to(torch.bool)
        self.register_buffer("render_mask", mask, persistent=False)
        self.gaussrender = None
        if gaussrender_weight > 0:
            self.gaussrender = GaussRenderLoss(
                None,
                grid=grid,
                num_classes=num_classes,
                empty_class=empty_class,
                weight=gaussrender_weight,
                bev=bev,
            )

    def extra_repr(self) -> str:
        return (
            f"grid={self.grid.shape}, num_classes={self.num_classes}, "
            f"gaussrender_weight={self.gaussrender_weight}, "
            f"camera_strategy={self.camera_strategy!r}, render_size={self.render_size}"
        )

    def forward(
        self, rgb: torch.Tensor, K: torch.Tensor, cam2world: torch.Tensor, depth: torch.Tensor
    ) -> PluginOutput:
        """``rgb [B, 3, H, W]``, ``K [B, 3, 3]`` (image pixels), ``cam2world [B, 4, 4]``,
        ``depth [B, 1, H, W]`` the depth prior (camera z in metres, 0 where unknown)."""
        B, _, H, W = rgb.shape
        if depth.shape != (B, 1, H, W):
            raise ValueError(f"depth must be [{B}, 1, {H}, {W}], got {tuple(depth.shape)}")
        inverse = torch.where(depth > 0, 1.0 / depth.clamp_min(1e-3), torch.zeros_like(depth))
        feats = self.backbone(torch.cat([rgb, inverse], 1))
        world2cam = torch.linalg.inv(cam2world)
        p = self.centers @ world2cam[:, :3, :3].transpose(1, 2) + world2cam[:, None, :3, 3]
        z = p[..., 2]
        uv = (p @ K.transpose(1, 2))[..., :2] / z.clamp(min=1e-3)[..., None]  # image pixels
        # normalised coordinates (align_corners=False): the same for the image and the features
        grid_xy = 2 * uv / uv.new_tensor([W, H]) - 1
        inside = (z > 1e-3) & (grid_xy.abs() <= 1).all(-1)
        f2d = F.grid_sample(feats, grid_xy[:, None], align_corners=False)[:, :, 0]
        d = F.grid_sample(depth, grid_xy[:, None], mode="nearest", align_corners=False)[:, 0, 0]
        f2d = f2d * inside[:, None]
        inside = inside & (d > 0)
        gate = gaussian_depth_gate(z, d, 1.0, self.sigma) * inside
        free = torch.sigmoid((d - z) / self.sigma) * inside
        behind = (z - d).clamp(-2.0, 2.0) * inside
        cues = torch.stack([gate, free, behind, inside.to(z.dtype)], 1)
        volume = torch.cat([f2d, cues], 1).reshape(B, -1, *self.grid.shape)
        volume = torch.cat([volume, self.position.expand(B, -1, -1, -1, -1)], 1)
        # channels-last 3D convolutions run about twice as fast on CPUs (oneDNN)
        x = self.inp(volume.contiguous(memory_format=torch.channels_last_3d))
        context = F.interpolate(
            self.coarse(x), size=self.grid.shape, mode="trilinear", align_corners=False
        )
        return PluginOutput(self.classifier(self.mid(x + context)))

    def render_cameras(self, K: torch.Tensor, cam2world: torch.Tensor, image_size) -> Cameras:
        """The rendering loss's camera per sample: ``camera_strategy`` applied to the sensor
        cameras ``sensor_cameras(K, cam2world, image_size)``, rendered at ``render_size``."""
        cams = sensor_cameras(K, cam2world, image_size)
        kwargs = dict(self.strategy_kwargs, generator=self.generator)
        if self.camera_strategy == "elevated":
            cams = camlib.elevated(cams, **kwargs)
        elif self.camera_strategy == "elevated_around":
            cams = camlib.elevated_around(cams, self.grid, **kwargs)
        elif self.camera_strategy == "random":
            cams = camlib.random(cams, self.grid, **kwargs)
        if self.render_size is not None:
            cams = camlib.resized(cams, *self.render_size)
        return cams

    def loss(self, out: PluginOutput, batch) -> dict[str, torch.Tensor]:
        """Named terms and ``"total"`` for ``out`` against a batch with ``voxel_labels``,
        ``K``, ``cam2world`` and ``rgb`` (for the image size)."""
        target = batch.voxel_labels
        terms = {
            "ce": F.cross_entropy(out.logits, target),
            "lovasz": losses.lovasz_softmax(out.logits, target, per_sample=True),
        }
        total = terms["ce"] + self.lovasz_weight * terms["lovasz"]
        if self.gaussrender is not None:
            cams = self.render_cameras(batch.K, batch.cam2world, tuple(batch.rgb.shape[-2:]))
            mask = None
            if self.render_mask is not None:
                mask = self.render_mask.expand_as(target)
            terms["gaussrender"] = self.gaussrender(out.logits, target, mask=mask, cams=cams)
            total = total + terms["gaussrender"]
        terms["total"] = total
        return terms
