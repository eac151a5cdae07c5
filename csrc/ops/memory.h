// Input checks of the GaussianMemory ops, shared by the CPU kernels and the CUDA adapter.
#pragma once

#include <ATen/core/Tensor.h>

namespace gaussocc {

// The layout documented in ops/memory.cpp: one float dtype, one device, contiguous.
void check_memory_fuse_inputs(const at::Tensor& means, const at::Tensor& scales, const at::Tensor& quats,
                              const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& confidence,
                              const at::Tensor& observations, const at::Tensor& last_seen, const at::Tensor& tags,
                              const at::Tensor& new_means, const at::Tensor& new_scales, const at::Tensor& new_quats,
                              const at::Tensor& new_opacities, const at::Tensor& new_features,
                              const at::Tensor& new_confidence, const at::Tensor& new_tags, const at::Tensor& targets,
                              const at::Tensor& offsets, const at::Tensor& pair_new, const at::Tensor& coef,
                              double gamma);

}  // namespace gaussocc
