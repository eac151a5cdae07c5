"""ViPOccDepthBranch: ViPOcc's metric-depth branch (inverse-depth alignment of a foundation-model
prior) trained by temporal photometric alignment and by reconstruction consistency with a small
density field rendered on SNOG patches."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from gaussocc_ops import losses
from gaussocc_ops.depth import InverseDepthAlignment, inverse_depth_align
from gaussocc_ops.examples import scenes
from gaussocc_ops.examples.models.backbone import TinyBackbone, fourier_features
from gaussocc_ops.examples.models.common import camera_frame
from gaussocc_ops.patches import patch_pixels, patch_rays
from gaussocc_ops.snog import snog_sample
from gaussocc_ops.types import VoxelGrid


class ViewPair(NamedTuple):
    """Two consecutive frames of a walk through each room: the principal (target) view 0 and
    the next frame, the source view 1.

    rgb, depth, prior: ``[B, 2, C, H, W]`` images, ground-truth z-depth (for evaluation only)
    and the depth prior. K: ``[B, 3, 3]`` (shared). cam2world: ``[B, 2, 4, 4]``.
    boxes2d, areas, instance_valid: view 0's instance boxes ``[B, M, 4]``, areas ``[B, M]`` and
    mask ``[B, M]`` for the SNOG sampler.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    prior: torch.Tensor
    K: torch.Tensor
    cam2world: torch.Tensor
    boxes2d: torch.Tensor
    areas: torch.Tensor
    instance_valid: torch.Tensor

    @property
    def target_to_source(self) -> torch.Tensor:
        """``[B, 4, 4]``: view-0 camera points to view-1 camera points."""
        return torch.linalg.inv(self.cam2world[:, 1]) @ self.cam2world[:, 0]


#: The simulated foundation model's depth error (see :func:`foundation_prior`): a fixed
#: affine "domain gap" ``a D + b`` and a per-image scale jitter.
DOMAIN_GAP = {"a": 0.8, "b": 0.4, "jitter": 0.05}


def foundation_prior(
    depth: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    a: float = DOMAIN_GAP["a"],
    b: float = DOMAIN_GAP["b"],
    jitter: float = DOMAIN_GAP["jitter"],
    min_depth: float = 0.1,
) -> torch.Tensor:
    """A stand-in for Depth Anything V2's metric depth on a new domain, as ViPOcc describes it
    (its residuals to the ground truth follow a shifted distribution): ``s (a D + b)`` with a
    dataset-wide ``a, b`` (default 0.8 and 0.4 m: near surfaces too far, far ones too near,
    right at 2 m) and one ``s ~ U(1 - jitter, 1 + jitter)`` per image (``depth [B, 1, H, W]``;
    pixels without depth stay 0). The systematic part can be learnt; the jitter cannot."""
    s = 1 + jitter * (2 * torch.rand(depth.shape[0], 1, 1, 1, generator=generator) - 1)
    prior = (s.to(depth.dtype) * (a * depth + b)).clamp_min(min_depth)
    return torch.where(depth > 0, prior, torch.zeros_like(depth))


def surface_texture(
    points: torch.Tensor,
    seed: int,
    *,
    bounds: torch.Tensor,
    cells: Sequence[float] = (0.24, 0.08),
) -> torch.Tensor:
    """A solid (3D) value-noise texture in ``[-1, 1]`` at the world ``points [..., 3]`` of room
    ``seed``: for each cell size in ``cells`` (metres) a lattice of uniform random values in
    ``[-1, 1]`` over ``bounds [2, 3]`` (the room's corners, one cell of margin), interpolated
    trilinearly; the octaves are averaged. It depends only on the seed and the world point, so
    every view of a surface point sees the same value (a Lambertian texture, consistent across
    frames, which photometric alignment needs)."""
    g = torch.Generator().manual_seed(1_000_003 * (int(seed) + 1))
    lo = bounds[0].to(points.dtype) - max(cells)
    hi = bounds[1].to(points.dtype) + max(cells)
    flat = points.reshape(-1, 3)
    total = torch.zeros(flat.shape[0], dtype=points.dtype)
    for cell in cells:
        n = [int(v) + 2 for v in ((hi - lo) / cell).ceil().tolist()]
        lattice = 2 * torch.rand(1, 1, n[2], n[1], n[0], generator=g, dtype=points.dtype) - 1
        # grid_sample's (x, y, z) index (W, H, D); align_corners=True puts -1 / 1 on the
        # first / last lattice node, lo + (n - 1) cell
        coords = 2 * (flat - lo) / (cell * (torch.tensor(n, dtype=points.dtype) - 1)) - 1
        total += F.grid_sample(
            lattice, coords.view(1, 1, 1, -1, 3), mode="bilinear", align_corners=True
        ).view(-1)
    return (total / len(cells)).view(points.shape[:-1])


