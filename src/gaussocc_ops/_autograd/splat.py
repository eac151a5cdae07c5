"""Autograd and fake kernels of ``project_gaussians`` and ``rasterize`` (schemas in
``csrc/ops/splat.cpp``) and fake kernels of their backward ops."""

from __future__ import annotations

import torch

from gaussocc_ops import _ext

LIB = "gaussocc::"


def _grad(g: torch.Tensor | None, shape, like: torch.Tensor) -> torch.Tensor:
    """The incoming gradient, or zeros where autograd passes None; contiguous."""
    return like.new_zeros(shape) if g is None else g.contiguous()


def _project_fake(
    means, quats, scales, opacities, viewmats, Ks, height, width, near, far, eps2d, ortho
):
    B, N = means.shape[:2]
    V = viewmats.shape[1]
    return (
        means.new_empty(B, V, N, 2),
        means.new_empty(B, V, N, 3),
        means.new_empty(B, V, N),
        means.new_empty(B, V, N, 2, dtype=torch.int32),
    )


def _project_setup(ctx, inputs, output):
    means, quats, scales, _, viewmats, Ks, height, width, _, _, eps2d, ortho = inputs
    ctx.save_for_backward(means, quats, scales, viewmats, Ks, output[3])
    ctx.cfg = (height, width, eps2d, ortho)


def _project_backward(ctx, g_means2d, g_conics, g_depths, _g_radii):
    means, quats, scales, viewmats, Ks, radii = ctx.saved_tensors
    height, width, eps2d, ortho = ctx.cfg
    B, N = means.shape[:2]
    V = viewmats.shape[1]
    g_m, g_q, g_s = torch.ops.gaussocc.project_gaussians_backward(
        means,
        quats,
        scales,
        viewmats,
        Ks,
        radii,
        _grad(g_means2d, (B, V, N, 2), means),
        _grad(g_conics, (B, V, N, 3), means),
        _grad(g_depths, (B, V, N), means),
        height,
        width,
        eps2d,
        ortho,
    )
    return g_m, g_q, g_s, None, None, None, None, None, None, None, None, None


def _project_backward_fake(means, quats, scales, *_):
    return torch.empty_like(means), torch.empty_like(quats), torch.empty_like(scales)


def _rasterize_fake(means2d, conics, depths, radii, opacities, features, height, width, tile_size):
    B, V, N = depths.shape
    C = features.shape[-1]
    n_isect = torch.library.get_ctx().new_dynamic_size()
    tiles = ((width + tile_size - 1) // tile_size) * ((height + tile_size - 1) // tile_size)
    return (
        features.new_empty(B, V, height, width, C),
        features.new_empty(B, V, height, width),
        features.new_empty(B, V, height, width),
        features.new_empty(B, V, height, width, dtype=torch.int32),
        features.new_empty(B * V * tiles + 1, dtype=torch.int64),
        features.new_empty(n_isect, dtype=torch.int32),
    )


def _rasterize_setup(ctx, inputs, output):
    means2d, conics, depths, _, opacities, features, height, width, tile_size = inputs
    _, _, alpha, last, offsets, ids = output
    ctx.save_for_backward(means2d, conics, depths, opacities, features, alpha, last, offsets, ids)
    ctx.cfg = (height, width, tile_size)
    ctx.mark_non_differentiable(last, offsets, ids)


def _rasterize_backward(ctx, g_feats, g_depth, g_alpha, *_):
    # saved: means2d, conics, depths, opacities, features, alpha, last, offsets, ids: the
    # leading arguments of rasterize_backward, in its schema's order
    saved = ctx.saved_tensors
    height, width, tile_size = ctx.cfg
    depths, features = saved[2], saved[4]
    B, V, _ = depths.shape
    C = features.shape[-1]
    grads = torch.ops.gaussocc.rasterize_backward(
        *saved,
        _grad(g_feats, (B, V, height, width, C), features),
        _grad(g_depth, (B, V, height, width), features),
        _grad(g_alpha, (B, V, height, width), features),
        height,
        width,
        tile_size,
    )
    return (*grads[:3], None, *grads[3:], None, None, None)


def _rasterize_backward_fake(means2d, conics, depths, opacities, features, *_):
    """Gradients w.r.t. the five differentiable inputs, shaped like them."""
    return tuple(torch.empty_like(t) for t in (means2d, conics, depths, opacities, features))


def register() -> None:
    torch.library.register_fake(LIB + "project_gaussians", _project_fake)
    torch.library.register_autograd(
        LIB + "project_gaussians", _project_backward, setup_context=_project_setup
    )
    torch.library.register_fake(LIB + "project_gaussians_backward", _project_backward_fake)
    torch.library.register_fake(LIB + "rasterize", _rasterize_fake)
    torch.library.register_autograd(
        LIB + "rasterize", _rasterize_backward, setup_context=_rasterize_setup
    )
    torch.library.register_fake(LIB + "rasterize_backward", _rasterize_backward_fake)


_ext.on_load("rasterize", register)
