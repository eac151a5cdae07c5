// Input checks of the soft-gated lifting ops, shared by the CPU kernel and the CUDA adapter.
#pragma once

#include <ATen/core/Tensor.h>

namespace gaussocc {

// Checks the layout documented in ops/lift.cpp: same device, same floating dtype, contiguous.
void check_soft_gated_lift_inputs(const at::Tensor& features, const at::Tensor& depth,
                                  const at::Tensor& ref_points, const at::Tensor& d_proj,
                                  const at::Tensor& valid, const at::Tensor& offsets,
                                  const at::Tensor& attn, const at::Tensor& alpha,
                                  const at::Tensor& sigma);

// Checks grad_out [B, Q, C] of the backward op against the forward inputs.
void check_soft_gated_lift_grad(const at::Tensor& grad_out, const at::Tensor& features,
                                const at::Tensor& offsets);

}  // namespace gaussocc
