"""Autograd and fake kernels of ``soft_gated_lift`` (schema in ``csrc/ops/lift.cpp``)."""

from __future__ import annotations

import torch

from gaussocc_ops import _ext

NAME = "gaussocc::soft_gated_lift"


def _fake(features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma):
    return features.new_empty(features.shape[0], offsets.shape[1], features.shape[3])


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad_out):
    features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma = ctx.saved_tensors
    g_feat, g_depth, g_dproj, g_off, g_attn, g_alpha, g_sigma = (
        torch.ops.gaussocc.soft_gated_lift_backward(
            grad_out.contiguous(),
            features,
            depth,
            ref_points,
            d_proj,
            valid,
            offsets,
            attn,
            alpha,
            sigma,
        )
    )
    # ref_points moves every sample of its query: its gradient is the offsets' summed over K
    return g_feat, g_depth, g_off.sum(dim=2), g_dproj, None, g_off, g_attn, g_alpha, g_sigma


def _backward_fake(
    grad_out, features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma
):
    return (
        torch.empty_like(features),
        torch.empty_like(depth),
        torch.empty_like(d_proj),
        torch.empty_like(offsets),
        torch.empty_like(attn),
        torch.empty_like(alpha),
        torch.empty_like(sigma),
    )


def register() -> None:
    torch.library.register_fake(NAME, _fake)
    torch.library.register_autograd(NAME, _backward, setup_context=_setup)
    torch.library.register_fake(NAME + "_backward", _backward_fake)


_ext.on_load("soft_gated_lift", register)
