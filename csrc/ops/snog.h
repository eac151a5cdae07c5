// Input checks of the SNOG accept/reject op, shared by its CPU and CUDA adapters.
#pragma once

#include <ATen/ATen.h>

namespace gaussocc {

inline void snog_check_inputs(const at::Tensor& candidates, const at::Tensor& positions,
                              const at::Tensor& count, int64_t patch_size) {
  TORCH_CHECK(candidates.dim() == 3 && candidates.size(2) == 2,
              "snog_accept: candidates must have shape [B, T, 2], got ", candidates.sizes());
  TORCH_CHECK(positions.dim() == 3 && positions.size(2) == 2,
              "snog_accept: positions must have shape [B, P, 2], got ", positions.sizes());
  TORCH_CHECK(count.dim() == 1, "snog_accept: count must have shape [B], got ", count.sizes());
  TORCH_CHECK(candidates.size(0) == positions.size(0) && count.size(0) == positions.size(0),
              "snog_accept: batch sizes differ: candidates ", candidates.sizes(), ", positions ",
              positions.sizes(), ", count ", count.sizes());
  TORCH_CHECK(candidates.scalar_type() == at::kInt && positions.scalar_type() == at::kInt &&
                  count.scalar_type() == at::kInt,
              "snog_accept: candidates, positions and count must be int32, got ",
              candidates.scalar_type(), ", ", positions.scalar_type(), ", ", count.scalar_type());
  TORCH_CHECK(candidates.device() == positions.device() && count.device() == positions.device(),
              "snog_accept: all inputs must be on one device");
  TORCH_CHECK(patch_size >= 1, "snog_accept: patch_size must be >= 1, got ", patch_size);
  TORCH_CHECK(positions.size(1) <= INT32_MAX, "snog_accept: too many patches");
}

}  // namespace gaussocc
