"""Soft-gated 2D-to-3D feature lifting (SGR-OCC Eq. 1-2)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from gaussocc_ops import _ext
from gaussocc_ops._checks import (
    check_finite,
    check_float,
    check_tensor,
    compute_dtype,
    describe,
)
from gaussocc_ops.depth import GaussianDepthGate, _as_scalar, _check_positive_sigma
from gaussocc_ops.reference import lift as ref
from gaussocc_ops.types import Cameras

Backend = Literal["auto", "reference", "cpu", "cuda"]
CameraArg = Cameras | tuple[torch.Tensor, torch.Tensor]


def soft_gated_lift(
    features: torch.Tensor,
    depth: torch.Tensor,
    queries: torch.Tensor,
    cameras: CameraArg,
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
            broadcasts to ``[...]``; its ``Ks`` refer to an image of ``cameras.width x
            cameras.height`` and are rescaled to the ``W x H`` feature map. Or a tuple
            ``(Ks [..., 3, 3], viewmats [..., 4, 4])`` (world → camera) with ``Ks`` already in
            feature-map pixels.
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
        >>> K = torch.tensor([[20.0, 0, 20.5], [0, 20.0, 15.5], [0, 0, 1]])
        >>> queries = torch.tensor([[[0.0, 0.0, 2.0]]])
        >>> out = soft_gated_lift(feats, depth, queries, (K[None], torch.eye(4)[None]),
        ...                       torch.zeros(1, 1, 4, 2), torch.full((1, 1, 4), 0.25), 1.0, 0.5)
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
    for name, t in (("features", features), ("depth", depth), ("queries", queries),
                    ("offsets", offsets), ("attn", attn)):
        check_float(name, t)
        if t.device != features.device:
            raise ValueError(f"{name} is on {t.device} but features is on {features.device}")
    check_finite("queries", queries)
    check_finite("offsets", offsets)
    if not near >= 0:
        raise ValueError(f"near must be >= 0, got {near}")
    Ks, viewmats = _camera_tensors(cameras, batch, H, W, features.device)
    device = features.device
    backend = _resolve_backend(backend, device)

    dtype = compute_dtype(features, depth, queries, offsets, attn, Ks, viewmats)
    like = features.new_empty((), dtype=dtype)
    alpha_t = _as_scalar("alpha", alpha, like)
    sigma_t = _as_scalar("sigma", sigma, like)
    _check_positive_sigma(sigma_t)
    B = batch.numel()

    def flat(t, tail):
        return t.to(dtype).expand(*batch, *tail).reshape(B, *tail)

    features_f = flat(features, (C, H, W))
    depth_f = flat(depth, (1, H, W))
    queries_f = flat(queries, (Q, 3))
    offsets_f = flat(offsets, (Q, K, 2))
    attn_f = flat(attn, (Q, K))
    Ks_f = flat(Ks, (3, 3))
    viewmats_f = flat(viewmats, (4, 4))

    if backend == "reference":
        out = ref.soft_gated_lift(features_f, depth_f, queries_f, Ks_f, viewmats_f, offsets_f,
                                  attn_f, alpha_t, sigma_t, float(near))
    else:
        ref_points, d_proj, valid = project_queries(queries_f, Ks_f, viewmats_f, H, W, near)
        out = torch.ops.gaussocc.soft_gated_lift(
            features_f.permute(0, 2, 3, 1).contiguous(),
            depth_f[:, 0].contiguous(),
            ref_points.contiguous(),
            d_proj.contiguous(),
            valid,
            offsets_f.contiguous(),
            attn_f.contiguous(),
            alpha_t,
            sigma_t,
        )
    return out.reshape(*batch, Q, C)


def project_queries(
    queries: torch.Tensor, Ks: torch.Tensor, viewmats: torch.Tensor, height: int, width: int,
    near: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixels ``[B, Q, 2]``, depths ``[B, Q]`` and validity ``[B, Q]`` of ``queries [B, Q, 3]``
    (valid: ``z > near`` and the pixel inside ``[0, width] x [0, height]``)."""
    cam = torch.einsum("bij,bqj->bqi", viewmats[:, :3, :3], queries) + viewmats[:, None, :3, 3]
    x, y, z = cam.unbind(-1)
    in_front = z > near
    z_safe = torch.where(in_front, z, torch.ones_like(z))
    u = Ks[:, None, 0, 0] * x / z_safe + Ks[:, None, 0, 2]
    v = Ks[:, None, 1, 1] * y / z_safe + Ks[:, None, 1, 2]
    valid = in_front & (u >= 0) & (u <= width) & (v >= 0) & (v <= height)
    return torch.stack([u, v], dim=-1), z, valid


