// CPU kernel of the SNOG accept/reject op: one image per task, candidates in order.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>

#include "gaussocc/snog_math.h"
#include "ops/snog.h"

namespace gaussocc {
namespace {

std::tuple<at::Tensor, at::Tensor> snog_accept_cpu(const at::Tensor& candidates,
                                                    const at::Tensor& positions,
                                                    const at::Tensor& count, int64_t patch_size) {
  at::Tensor out_pos, out_count;
  std::tie(out_pos, out_count) = snog_accept_outputs(candidates, positions, count, patch_size);
  const int64_t B = candidates.size(0), T = candidates.size(1);
  const int32_t P = static_cast<int32_t>(out_pos.size(1));
  const int64_t min_dist2 = 2 * patch_size * patch_size;
  const int32_t* cand_ptr = candidates.data_ptr<int32_t>();
  int32_t* pos_ptr = out_pos.data_ptr<int32_t>();
  int32_t* count_ptr = out_count.data_ptr<int32_t>();
  for (int64_t b = 0; b < B; ++b)
    TORCH_CHECK(count_ptr[b] >= 0 && count_ptr[b] <= P, "snog_accept: count[", b, "] = ",
                count_ptr[b], " is outside [0, ", P, "]");
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      count_ptr[b] = snog_accept_image(cand_ptr + b * T * 2, T, pos_ptr + b * P * 2, count_ptr[b], P,
                                       min_dist2);
  });
  return {out_pos, out_count};
}

}  // namespace
}  // namespace gaussocc

TORCH_LIBRARY_IMPL(gaussocc, CPU, m) { m.impl("snog_accept", &gaussocc::snog_accept_cpu); }
