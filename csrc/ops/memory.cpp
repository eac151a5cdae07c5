// The GaussianMemory ops: the fusion step (CPU and CUDA) and the eviction heap (CPU); see
// src/gaussocc_ops/memory.py.
#include "ops/memory.h"

#include <torch/library.h>

#include <cmath>
#include <string>
#include <vector>

#include "ops/checks.h"

namespace gaussocc {

void check_memory_fuse_inputs(const FuseTensors& t, double gamma) {
  const char* op = "memory_fuse";
  check_dim(op, t.means, "means", 2, "[cap, 3]");
  check_dim(op, t.features, "features", 2, "[cap, C]");
  check_dim(op, t.new_means, "new_means", 2, "[n, 3]");
  check_float_dtype(op, t.means, "means");
  const at::ScalarType T = t.means.scalar_type();
  const auto dev = t.means.device();
  const int64_t C = t.features.size(1);
  // the float per-Gaussian tensors of the memory (rows = cap) and of the frame (rows = n):
  // [rows, width], or [rows] for width -1; then the int and bool ones of the memory, the frame's tags
  const struct {
    const at::Tensor& memory;
    const at::Tensor& frame;
    const char* name;
    int64_t width;
  } gaussians[] = {{t.means, t.new_means, "means", 3},          {t.scales, t.new_scales, "scales", 3},
                   {t.quats, t.new_quats, "quats", 4},          {t.opacities, t.new_opacities, "opacities", -1},
                   {t.features, t.new_features, "features", C}, {t.confidence, t.new_confidence, "confidence", -1}};
  const int64_t cap = t.means.size(0), n = t.new_means.size(0);
  const auto shape = [](int64_t rows, int64_t width) {
    return width < 0 ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, width};
  };
  for (const auto& g : gaussians) {
    check_tensor(op, g.memory, g.name, shape(cap, g.width), T, dev);
    check_tensor(op, g.frame, ("new_" + std::string(g.name)).c_str(), shape(n, g.width), T, dev);
  }
  check_tensor(op, t.observations, "observations", {cap}, at::kLong, dev);
  check_tensor(op, t.last_seen, "last_seen", {cap}, at::kLong, dev);
  check_tensor(op, t.tags, "tags", {cap}, at::kBool, dev);
  check_tensor(op, t.new_tags, "new_tags", {n}, at::kBool, dev);
  const int64_t num_targets = t.targets.numel();
  check_tensor(op, t.targets, "targets", {num_targets}, at::kLong, dev);
  check_tensor(op, t.offsets, "offsets", {num_targets + 1}, at::kLong, dev);
  check_tensor(op, t.pair_new, "pair_new", {t.pair_new.numel()}, at::kLong, dev);
  TORCH_CHECK(t.coef.numel() == 0 || t.coef.numel() == num_targets, op, ": coef must be empty or [", num_targets,
              "], got ", t.coef.sizes());
  if (t.coef.numel()) check_tensor(op, t.coef, "coef", {num_targets}, T, dev);
  TORCH_CHECK(std::isfinite(gamma) && gamma > 0 && gamma < 1, op, ": gamma must lie in (0, 1), got ", gamma);
}

void check_memory_evict_heap_inputs(const at::Tensor& heap, const at::Tensor& heap_pos, const at::Tensor& heap_size,
                                    const at::Tensor& confidence, const at::Tensor& last_seen,
                                    const at::Tensor& removed, const at::Tensor& added, int64_t pop) {
  const char* op = "memory_evict_heap";
  check_dim(op, heap, "heap", 1, "[cap]");
  check_float_dtype(op, confidence, "confidence");
  const int64_t cap = heap.numel();
  const at::Device cpu(at::kCPU);
  check_tensor(op, heap, "heap", {cap}, at::kLong, cpu);
  check_tensor(op, heap_pos, "heap_pos", {cap}, at::kLong, cpu);
  check_tensor(op, heap_size, "heap_size", {1}, at::kLong, cpu);
  check_tensor(op, confidence, "confidence", {cap}, confidence.scalar_type(), cpu);
  check_tensor(op, last_seen, "last_seen", {cap}, at::kLong, cpu);
  check_tensor(op, removed, "removed", {removed.numel()}, at::kLong, cpu);
  check_tensor(op, added, "added", {added.numel()}, at::kLong, cpu);
  TORCH_CHECK(pop >= 0, op, ": pop must be >= 0, got ", pop);
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
