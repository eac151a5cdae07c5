// torch -> raw pointer adapter of the SNOG CUDA kernel.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "cuda/snog.h"
#include "ops/snog.h"

namespace gaussocc {
namespace {

std::tuple<at::Tensor, at::Tensor> snog_accept_cuda_op(const at::Tensor& candidates,
                                                        const at::Tensor& positions,
                                                        const at::Tensor& count, int64_t patch_size) {
  TORCH_CHECK(candidates.is_cuda(), "snog_accept: expected CUDA tensors, got ", candidates.device());
  const c10::cuda::CUDAGuard guard(candidates.device());
  at::Tensor out_pos, out_count;
  std::tie(out_pos, out_count) = snog_accept_outputs(candidates, positions, count, patch_size);
  snog_accept_cuda(candidates.data_ptr<int32_t>(), candidates.size(0), candidates.size(1),
                   out_pos.data_ptr<int32_t>(), out_count.data_ptr<int32_t>(), out_pos.size(1), patch_size,
                   at::cuda::getCurrentCUDAStream().stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out_pos, out_count};
}

}  // namespace
}  // namespace gaussocc

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) { m.impl("snog_accept", &gaussocc::snog_accept_cuda_op); }
