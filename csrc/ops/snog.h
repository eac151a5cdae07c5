// Input checks of the SNOG accept/reject op (schema in ops/snog.cpp), shared by the CPU kernel
// (cpu/snog.cpp) and the CUDA adapter (cuda/snog_launch.cpp).
#pragma once

#include <ATen/core/Tensor.h>

namespace gaussocc {

// candidates [B, T, 2], positions [B, P, 2] and count [B], all int32, contiguous, on one device;
// patch_size >= 1.
void snog_check_inputs(const at::Tensor& candidates, const at::Tensor& positions, const at::Tensor& count,
                       int64_t patch_size);

}  // namespace gaussocc
