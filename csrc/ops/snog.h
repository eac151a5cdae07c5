// Input checks and outputs of the SNOG accept/reject op (schema in ops/snog.cpp), shared by the CPU kernel
// (cpu/snog.cpp) and the CUDA adapter (cuda/snog_launch.cpp).
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace gaussocc {

// Checks candidates [B, T, 2], positions [B, P, 2] and count [B], all int32, contiguous, on one
// device, and patch_size >= 1; returns the outputs: copies of positions and count, which the
// kernels update.
std::tuple<at::Tensor, at::Tensor> snog_accept_outputs(const at::Tensor& candidates, const at::Tensor& positions,
                                                       const at::Tensor& count, int64_t patch_size);

}  // namespace gaussocc
