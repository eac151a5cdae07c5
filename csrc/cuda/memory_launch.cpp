// Torch adapter of the memory_fuse CUDA kernel.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda/memory.h"
#include "ops/memory.h"

namespace gaussocc {
namespace {

void memory_fuse_cuda(const at::Tensor& means, const at::Tensor& scales, const at::Tensor& quats,
                      const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& confidence,
                      const at::Tensor& observations, const at::Tensor& last_seen, const at::Tensor& tags,
                      const at::Tensor& new_means, const at::Tensor& new_scales, const at::Tensor& new_quats,
                      const at::Tensor& new_opacities, const at::Tensor& new_features,
                      const at::Tensor& new_confidence, const at::Tensor& new_tags, const at::Tensor& targets,
                      const at::Tensor& offsets, const at::Tensor& pair_new, const at::Tensor& coef, double gamma,
                      int64_t frame) {
  check_memory_fuse_inputs(means, scales, quats, opacities, features, confidence, observations, last_seen, tags,
                           new_means, new_scales, new_quats, new_opacities, new_features, new_confidence, new_tags,
                           targets, offsets, pair_new, coef, gamma);
  TORCH_CHECK(means.is_cuda(), "memory_fuse_cuda: means must be a CUDA tensor");
  const c10::cuda::CUDAGuard guard(means.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "memory_fuse_cuda", [&] {
    const FuseArgs<scalar_t> a = memory_fuse_args<scalar_t>(
        means, scales, quats, opacities, features, confidence, observations, last_seen, tags, new_means, new_scales,
        new_quats, new_opacities, new_features, new_confidence, new_tags, targets, offsets, pair_new, coef, gamma,
        frame);
    launch_memory_fuse<scalar_t>(a, targets.numel(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) { m.impl("memory_fuse", &memory_fuse_cuda); }

}  // namespace gaussocc
