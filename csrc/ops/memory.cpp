// The GaussianMemory ops: the fusion step (CPU and CUDA) and the eviction heap (CPU); see
// src/gaussocc_ops/memory.py.
#include "ops/memory.h"

#include <torch/library.h>

#include <cmath>

namespace gaussocc {
namespace {

void check_rows(const char* name, const at::Tensor& t, int64_t rows, int64_t cols, at::ScalarType dtype,
                const at::Tensor& like) {
  const bool shape_ok = cols < 0 ? (t.dim() == 1 && t.size(0) == rows)
                                 : (t.dim() == 2 && t.size(0) == rows && t.size(1) == cols);
  TORCH_CHECK(shape_ok, "memory_fuse: ", name, " must be [", rows, cols < 0 ? "" : ", ",
              cols < 0 ? "" : std::to_string(cols), "], got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, "memory_fuse: ", name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.device() == like.device(), "memory_fuse: ", name, " is on ", t.device(), " but means on ",
              like.device());
  TORCH_CHECK(t.is_contiguous(), "memory_fuse: ", name, " must be contiguous");
}

}  // namespace

void check_memory_fuse_inputs(const at::Tensor& means, const at::Tensor& scales, const at::Tensor& quats,
                              const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& confidence,
                              const at::Tensor& observations, const at::Tensor& last_seen, const at::Tensor& tags,
                              const at::Tensor& new_means, const at::Tensor& new_scales, const at::Tensor& new_quats,
                              const at::Tensor& new_opacities, const at::Tensor& new_features,
                              const at::Tensor& new_confidence, const at::Tensor& new_tags, const at::Tensor& targets,
                              const at::Tensor& offsets, const at::Tensor& pair_new, const at::Tensor& coef,
                              double gamma) {
  TORCH_CHECK(means.dim() == 2, "memory_fuse: means must be [cap, 3], got ", means.sizes());
  const at::ScalarType T = means.scalar_type();
  TORCH_CHECK(T == at::kFloat || T == at::kDouble, "memory_fuse: float32 or float64 memory expected, got ", T);
  TORCH_CHECK(features.dim() == 2, "memory_fuse: features must be [cap, C], got ", features.sizes());
  const int64_t cap = means.size(0), C = features.size(1), n = new_means.size(0);
  check_rows("means", means, cap, 3, T, means);
  check_rows("scales", scales, cap, 3, T, means);
  check_rows("quats", quats, cap, 4, T, means);
  check_rows("opacities", opacities, cap, -1, T, means);
  check_rows("features", features, cap, C, T, means);
  check_rows("confidence", confidence, cap, -1, T, means);
  check_rows("observations", observations, cap, -1, at::kLong, means);
  check_rows("last_seen", last_seen, cap, -1, at::kLong, means);
  check_rows("tags", tags, cap, -1, at::kBool, means);
  check_rows("new_means", new_means, n, 3, T, means);
  check_rows("new_scales", new_scales, n, 3, T, means);
  check_rows("new_quats", new_quats, n, 4, T, means);
  check_rows("new_opacities", new_opacities, n, -1, T, means);
  check_rows("new_features", new_features, n, C, T, means);
  check_rows("new_confidence", new_confidence, n, -1, T, means);
  check_rows("new_tags", new_tags, n, -1, at::kBool, means);
  const int64_t num_targets = targets.numel();
  check_rows("targets", targets, num_targets, -1, at::kLong, means);
  check_rows("offsets", offsets, num_targets + 1, -1, at::kLong, means);
  check_rows("pair_new", pair_new, pair_new.numel(), -1, at::kLong, means);
  TORCH_CHECK(coef.numel() == 0 || coef.numel() == num_targets, "memory_fuse: coef must be empty or [",
              num_targets, "], got ", coef.sizes());
  if (coef.numel()) check_rows("coef", coef, num_targets, -1, T, means);
  TORCH_CHECK(std::isfinite(gamma) && gamma > 0 && gamma < 1, "memory_fuse: gamma must lie in (0, 1), got ", gamma);
}

}  // namespace gaussocc

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  // Fuses the frame's Gaussians (new_*, [n, ...], world frame) into the memory rows `targets` [T]
  // (distinct), in place: pairs offsets[t] .. offsets[t+1] of pair_new [P] name the frame rows
  // matched to target t, in ascending order. coef [T] selects the SGR-OCC rule with C = coef, an
  // empty coef the GPOcc rule with `gamma` (csrc/include/gaussocc/memory_math.h). Matched rows
  // get observations + 1, last_seen = frame and tags |= any matched new tag. The memory tensors
  // are [cap, ...] (float dtype T; observations/last_seen int64; tags bool), contiguous.
  m.def(
      "memory_fuse(Tensor(a!) means, Tensor(b!) scales, Tensor(c!) quats, Tensor(d!) opacities, "
      "Tensor(e!) features, Tensor(f!) confidence, Tensor(g!) observations, Tensor(h!) last_seen, "
      "Tensor(i!) tags, Tensor new_means, Tensor new_scales, Tensor new_quats, Tensor new_opacities, "
      "Tensor new_features, Tensor new_confidence, Tensor new_tags, Tensor targets, Tensor offsets, "
      "Tensor pair_new, Tensor coef, float gamma, int frame) -> ()");
  // An indexed binary min-heap of memory rows ordered by (confidence, last_seen, row): heap [cap]
  // (rows), heap_pos [cap] (position of a row, -1 = not in the heap), heap_size [1], all int64.
  // Rows in `removed` leave the heap (absent ones are skipped), rows in `added` (absent, distinct)
  // enter it, then the `pop` smallest are removed and returned in order. A row's key must not
  // change while it is in the heap: remove it before the change, add it after. CPU only.
  m.def(
      "memory_evict_heap(Tensor(a!) heap, Tensor(b!) heap_pos, Tensor(c!) heap_size, Tensor confidence, "
      "Tensor last_seen, Tensor removed, Tensor added, int pop) -> Tensor");
}
