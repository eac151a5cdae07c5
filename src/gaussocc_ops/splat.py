"""Differentiable semantic/depth splatting of 3D Gaussians (GaussRender Eq. 2-3)."""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

from gaussocc_ops import _ext
from gaussocc_ops._checks import check_tensor, compute_dtype, describe
from gaussocc_ops.reference import splat as ref
from gaussocc_ops.types import Cameras, Gaussians

Backend = Literal["auto", "reference", "cpu", "cuda", "gsplat"]
DepthMode = Literal["accumulated", "expected"]
TILE_SIZE = 16


class SplatOutput(NamedTuple):
    """Rendered images, all ``float`` of the input dtype (half inputs give float32).

    features: ``[..., V, H, W, C]`` composited features (plus ``(1 - alpha) * background``).
    depth: ``[..., V, H, W, 1]`` accumulated ``sum T_i alpha_i z_i`` or, for
        ``depth_mode="expected"``, that divided by alpha (0 where alpha is 0).
    alpha: ``[..., V, H, W, 1]`` ``1 - prod (1 - alpha_i)``.
    """

    features: torch.Tensor
    depth: torch.Tensor
    alpha: torch.Tensor


def splat(
    gaussians: Gaussians,
    cameras: Cameras,
    *,
    depth_mode: DepthMode = "accumulated",
    background: torch.Tensor | None = None,
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = 0.3,
    backend: Backend = "auto",
) -> SplatOutput:
    """Render features, depth and alpha of Gaussians into every camera.

    Each Gaussian is projected with the EWA approximation
    ``Sigma2D = J W (R S S^T R^T) W^T J^T + eps2d I`` (J: Jacobian of the pinhole or
    orthographic projection) and composited front to back in depth order:
    ``C_p = sum_i T_i alpha_i c_i``, ``D_p = sum_i T_i alpha_i z_i``,
    ``A_p = 1 - prod_i (1 - alpha_i)``
    with ``T_i = prod_{j<i} (1 - alpha_j)`` (GaussRender Eq. 2-3). The numeric conventions
    (alpha clamp 0.999, skip below 1/255, stop at T <= 1e-4, FOV clamp of J) are those of
    3DGS/gsplat and are listed in ``docs/splatting.md``.

    Args:
        gaussians: batch shape ``[...]`` with ``N`` Gaussians and ``C`` feature channels.
        cameras: ``V`` views; its batch shape must broadcast to the Gaussians' (cameras without
            batch dims are shared by every scene).
        depth_mode: ``"accumulated"`` or ``"expected"`` (accumulated / alpha).
        background: optional ``[C]``, ``[V, C]`` or ``[..., V, C]`` features behind the
            Gaussians, added as ``(1 - alpha) * background``.
        near, far: camera-frame depth range; Gaussians whose centre lies outside are culled.
        eps2d: added to the diagonal of every 2D covariance (pixels^2), a low-pass filter.
        backend: ``"reference"`` (pure PyTorch), ``"cpu"``, ``"cuda"`` (our kernels),
            ``"gsplat"`` (gsplat's rasterizer, CUDA only) or ``"auto"`` (our kernel for the
            input's device, the reference if the extension is missing).

    Returns:
        :class:`SplatOutput` ``(features [..., V, H, W, C], depth [..., V, H, W, 1],
        alpha [..., V, H, W, 1])``. Differentiable w.r.t. means, scales, quats, opacities,
        features and background; cameras are constants.

    Example:
        >>> mean = torch.tensor([[0.0, 0.0, 5.0]])
        >>> g = Gaussians.isotropic(mean, 0.5, torch.ones(1), torch.ones(1, 3))
        >>> K = torch.tensor([[[50., 0, 32], [0, 50., 32], [0, 0, 1]]])
        >>> cams = Cameras(torch.eye(4)[None], K, width=64, height=64)
        >>> out = splat(g, cams)
        >>> out.features.shape, round(out.alpha.max().item(), 3)
        (torch.Size([1, 64, 64, 3]), 0.99)
    """
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians must be gaussocc_ops.Gaussians, got {type(gaussians).__name__}")
    if not isinstance(cameras, Cameras):
        raise TypeError(f"cameras must be gaussocc_ops.Cameras, got {type(cameras).__name__}")
    if depth_mode not in ("accumulated", "expected"):
        raise ValueError(f"depth_mode must be 'accumulated' or 'expected', got {depth_mode!r}")
    if not (0 <= near < far):
        raise ValueError(f"need 0 <= near < far, got near={near}, far={far}")
    if not eps2d >= 0:
        raise ValueError(f"eps2d must be >= 0, got {eps2d}")
    if cameras.device != gaussians.device:
        raise ValueError(f"cameras are on {cameras.device} but gaussians are on {gaussians.device}")
    try:
        batch = torch.broadcast_shapes(gaussians.batch_shape, cameras.batch_shape)
    except RuntimeError:
        raise ValueError(
            f"camera batch shape {tuple(cameras.batch_shape)} does not broadcast to the Gaussians' "
            f"batch shape {tuple(gaussians.batch_shape)}"
        ) from None
    if batch != gaussians.batch_shape:
        raise ValueError(
            f"camera batch shape {tuple(cameras.batch_shape)} must broadcast to the Gaussians' "
            f"batch shape {tuple(gaussians.batch_shape)}, not enlarge it"
        )
    device = gaussians.device
    backend = _resolve_backend(backend, device)

    N, C, V = gaussians.num_gaussians, gaussians.num_channels, cameras.num_views
    H, W = cameras.height, cameras.width
    B = batch.numel()
    dtype = compute_dtype(gaussians.means, gaussians.features, cameras.viewmats)
    out_dtype = dtype

    def flat(t, tail):
        return t.to(dtype).expand(*batch, *tail).reshape(B, *tail).contiguous()

    means = flat(gaussians.means, (N, 3))
    quats = flat(gaussians.quats, (N, 4))
    scales = flat(gaussians.scales, (N, 3))
    opacities = flat(gaussians.effective_opacities(), (N,))
    features = flat(gaussians.features, (N, C))
    viewmats = flat(cameras.viewmats, (V, 4, 4))
    Ks = flat(cameras.Ks, (V, 3, 3))
    ortho = cameras.model == "ortho"
    args = (
        means,
        quats,
        scales,
        opacities,
        features,
        viewmats,
        Ks,
        W,
        H,
        float(near),
        float(far),
        float(eps2d),
        ortho,
    )

    if B == 0 or V == 0:
        feats = features.new_zeros(B, V, H, W, C)
        depth = features.new_zeros(B, V, H, W)
        alpha = features.new_zeros(B, V, H, W)
    elif backend == "reference":
        feats, depth, alpha = ref.splat(*args)
    elif backend == "gsplat":
        from gaussocc_ops import _gsplat

        feats, depth, alpha = _gsplat.splat(*args)
    else:
        feats, depth, alpha = _splat_kernels(*args)

    depth = depth.unsqueeze(-1)
    alpha = alpha.unsqueeze(-1)
    if depth_mode == "expected":
        depth = torch.where(alpha > 0, depth / alpha.clamp(min=1e-10), torch.zeros_like(depth))
    if background is not None:
        bg = _broadcast_background(background, batch, V, C, dtype, device)
        feats = feats + (1 - alpha) * bg[:, :, None, None, :]
    shape = (*batch, V, H, W)
    return SplatOutput(
        feats.reshape(*shape, C).to(out_dtype),
        depth.reshape(*shape, 1).to(out_dtype),
        alpha.reshape(*shape, 1).to(out_dtype),
    )


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in ("auto", "reference", "cpu", "cuda", "gsplat"):
        raise ValueError(
            f"backend must be one of 'auto', 'reference', 'cpu', 'cuda', 'gsplat', got {backend!r}"
        )
    if backend == "auto":
        if _ext.kernel_available("rasterize", device):
            return "cpu" if device.type == "cpu" else "cuda"
        _ext.warn_fallback("splat")
        return "reference"
    if backend in ("cpu", "cuda"):
        if device.type != backend:
            raise ValueError(f"backend={backend!r} needs tensors on {backend}, got {device}")
        if not _ext.kernel_available("rasterize", device):
            raise RuntimeError(
                f"backend={backend!r} is not available: the {backend.upper()} kernels were not "
                f"compiled ({_ext.build_info()['error'] or 'no such kernel in this build'})"
            )
    if backend == "gsplat" and device.type != "cuda":
        raise ValueError(f"backend='gsplat' needs CUDA tensors, got {device}")
    return backend


