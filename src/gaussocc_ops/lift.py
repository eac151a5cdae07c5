"""Soft-gated 2D-to-3D feature lifting (SGR-OCC Eq. 1-2)."""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from gaussocc_ops import _dispatch
from gaussocc_ops._checks import (
    as_scalar,
    check_finite,
    check_float,
    check_int,
    check_number,
    check_positive,
    check_tensor,
    compute_dtype,
    describe,
)
from gaussocc_ops._dispatch import Backend
from gaussocc_ops.cameras import resized
from gaussocc_ops.depth import GaussianDepthGate
from gaussocc_ops.types import Cameras


def soft_gated_lift(
    features: torch.Tensor,
    depth: torch.Tensor,
    queries: torch.Tensor,
    cameras: Cameras,
    offsets: torch.Tensor,
    attn: torch.Tensor,
    alpha: float | torch.Tensor,
    sigma: float | torch.Tensor,
    *,
    near: float = 1e-3,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Lift image features to 3D queries through a Gaussian depth gate (SGR-OCC Eq. 1-2).

    ``F3D(q) = sum_k A_k * G(d_proj(q), D(p_ref + dp_k)) * F2D(p_ref + dp_k)`` with
    ``G(a, d) = alpha * exp(-(a - d)^2 / (2 sigma^2))``. ``p_ref`` and ``d_proj`` are the pixel
    and the camera-frame depth ``z`` of the query; ``F2D`` and ``D`` are bilinear reads of the
    feature and depth maps. Pixel ``(row, col)`` has its centre at ``(col + 0.5, row + 0.5)``;
    reads outside the map are zero (``grid_sample`` with ``align_corners=False``, zero padding).
    Queries with ``z <= near`` or with ``p_ref`` outside ``[0, W] x [0, H]`` give zero.

    Args:
        features: ``[..., C, H, W]`` image features.
        depth: ``[..., 1, H, W]`` predicted depth (camera-frame z, metres) on the same grid.
        queries: ``[..., Q, 3]`` world points.
        cameras: a pinhole :class:`Cameras` with one view (``V = 1``) whose batch shape
            broadcasts to ``[...]``. Its intrinsics refer to its own ``image_size`` and are
            rescaled to the ``H x W`` feature map (as :func:`gaussocc_ops.cameras.resized`); a
            camera whose ``image_size`` is ``(H, W)`` is used as it is.
        offsets: ``[..., Q, K, 2]`` sampling offsets ``(dx, dy)`` in feature-map pixels.
        attn: ``[..., Q, K]`` attention weights ``A_k`` (used as given, e.g. softmax outputs).
        alpha, sigma: gate scale and tolerance (floats or one-element tensors, ``sigma > 0``).
        near: queries closer than this (camera-frame z) are dropped.
        backend: ``"reference"`` (``grid_sample``), ``"cpu"``/``"cuda"`` (our kernels) or
            ``"auto"`` (the kernel for the device, else the reference).

    Returns:
        ``[..., Q, C]``, float32 (float64 if an input is). Differentiable in features, depth,
        queries, offsets, attn, alpha, sigma and the camera tensors.

    Example:
        >>> feats, depth = torch.rand(1, 8, 30, 40), torch.full((1, 1, 30, 40), 2.0)
        >>> # (0, 0, z) projects to the centre of pixel (row 15, col 20)
        >>> K = torch.tensor([[[20.0, 0, 20.5], [0, 20.0, 15.5], [0, 0, 1]]])
        >>> cams = Cameras(torch.eye(4)[None], K, height=30, width=40)
        >>> queries = torch.tensor([[[0.0, 0.0, 2.0]]])
        >>> out = soft_gated_lift(feats, depth, queries, cams, torch.zeros(1, 1, 4, 2),
        ...                       torch.full((1, 1, 4), 0.25), 1.0, 0.5)
        >>> torch.allclose(out[0, 0], feats[0, :, 15, 20])
        True
    """
    check_tensor("features", features, min_dim=3)
    batch = features.shape[:-3]
    C, H, W = features.shape[-3:]
    check_tensor("depth", depth, min_dim=3)
    if depth.shape != (*batch, 1, H, W):
        raise ValueError(f"depth must have shape {(*batch, 1, H, W)}, got {describe(depth)}")
    check_tensor("queries", queries, min_dim=2, last=(3,))
    if queries.shape[:-2] != batch:
        raise ValueError(f"queries must have shape {(*batch, 'Q', 3)}, got {describe(queries)}")
    Q = queries.shape[-2]
    check_tensor("offsets", offsets, min_dim=3, last=(None, 2))
    if offsets.shape[:-2] != (*batch, Q):
        raise ValueError(f"offsets must have shape {(*batch, Q, 'K', 2)}, got {describe(offsets)}")
    K = offsets.shape[-2]
    check_tensor("attn", attn)
    if attn.shape != (*batch, Q, K):
        raise ValueError(f"attn must have shape {(*batch, Q, K)}, got {describe(attn)}")
    for name, t in (
        ("features", features),
        ("depth", depth),
        ("queries", queries),
        ("offsets", offsets),
        ("attn", attn),
    ):
        check_float(name, t)
        if t.device != features.device:
            raise ValueError(f"{name} is on {t.device} but features is on {features.device}")
    check_finite("queries", queries)
    check_finite("offsets", offsets)
    near = check_number("near", near, minimum=0.0)
    Ks, viewmats = _feature_map_camera(cameras, batch, H, W, features.device)
    device = features.device
    backend = _dispatch.resolve(backend, device, "soft_gated_lift")

    dtype = compute_dtype(features, depth, queries, offsets, attn, Ks, viewmats)
    like = features.new_empty((), dtype=dtype)
    alpha_t = as_scalar("alpha", alpha, like)
    sigma_t = as_scalar("sigma", sigma, like)
    check_positive("sigma", sigma_t)

    def flat(t, tail):
        return _dispatch.flatten(t, batch, tail, dtype)

    ref_points, d_proj, valid = project_queries(
        flat(queries, (Q, 3)), flat(Ks, (3, 3)), flat(viewmats, (4, 4)), H, W, near
    )
    out = _dispatch.kernel("soft_gated_lift", backend)(
        flat(features.movedim(-3, -1), (H, W, C)),
        flat(depth[..., 0, :, :], (H, W)),
        ref_points.contiguous(),
        d_proj.contiguous(),
        valid,
        flat(offsets, (Q, K, 2)),
        flat(attn, (Q, K)),
        alpha_t,
        sigma_t,
    )
    return out.reshape(*batch, Q, C)


def project_queries(
    queries: torch.Tensor,
    Ks: torch.Tensor,
    viewmats: torch.Tensor,
    height: int,
    width: int,
    near: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The stage before the op: pixels ``[B, Q, 2]`` ``(x, y)``, camera-frame depths ``[B, Q]``
    and validity ``[B, Q]`` of world points ``queries [B, Q, 3]`` seen by ``Ks [B, 3, 3]``
    (feature-map pixels) and ``viewmats [B, 4, 4]`` (valid: ``z > near`` and the pixel inside
    ``[0, width] x [0, height]``). Its oracle is
    :func:`gaussocc_ops.reference.lift.project_queries`.
    """
    cam = torch.einsum("bij,bqj->bqi", viewmats[:, :3, :3], queries) + viewmats[:, None, :3, 3]
    x, y, z = cam.unbind(-1)
    in_front = z > near
    z_safe = torch.where(in_front, z, torch.ones_like(z))
    u = Ks[:, None, 0, 0] * x / z_safe + Ks[:, None, 0, 2]
    v = Ks[:, None, 1, 1] * y / z_safe + Ks[:, None, 1, 2]
    valid = in_front & (u >= 0) & (u <= width) & (v >= 0) & (v <= height)
    return torch.stack([u, v], dim=-1), z, valid


def _feature_map_camera(cameras, batch, H, W, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``Ks [..., 3, 3]`` (rescaled to the ``H x W`` map) and ``viewmats [..., 4, 4]`` of a
    single-view pinhole camera whose batch shape broadcasts to ``batch``."""
    if isinstance(cameras, tuple) and len(cameras) == 2:
        return _legacy_camera_tuple(cameras, batch, device)
    if not isinstance(cameras, Cameras):
        raise TypeError(f"cameras must be gaussocc_ops.Cameras, got {type(cameras).__name__}")
    if cameras.model != "pinhole":
        raise ValueError(f"cameras must be pinhole, got model={cameras.model!r}")
    if cameras.num_views != 1:
        raise ValueError(f"cameras must have one view (V = 1), got V = {cameras.num_views}")
    if cameras.device != device:
        raise ValueError(f"cameras are on {cameras.device} but features is on {device}")
    _dispatch.broadcast_batch("camera", cameras.batch_shape, batch, "features'")
    if cameras.image_size != (H, W):
        cameras = resized(cameras, H, W)
    return cameras.Ks[..., 0, :, :], cameras.viewmats[..., 0, :, :]


def _legacy_camera_tuple(cameras, batch, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The deprecated camera form ``(Ks [..., 3, 3], viewmats [..., 4, 4])``, ``Ks`` already in
    feature-map pixels."""
    warnings.warn(
        "cameras=(Ks, viewmats) is deprecated; pass one-view Cameras(viewmats[..., None, :, :], "
        "Ks[..., None, :, :], height=H_img, width=W_img) (rescaled to the feature map)",
        DeprecationWarning,
        stacklevel=4,
    )
    Ks, viewmats = cameras
    check_tensor("Ks", Ks, min_dim=2, last=(3, 3))
    check_tensor("viewmats", viewmats, min_dim=2, last=(4, 4))
    check_float("Ks", Ks)
    check_float("viewmats", viewmats)
    for name, t in (("Ks", Ks), ("viewmats", viewmats)):
        if t.device != device:
            raise ValueError(f"camera {name} is on {t.device} but features is on {device}")
        _dispatch.broadcast_batch(f"camera {name}", t.shape[:-2], batch, "features'")
    return Ks, viewmats


class SoftGatingLifter(nn.Module):
    """SGR-OCC's soft-gating feature lifter: linear heads predict ``K`` sampling offsets and
    softmax attention weights from a per-query embedding, and :func:`soft_gated_lift` gathers
    the features through a learnable :class:`GaussianDepthGate`.

    The offset head starts with zero weights and a bias that spreads the ``K`` samples over a
    disc of radius ``init_radius`` pixels (a sunflower pattern: ``r_k = R sqrt((k + 0.5) / K)``,
    angle ``k`` times the golden angle); the attention head starts uniform (``A_k = 1 / K``).

    Args:
        embed_dim: channels of the query embeddings.
        num_points: samples per query ``K`` (default 16).
        init_radius: initial sampling radius in feature-map pixels.
        alpha, sigma: initial gate scale and tolerance (SGR-OCC: sigma = 0.5).
        near, backend: as in :func:`soft_gated_lift`.

    Shape:
        ``forward(features [..., C, H, W], depth [..., 1, H, W], queries [..., Q, 3],
        cameras (Cameras, V = 1), query_embed [..., Q, embed_dim])`` → ``[..., Q, C]``.

    Example:
        >>> lifter = SoftGatingLifter(embed_dim=32, num_points=8)
        >>> lifter
        SoftGatingLifter(
          embed_dim=32, num_points=8, init_radius=2.0, near=0.001, backend='auto'
          (offset_head): Linear(in_features=32, out_features=16, bias=True)
          (attn_head): Linear(in_features=32, out_features=8, bias=True)
          (gate): GaussianDepthGate(alpha=1, sigma=0.5)
        )
        >>> K = torch.tensor([[[20.0, 0, 20], [0, 20.0, 15], [0, 0, 1]]])
        >>> cams = Cameras(torch.eye(4)[None, None], K[:, None], height=30, width=40)
        >>> out = lifter(torch.rand(1, 16, 30, 40), torch.full((1, 1, 30, 40), 2.0),
        ...              torch.rand(1, 100, 3) + torch.tensor([0, 0, 1.5]), cams,
        ...              torch.randn(1, 100, 32))
        >>> out.shape
        torch.Size([1, 100, 16])
    """

    def __init__(
        self,
        embed_dim: int,
        num_points: int = 16,
        *,
        init_radius: float = 2.0,
        alpha: float = 1.0,
        sigma: float = 0.5,
        near: float = 1e-3,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        check_int("embed_dim", embed_dim, 1)
        check_int("num_points", num_points, 1)
        init_radius = check_number("init_radius", init_radius, minimum=0.0)
        near = check_number("near", near, minimum=0.0)
        if backend not in _dispatch.BACKENDS:
            raise ValueError(f"backend must be one of {_dispatch.BACKENDS}, got {backend!r}")
        self.embed_dim, self.num_points, self.init_radius = embed_dim, num_points, init_radius
        self.offset_head = nn.Linear(embed_dim, 2 * num_points)
        self.attn_head = nn.Linear(embed_dim, num_points)
        self.gate = GaussianDepthGate(alpha, sigma)
        self.near, self.backend = near, backend
        k = torch.arange(num_points, dtype=torch.float32)
        radius = init_radius * torch.sqrt((k + 0.5) / num_points)
        angle = k * math.pi * (3.0 - math.sqrt(5.0))
        with torch.no_grad():
            self.offset_head.weight.zero_()
            self.offset_head.bias.copy_(
                torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1).flatten()
            )
            self.attn_head.weight.zero_()
            self.attn_head.bias.zero_()

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_points={self.num_points}, "
            f"init_radius={self.init_radius}, near={self.near}, backend={self.backend!r}"
        )

    def forward(
        self,
        features: torch.Tensor,
        depth: torch.Tensor,
        queries: torch.Tensor,
        cameras: Cameras,
        query_embed: torch.Tensor,
    ) -> torch.Tensor:
        """Lift ``features`` to ``queries`` (shapes in the class docstring)."""
        check_tensor("query_embed", query_embed, min_dim=2, last=(self.embed_dim,))
        offsets = self.offset_head(query_embed).unflatten(-1, (self.num_points, 2))
        attn = self.attn_head(query_embed).softmax(dim=-1)
        return soft_gated_lift(
            features,
            depth,
            queries,
            cameras,
            offsets,
            attn,
            self.gate.alpha,
            self.gate.sigma,
            near=self.near,
            backend=self.backend,
        )