def _textured(frame, scene, amplitude: float) -> torch.Tensor:
    """``frame.rgb`` times ``1 + amplitude * surface_texture`` at each pixel's surface point."""
    K, cam2world = frame.K, frame.cam2world
    _, H, W = frame.rgb.shape
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    cam = rays * frame.depth[0, ..., None]
    world = cam @ cam2world[:3, :3].T + cam2world[:3, 3]
    tex = surface_texture(world, scene.seed, bounds=scene.bounds)
    return (frame.rgb * (1 + amplitude * tex)).clamp(0, 1) * (frame.depth > 0)


def make_view_pair(
    seeds,
    *,
    grid: VoxelGrid | None = None,
    image_size=(96, 128),
    angles: Sequence[float] | None = None,
    step_deg: float = 10.0,
    texture: float = 0.0,
    generator: torch.Generator | None = None,
) -> ViewPair:
    """Consecutive frames of :func:`scenes.walk_camera` in the indoor rooms ``seeds``: the
    target at ``angles[i]`` degrees (default: drawn from ``generator``) and the source
    ``step_deg`` further (10 degrees: 0.26 m of motion and a 10 degree turn, as consecutive
    video frames), each with a :func:`foundation_prior` of its depth.

    ``texture > 0`` multiplies every surface's colour by ``1 + texture * n(p)`` with ``n`` the
    room's :func:`surface_texture` at the surface point ``p`` (``scenes.render_frame`` paints
    walls in flat colours, where a photometric loss cannot see depth); 0 keeps the plain
    renders."""
    if not 0 <= texture < 1:
        raise ValueError(f"texture must lie in [0, 1), got {texture}")
    grid = grid or scenes.indoor_grid()
    seeds = list(seeds)
    if angles is None:
        angles = (torch.rand(len(seeds), generator=generator) * 360.0).tolist()
    if len(angles) != len(seeds):
        raise ValueError(f"need one angle per seed, got {len(angles)} for {len(seeds)} seeds")
    frames = []
    for seed, angle in zip(seeds, angles):
        scene = scenes.make_scene(int(seed), grid=grid)
        pair = [
            scenes.render_frame(scene, scenes.walk_camera(scene, a, image_size=image_size))
            for a in (angle, angle + step_deg)
        ]
        if texture > 0:
            pair = [dataclasses.replace(f, rgb=_textured(f, scene, texture)) for f in pair]
        frames.append(pair)
    depth = torch.stack([torch.stack([f.depth for f in pair]) for pair in frames])
    prior = foundation_prior(depth.flatten(0, 1), generator)
    first = [pair[0] for pair in frames]
    M = max([len(f.areas) for f in first] + [1])

    def pad(t, *shape):
        out = torch.zeros(M, *shape)
        out[: len(t)] = t.reshape(len(t), *shape)
        return out

    return ViewPair(
        rgb=torch.stack([torch.stack([f.rgb for f in pair]) for pair in frames]),
        depth=depth,
        prior=prior.unflatten(0, depth.shape[:2]),
        K=torch.stack([f.K for f in first]),
        cam2world=torch.stack([torch.stack([f.cam2world for f in pair]) for pair in frames]),
        boxes2d=torch.stack([pad(f.boxes2d, 4) for f in first]),
        areas=torch.stack([pad(f.areas, 1)[:, 0] for f in first]),
        instance_valid=torch.stack([torch.arange(M) < len(f.areas) for f in first]),
    )