def _broadcast_background(background, batch, V, C, dtype, device):
    check_tensor("background", background, min_dim=1)
    if background.shape[-1] != C:
        raise ValueError(
            f"background must have {C} channels in its last dim, got {describe(background)}"
        )
    if background.device != device:
        raise ValueError(f"background is on {background.device} but gaussians are on {device}")
    bg = background.to(dtype)
    if bg.dim() == 1:
        bg = bg.expand(V, C)
    try:
        bg = bg.expand(*batch, V, C)
    except RuntimeError:
        raise ValueError(
            f"background of shape {tuple(background.shape)} does not broadcast to {(*batch, V, C)}"
        ) from None
    return bg.reshape(-1, V, C)


def _splat_kernels(
    means, quats, scales, opacities, features, viewmats, Ks, W, H, near, far, eps2d, ortho
):
    means2d, conics, depths, radii = torch.ops.gaussocc.project_gaussians(
        means, quats, scales, opacities, viewmats, Ks, W, H, near, far, eps2d, ortho
    )
    feats, depth, alpha = torch.ops.gaussocc.rasterize(
        means2d, conics, depths, radii, opacities, features, W, H, TILE_SIZE
    )[:3]
    return feats, depth, alpha


def _register_autograd() -> None:
    """Backward formulas and fake (meta) kernels of the compiled splatting ops."""
    lib = "gaussocc::"

    @torch.library.register_fake(lib + "project_gaussians")
    def _(means, quats, scales, opacities, viewmats, Ks, width, height, near, far, eps2d, ortho):
        B, N = means.shape[:2]
        V = viewmats.shape[1]
        return (
            means.new_empty(B, V, N, 2),
            means.new_empty(B, V, N, 3),
            means.new_empty(B, V, N),
            means.new_empty(B, V, N, 2, dtype=torch.int32),
        )

    def project_setup(ctx, inputs, output):
        means, quats, scales, _, viewmats, Ks, width, height, _, _, eps2d, ortho = inputs
        ctx.save_for_backward(means, quats, scales, viewmats, Ks, output[3])
        ctx.cfg = (width, height, eps2d, ortho)

    def project_backward(ctx, g_means2d, g_conics, g_depths, _g_radii):
        means, quats, scales, viewmats, Ks, radii = ctx.saved_tensors
        width, height, eps2d, ortho = ctx.cfg
        zeros = lambda g, like: torch.zeros_like(like) if g is None else g.contiguous()  # noqa: E731
        B, N = means.shape[:2]
        V = viewmats.shape[1]
        shape = means.new_empty(B, V, N)
        g_m, g_q, g_s = torch.ops.gaussocc.project_gaussians_backward(
            means,
            quats,
            scales,
            viewmats,
            Ks,
            radii,
            zeros(g_means2d, shape.unsqueeze(-1).expand(B, V, N, 2)),
            zeros(g_conics, shape.unsqueeze(-1).expand(B, V, N, 3)),
            zeros(g_depths, shape),
            width,
            height,
            eps2d,
            ortho,
        )
        return g_m, g_q, g_s, None, None, None, None, None, None, None, None, None

    torch.library.register_autograd(
        lib + "project_gaussians", project_backward, setup_context=project_setup
    )

    @torch.library.register_fake(lib + "project_gaussians_backward")
    def _(
        means,
        quats,
        scales,
        viewmats,
        Ks,
        radii,
        g_means2d,
        g_conics,
        g_depths,
        width,
        height,
        eps2d,
        ortho,
    ):
        return torch.empty_like(means), torch.empty_like(quats), torch.empty_like(scales)

    @torch.library.register_fake(lib + "rasterize")
    def _(means2d, conics, depths, radii, opacities, features, width, height, tile_size):
        B, V, N = depths.shape
        C = features.shape[-1]
        ctx = torch.library.get_ctx()
        n_isect = ctx.new_dynamic_size()
        tiles = ((width + tile_size - 1) // tile_size) * ((height + tile_size - 1) // tile_size)
        return (
            features.new_empty(B, V, height, width, C),
            features.new_empty(B, V, height, width),
            features.new_empty(B, V, height, width),
            features.new_empty(B, V, height, width, dtype=torch.int32),
            features.new_empty(B * V * tiles + 1, dtype=torch.int64),
            features.new_empty(n_isect, dtype=torch.int32),
        )

    def raster_setup(ctx, inputs, output):
        means2d, conics, depths, _, opacities, features, width, height, tile_size = inputs
        _, _, alpha, last, offsets, ids = output
        ctx.save_for_backward(
            means2d, conics, depths, opacities, features, alpha, last, offsets, ids
        )
        ctx.cfg = (width, height, tile_size)
        ctx.mark_non_differentiable(last, offsets, ids)

    def raster_backward(ctx, g_feats, g_depth, g_alpha, *_):
        means2d, conics, depths, opacities, features, alpha, last, offsets, ids = ctx.saved_tensors
        width, height, tile_size = ctx.cfg
        B, V, N = depths.shape
        C = features.shape[-1]
        g_feats = (
            features.new_zeros(B, V, height, width, C) if g_feats is None else g_feats.contiguous()
        )
        g_depth = (
            features.new_zeros(B, V, height, width) if g_depth is None else g_depth.contiguous()
        )
        g_alpha = (
            features.new_zeros(B, V, height, width) if g_alpha is None else g_alpha.contiguous()
        )
        grads = torch.ops.gaussocc.rasterize_backward(
            means2d,
            conics,
            depths,
            opacities,
            features,
            alpha,
            last,
            offsets,
            ids,
            g_feats,
            g_depth,
            g_alpha,
            width,
            height,
            tile_size,
        )
        return (*grads[:3], None, *grads[3:], None, None, None)

    torch.library.register_autograd(lib + "rasterize", raster_backward, setup_context=raster_setup)

    @torch.library.register_fake(lib + "rasterize_backward")
    def _(
        means2d,
        conics,
        depths,
        opacities,
        features,
        alpha,
        last,
        offsets,
        ids,
        g_feats,
        g_depth,
        g_alpha,
        width,
        height,
        tile_size,
    ):
        return (
            torch.empty_like(means2d),
            torch.empty_like(conics),
            torch.empty_like(depths),
            torch.empty_like(opacities),
            torch.empty_like(features),
        )


_ext.on_load("rasterize", _register_autograd)