def _camera_tensors(cameras, batch, H, W, device):
    if isinstance(cameras, Cameras):
        if cameras.model != "pinhole":
            raise ValueError(f"cameras must be pinhole, got model={cameras.model!r}")
        if cameras.num_views != 1:
            raise ValueError(f"cameras must have one view (V = 1), got V = {cameras.num_views}")
        scale = cameras.Ks.new_tensor([W / cameras.width, H / cameras.height, 1.0])
        Ks = cameras.Ks[..., 0, :, :] * scale[:, None]
        viewmats = cameras.viewmats[..., 0, :, :]
    elif isinstance(cameras, tuple) and len(cameras) == 2:
        Ks, viewmats = cameras
        check_tensor("Ks", Ks, min_dim=2, last=(3, 3))
        check_tensor("viewmats", viewmats, min_dim=2, last=(4, 4))
        check_float("Ks", Ks)
        check_float("viewmats", viewmats)
    else:
        raise TypeError(
            "cameras must be gaussocc_ops.Cameras or a tuple (Ks [..., 3, 3], "
            f"viewmats [..., 4, 4]), got {type(cameras).__name__}"
        )
    for name, t in (("Ks", Ks), ("viewmats", viewmats)):
        if t.device != device:
            raise ValueError(f"camera {name} is on {t.device} but features is on {device}")
        try:
            if torch.broadcast_shapes(t.shape[:-2], batch) != batch:
                raise RuntimeError
        except RuntimeError:
            raise ValueError(
                f"camera {name} batch shape {tuple(t.shape[:-2])} must broadcast to the features' "
                f"batch shape {tuple(batch)}"
            ) from None
    return Ks, viewmats


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in ("auto", "reference", "cpu", "cuda"):
        raise ValueError(f"backend must be 'auto', 'reference', 'cpu' or 'cuda', got {backend!r}")
    if backend == "auto":
        if _ext.kernel_available("soft_gated_lift", device):
            return device.type
        _ext.warn_fallback("soft_gated_lift")
        return "reference"
    if backend != "reference":
        if device.type != backend:
            raise ValueError(f"backend={backend!r} needs tensors on {backend}, got {device}")
        if not _ext.kernel_available("soft_gated_lift", device):
            reason = _ext.build_info()["error"] or "no such kernel"
            raise RuntimeError(
                f"backend={backend!r} is not available: the {backend.upper()} kernel was not "
                f"compiled (gaussocc_ops.build_info(): {reason})"
            )
    return backend


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

    Shapes: ``forward(features [..., C, H, W], depth [..., 1, H, W], queries [..., Q, 3], cameras,
    query_embed [..., Q, embed_dim])`` → ``[..., Q, C]``.

    Example:
        >>> lifter = SoftGatingLifter(embed_dim=32, num_points=8)
        >>> K = torch.tensor([[[20.0, 0, 20], [0, 20.0, 15], [0, 0, 1]]])
        >>> out = lifter(torch.rand(1, 16, 30, 40), torch.full((1, 1, 30, 40), 2.0),
        ...              torch.rand(1, 100, 3) + torch.tensor([0, 0, 1.5]), (K, torch.eye(4)[None]),
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
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}")
        self.num_points = num_points
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

    def forward(
        self,
        features: torch.Tensor,
        depth: torch.Tensor,
        queries: torch.Tensor,
        cameras: CameraArg,
        query_embed: torch.Tensor,
    ) -> torch.Tensor:
        offsets = self.offset_head(query_embed).unflatten(-1, (self.num_points, 2))
        attn = self.attn_head(query_embed).softmax(dim=-1)
        return soft_gated_lift(features, depth, queries, cameras, offsets, attn, self.gate.alpha,
                               self.gate.sigma, near=self.near, backend=self.backend)


def _register_autograd() -> None:
    """Backward formula and fake kernels of the compiled lifting ops."""
    name = "gaussocc::soft_gated_lift"

    @torch.library.register_fake(name)
    def _(features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma):
        return features.new_empty(features.shape[0], offsets.shape[1], features.shape[3])

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def backward(ctx, grad_out):
        features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma = ctx.saved_tensors
        g_feat, g_depth, g_dproj, g_off, g_attn, g_alpha, g_sigma = (
            torch.ops.gaussocc.soft_gated_lift_backward(
                grad_out.contiguous(), features, depth, ref_points, d_proj, valid, offsets, attn,
                alpha, sigma,
            )
        )
        return g_feat, g_depth, g_off.sum(dim=2), g_dproj, None, g_off, g_attn, g_alpha, g_sigma

    torch.library.register_autograd(name, backward, setup_context=setup_context)

    @torch.library.register_fake(name + "_backward")
    def _(grad_out, features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma):
        return (torch.empty_like(features), torch.empty_like(depth), torch.empty_like(d_proj),
                torch.empty_like(offsets), torch.empty_like(attn), torch.empty_like(alpha),
                torch.empty_like(sigma))


_ext.on_load("soft_gated_lift", _register_autograd)
