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

// memory_fuse (ops/memory.h: memory_fuse_op): one thread per target.
struct CudaMemoryFuse {
  template <typename T>
  static void fuse(const FuseArgs<T>& a, const FuseTensors& t) {
    TORCH_CHECK(t.means.is_cuda(), "memory_fuse_cuda: means must be a CUDA tensor");
    const c10::cuda::CUDAGuard guard(t.means.device());
    launch_memory_fuse<T>(a, t.targets.numel(), at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) { m.impl("memory_fuse", &memory_fuse_op<CudaMemoryFuse>); }

}  // namespace gaussocc
