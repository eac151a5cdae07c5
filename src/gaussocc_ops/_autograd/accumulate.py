"""Backward formula and fake (meta) kernels of ``accumulate_gaussians`` and its backward (schemas
in ``csrc/ops/accumulate.cpp``)."""

from __future__ import annotations

import torch

from gaussocc_ops import _ext

OP = "accumulate_gaussians"
# the mode argument of the op (gaussocc_ops.accumulate.MODES)
_ADDITIVE = 0


def register() -> None:
    """Backward formula and fake (meta) kernels of the compiled accumulation ops."""
    lib = "gaussocc::"

    @torch.library.register_fake(lib + OP)
    def _(means, quats, scales, opacities, features, valid, origin, voxel_size, shape, *cfg):
        mode = cfg[1]
        B, N, C = features.shape
        V = shape[0] * shape[1] * shape[2]
        Vs = 0 if mode == _ADDITIVE else V
        return (
            means.new_empty(B, V),
            means.new_empty(B, V, C if mode == _ADDITIVE else C + 1),
            means.new_empty(B, Vs),
            means.new_empty(B, Vs),
            means.new_empty(B, Vs, dtype=torch.int32),
        )

    def setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:6], *output[1:])
        ctx.cfg = inputs[6:]
        ctx.mark_non_differentiable(*output[2:])
        ctx.set_materialize_grads(False)  # no zero-filled gradients of the saved state

    def backward(ctx, g_occ, g_probs, *_):
        saved = ctx.saved_tensors
        probs = saved[6]
        B, V, _C = probs.shape
        if g_occ is None:
            g_occ = probs.new_zeros(B, V)
        if g_probs is None:  # read through its strides: a zero stride costs no memory
            g_probs = probs.new_zeros(()).expand(probs.shape)
        grads = torch.ops.gaussocc.accumulate_gaussians_backward(*saved, g_occ, g_probs, *ctx.cfg)
        return (*grads, None, None, None, None, None, None, None, None)

    torch.library.register_autograd(lib + OP, backward, setup_context=setup)

    @torch.library.register_fake(lib + OP + "_backward")
    def _(means, quats, scales, opacities, features, valid, *rest):
        return (
            torch.empty_like(means),
            torch.empty_like(quats),
            torch.empty_like(scales),
            torch.empty_like(opacities),
            torch.empty_like(features),
        )


_ext.on_load(OP, register)
