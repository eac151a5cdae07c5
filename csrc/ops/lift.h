// Input checks of the soft-gated lifting ops and the raw pointers of a checked call, shared by the
// CPU kernel and the CUDA adapter.
#pragma once

#include <ATen/core/Tensor.h>

#include "gaussocc/lift_math.h"

namespace gaussocc {

// Checks the layout documented in ops/lift.cpp: same device, same floating dtype, contiguous.
void check_soft_gated_lift_inputs(const at::Tensor& features, const at::Tensor& depth, const at::Tensor& ref_points,
                                  const at::Tensor& d_proj, const at::Tensor& valid, const at::Tensor& offsets,
                                  const at::Tensor& attn, const at::Tensor& alpha, const at::Tensor& sigma);

// Checks grad_out [B, Q, C] of the backward op against the forward inputs.
void check_soft_gated_lift_grad(const at::Tensor& grad_out, const at::Tensor& features, const at::Tensor& offsets);

// The raw pointers and sizes of one checked call (dtype T), for the CPU and the CUDA kernels.
template <typename T>
LiftArgs<T> lift_args(const at::Tensor& features, const at::Tensor& depth, const at::Tensor& ref_points,
                      const at::Tensor& d_proj, const at::Tensor& valid, const at::Tensor& offsets,
                      const at::Tensor& attn, const at::Tensor& alpha, const at::Tensor& sigma) {
  return {features.data_ptr<T>(), depth.data_ptr<T>(),   ref_points.data_ptr<T>(), d_proj.data_ptr<T>(),
          valid.data_ptr<bool>(), offsets.data_ptr<T>(), attn.data_ptr<T>(),       alpha.data_ptr<T>(),
          sigma.data_ptr<T>(),    features.size(0),      features.size(1),         features.size(2),
          features.size(3),       offsets.size(1),       offsets.size(2)};
}

}  // namespace gaussocc