class ViPOccOutput(NamedTuple):
    """depth: ``[B, 1, H, W]`` aligned metric z-depth. recon_features: ``[B, C, h, w]`` the
    reconstruction features ``F_r`` of the density field."""

    depth: torch.Tensor
    recon_features: torch.Tensor


class Rendering(NamedTuple):
    """Volume rendering of patch rays: distance ``[B, P, l, l]``, rgb ``[B, P, 3, l, l]``,
    pixel ``index [B, P, l, l]`` into the flattened image, ``valid [B, P]`` patches."""

    distance: torch.Tensor
    rgb: torch.Tensor
    index: torch.Tensor
    valid: torch.Tensor


class ViPOccDepthBranch(nn.Module):
    """A small ViPOcc: the depth branch and a density field rendered on SNOG patches.

    * Depth: an encoder of ``[rgb, 1 / D_p]`` gives spatial features ``F_s`` and
      ``go.InverseDepthAlignment`` returns ``D = 1 / (1 / D_p + f(F_s) + eps)`` (Eq. 3), the
      prior itself at initialisation (zero-initialised head).
    * Density field: a parallel encoder of the same input gives the reconstruction features
      ``F_r`` and ``sigma(p) = MLP([F_r(x), PE(t)])`` along the ray of pixel ``x`` at distance
      ``t`` (reconstruction features + positional embedding, as in ViPOcc / BTS), rendered with
      ``alpha_i = 1 - exp(-sigma_i dt)``, ``T_i = prod_{j<i} (1 - alpha_j)``,
      ``D_r = sum_i T_i alpha_i t_i`` and ``I_r = sum_i T_i alpha_i c_i`` (Eq. 2), ``c_i`` the
      source view's colour where ``p_i`` projects.
    * Only the pixels of ``num_patches`` non-overlapping ``patch_size`` patches drawn by
      ``go.snog_sample`` around the principal view's instances are rendered.

    Losses (:meth:`loss`): temporal alignment ``L_ta`` (Eq. 8-9, ``go.losses.
    photometric_alignment_loss`` with the Bian et al. mask from the source depth; ``M = 1`` with
    ``bian_mask=False``),
    ``L_rc^d`` (Eq. 10) and ``L_rc^rgb`` (Eq. 11); ``L = l1 L_ta + l2 (L_rc^d + L_rc^rgb)``.

    Example:
        >>> pair = make_view_pair([0], generator=torch.Generator().manual_seed(0))
        >>> model = ViPOccDepthBranch()
        >>> out = model(pair.rgb[:, 0], pair.prior[:, 0])
        >>> bool(torch.allclose(out.depth, pair.prior[:, 0], rtol=1e-4))
        True
        >>> sorted(model.loss(pair, generator=torch.Generator().manual_seed(0)))
        ['rc_depth', 'rc_rgb', 'ta', 'total']
    """

    def __init__(
        self,
        *,
        channels: int = 16,
        num_patches: int = 16,
        patch_size: int = 4,
        num_ray_samples: int = 32,
        near: float = 0.2,
        far: float = 6.0,
        num_freqs: int = 6,
        weights: tuple[float, float] = (1.0, 1.0),
        bian_mask: bool = True,
        correction_bound: float | None = None,
        detach_rc_depth: bool = False,
    ) -> None:
        super().__init__()
        self.detach_rc_depth = detach_rc_depth
        if correction_bound is not None and not 0 < correction_bound < 1:
            raise ValueError(f"correction_bound must lie in (0, 1), got {correction_bound}")
        self.correction_bound = correction_bound
        self.num_patches, self.patch_size = num_patches, patch_size
        self.num_ray_samples, self.near, self.far = num_ray_samples, near, far
        self.num_freqs, self.weights, self.bian_mask = num_freqs, weights, bian_mask
        # Where Depth Anything V2 plugs in: its depth is the prior `D_p` passed to forward and its
        # features would replace (or feed) `encoder`.
        self.encoder = TinyBackbone(4, channels)
        # ViPOcc extracts F_s and F_r with parallel encoders: the density field has its own
        self.recon_encoder = TinyBackbone(4, channels)
        self.spatial = nn.Conv2d(channels, channels, 3, padding=1)
        self.recon = nn.Conv2d(channels, channels, 3, padding=1)
        self.align = InverseDepthAlignment(channels)
        self.density = nn.Sequential(
            nn.Linear(channels + 2 * num_freqs, 32), nn.GELU(), nn.Linear(32, 1)
        )

    def forward(self, rgb: torch.Tensor, prior_depth: torch.Tensor) -> ViPOccOutput:
        """``rgb [B, 3, H, W]``, ``prior_depth [B, 1, H, W]`` (metric-ish z-depth, ``> 0``)."""
        inv = 1.0 / prior_depth.clamp_min(self.align.min_depth)
        x = torch.cat([rgb, inv], 1)
        feats = self.encoder(x)
        if self.correction_bound is None:
            depth = self.align(self.spatial(feats), prior_depth)  # Eq. 3
        else:
            # Not in ViPOcc: |f| <= bound / D_p keeps D in [D_p / (1 + bound), D_p / (1 - bound)]
            # (f ~ the unbounded head near 0).
            raw = F.interpolate(
                self.align.head(self.spatial(feats)),
                size=prior_depth.shape[-2:],
                mode="bilinear",
                align_corners=False,
            )
            b = self.correction_bound * inv
            f = b * torch.tanh(raw / b)
            depth = inverse_depth_align(
                prior_depth,
                f,
                eps=self.align.eps,
                min_depth=self.align.min_depth,
                max_depth=self.align.max_depth,
            )
        return ViPOccOutput(depth, self.recon(self.recon_encoder(x)))

    def render_patches(
        self,
        recon_features: torch.Tensor,
        K: torch.Tensor,
        source_rgb: torch.Tensor,
        target_to_source: torch.Tensor,
        centers: torch.Tensor,
        valid: torch.Tensor,
    ) -> Rendering:
        """Volume-render the density field along the rays of the patches ``centers [B, P, 2]``
        (``valid [B, P]``) of an ``H x W`` image (the size of ``source_rgb [B, 3, H, W]``)."""
        B, _, H, W = source_rgb.shape
        l = self.patch_size  # noqa: E741
        px = patch_pixels(centers, l, (H, W), valid)
        dirs = patch_rays(px.uv, camera_frame(K[:, None], (H, W)))  # [B, P, l, l, 3], z = 1
        unit = dirs / dirs.norm(dim=-1, keepdim=True)
        t = torch.linspace(self.near, self.far, self.num_ray_samples, dtype=unit.dtype)
        points = unit[..., None, :] * t[:, None]  # [B, P, l, l, M, 3]
        feats = F.interpolate(recon_features, (H, W), mode="bilinear", align_corners=False)
        feats = feats.flatten(2).gather(
            2, px.index.flatten(1)[:, None].expand(-1, feats.shape[1], -1)
        )
        feats = feats.transpose(1, 2).unflatten(1, px.index.shape[1:])  # [B, P, l, l, C]
        pe = fourier_features(t[:, None] / self.far, self.num_freqs)  # [M, 2F]
        x = torch.cat(
            [
                feats[..., None, :].expand(*feats.shape[:-1], len(t), -1),
                pe.expand(*feats.shape[:-1], -1, -1),
            ],
            -1,
        )
        sigma = F.softplus(self.density(x)[..., 0] - 1.0)  # [B, P, l, l, M]
        dt = (self.far - self.near) / (self.num_ray_samples - 1)
        alpha = 1 - torch.exp(-sigma * dt)
        trans = torch.cumprod(
            torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha[..., :-1]], -1), dim=-1
        )
        w = trans * alpha
        distance = (w * t).sum(-1)
        colors = _sample_source(source_rgb, points, target_to_source, K)  # [B, 3, P, l, l, M]
        rgb = (w[:, None] * colors).sum(-1).transpose(1, 2)
        return Rendering(distance, rgb, px.index, valid)

    def loss(
        self, pair: ViewPair, *, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """``ta`` (Eq. 9), ``rc_depth`` (Eq. 10), ``rc_rgb`` (Eq. 11) and their weighted
        ``total``, with both views run through the model and patches drawn from view 0."""
        B, _, _, H, W = pair.rgb.shape
        out = self(pair.rgb.flatten(0, 1), pair.prior.flatten(0, 1))
        depth = out.depth.unflatten(0, (B, 2))[:, :, 0]  # [B, 2, H, W]
        target, source = pair.rgb[:, 0], pair.rgb[:, 1]
        T = pair.target_to_source
        ta = losses.photometric_alignment_loss(
            target,
            source,
            depth[:, 0],
            T,
            pair.K,
            source_depth=depth[:, 1] if self.bian_mask else None,
        )
        patches = snog_sample(
            pair.boxes2d,
            pair.areas,
            (H, W),
            self.num_patches,
            self.patch_size,
            generator=generator,
            valid=pair.instance_valid,
        )
        r = self.render_patches(
            out.recon_features.unflatten(0, (B, 2))[:, 0],
            pair.K,
            source,
            T,
            patches.centers,
            patches.valid,
        )
        pix_valid = patches.valid[..., None, None].expand_as(r.index)
        flat_index = r.index.flatten(1)
        rendered = torch.zeros(B, H * W, dtype=r.distance.dtype)
        rendered = rendered.scatter(1, flat_index, r.distance.flatten(1)).view(B, H, W)
        mask = torch.zeros(B, H * W, dtype=torch.bool).scatter(1, flat_index, pix_valid.flatten(1))
        # detach_rc_depth (not in ViPOcc): the density field follows the aligned depth in Eq. 10,
        # the aligned depth does not follow the (untrained, too short) rendered depth
        aligned = depth[:, 0].detach() if self.detach_rc_depth else depth[:, 0]
        rc_depth = losses.depth_reconstruction_consistency_loss(
            rendered, aligned, pair.K, mask.view(B, H, W)
        )
        target_patches = (
            target.flatten(2)
            .gather(2, flat_index[:, None].expand(-1, 3, -1))
            .unflatten(2, r.index.shape[1:])
        )
        rc_rgb = losses.rgb_reconstruction_loss(
            r.rgb.flatten(0, 1),
            target_patches.transpose(1, 2).flatten(0, 1),
            pix_valid.flatten(0, 1),
        )
        l1, l2 = self.weights
        return {
            "ta": ta,
            "rc_depth": rc_depth,
            "rc_rgb": rc_rgb,
            "total": l1 * ta + l2 * (rc_depth + rc_rgb),
        }


def _sample_source(source_rgb, points, target_to_source, K):
    """Colours ``[B, 3, *S]`` of the source image where the target-frame ``points [B, *S, 3]``
    project (bilinear, zeros outside the image or behind the camera)."""
    B, _, H, W = source_rgb.shape
    flat = points.reshape(B, -1, 3)
    cam = flat @ target_to_source[:, :3, :3].transpose(1, 2) + target_to_source[:, None, :3, 3]
    z = cam[..., 2:]
    front = z > 1e-3
    pix = cam @ K.transpose(1, 2)
    uv = pix[..., :2] / torch.where(front, z, torch.ones_like(z))
    grid = torch.stack([2 * uv[..., 0] / W - 1, 2 * uv[..., 1] / H - 1], -1)
    grid = torch.where(front, grid, torch.full_like(grid, -2.0))  # behind: outside the image
    rgb = F.grid_sample(
        source_rgb, grid[:, None], mode="bilinear", padding_mode="zeros", align_corners=False
    )[:, :, 0]
    return rgb.reshape(B, 3, *points.shape[1:-1])
