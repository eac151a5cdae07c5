// SNOG accept/reject on the GPU (plain C++ declarations of what snog.cu exports).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gaussocc {

// candidates [B, T, 2], accepted [B, P, 2] and count [B], all int32 device pointers; accepted and
// count hold the state before the call and are updated in place. Errors are read by the caller (C10_CUDA_KERNEL_LAUNCH_CHECK).
void snog_accept_cuda(const int32_t* candidates, int64_t B, int64_t T, int32_t* accepted,
                      int32_t* count, int64_t P, int64_t patch_size, cudaStream_t stream);

}  // namespace gaussocc
