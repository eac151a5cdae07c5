// torch -> raw pointer adapter of the SNOG CUDA kernel.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
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
  snog_check_inputs(candidates, positions, count, patch_size);
  TORCH_CHECK(candidates.is_cuda(), "snog_accept: expected CUDA tensors, got ", candidates.device());
  const c10::cuda::CUDAGuard guard(candidates.device());
  const auto cand = candidates.contiguous();
  auto out_pos = positions.contiguous().clone();
  auto out_count = count.contiguous().clone();
  const cudaError_t err = snog_accept_cuda(
      cand.data_ptr<int32_t>(), cand.size(0), cand.size(1), out_pos.data_ptr<int32_t>(),
      out_count.data_ptr<int32_t>(), out_pos.size(1), patch_size,
      at::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "snog_accept: CUDA launch failed: ", cudaGetErrorString(err));
  return {out_pos, out_count};
}

}  // namespace
}  // namespace gaussocc

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) { m.impl("snog_accept", &gaussocc::snog_accept_cuda_op); }
