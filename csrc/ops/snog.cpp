// Schema of the SNOG accept/reject op (see src/gaussocc_ops/snog.py), its input checks and
// outputs (ops/snog.h). Kernels: csrc/cpu/snog.cpp, csrc/cuda/snog_launch.cpp.
#include "ops/snog.h"

#include <torch/library.h>

#include <cstdint>

#include "ops/checks.h"

namespace gaussocc {

std::tuple<at::Tensor, at::Tensor> snog_accept_outputs(const at::Tensor& candidates, const at::Tensor& positions,
                                                       const at::Tensor& count, int64_t patch_size) {
  const char* op = "snog_accept";
  check_dim(op, candidates, "candidates", 3, "[B, T, 2]");
  check_dim(op, positions, "positions", 3, "[B, P, 2]");
  const int64_t B = positions.size(0), T = candidates.size(1), P = positions.size(1);
  const auto dev = positions.device();
  check_tensor(op, candidates, "candidates", {B, T, 2}, at::kInt, dev);
  check_tensor(op, positions, "positions", {B, P, 2}, at::kInt, dev);
  check_tensor(op, count, "count", {B}, at::kInt, dev);
  TORCH_CHECK(patch_size >= 1, op, ": patch_size must be >= 1, got ", patch_size);
  TORCH_CHECK(P <= INT32_MAX, op, ": too many patches");
  return {positions.clone(), count.clone()};
}

}  // namespace gaussocc

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  // candidates [B, T, 2] int32 top-left (row, col), row < 0 = no candidate; positions [B, P, 2]
  // int32 and count [B] int32: patches accepted so far. Returns the updated (positions, count).
  m.def("snog_accept(Tensor candidates, Tensor positions, Tensor count, int patch_size) -> (Tensor, Tensor)");
}
