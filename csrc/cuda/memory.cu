// CUDA kernel of memory_fuse: one thread per fused memory Gaussian, the math shared with the CPU
// kernel (gaussocc/memory_math.h).
#include "cuda/memory.h"

namespace gaussocc {
namespace {

constexpr int kThreads = 128;

template <typename T>
__global__ void memory_fuse_kernel(const FuseArgs<T> args, int64_t num_targets) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= num_targets) return;
  memory_fuse_one(args, t);
}

}  // namespace

template <typename T>
void launch_memory_fuse(const FuseArgs<T>& args, int64_t num_targets, cudaStream_t stream) {
  if (num_targets == 0) return;
  const unsigned int blocks = static_cast<unsigned int>((num_targets + kThreads - 1) / kThreads);
  memory_fuse_kernel<T><<<blocks, kThreads, 0, stream>>>(args, num_targets);
}

template void launch_memory_fuse<float>(const FuseArgs<float>&, int64_t, cudaStream_t);
template void launch_memory_fuse<double>(const FuseArgs<double>&, int64_t, cudaStream_t);

}  // namespace gaussocc
