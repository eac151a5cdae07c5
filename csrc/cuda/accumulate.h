// CUDA kernels of Gaussian-to-occupancy accumulation (csrc/cuda/accumulate.cu). Plain C++ and
// CUDA runtime types only, so that both nvcc and the torch adapter can include it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gaussocc/accumulate_math.h"

namespace gaussocc {
namespace accum {

template <typename T>
struct DeviceInputs {
  const T* means;      // [B, N, 3]
  const T* quats;      // [B, N, 4]
  const T* scales;     // [B, N, 3]
  const T* opacities;  // [B, N]
  const T* features;   // [B, N, C]
  const bool* valid;   // [B, N]
  int64_t B, N, C;
  Grid<T> grid;
  T k;
  bool probabilistic;
};

// Outputs must be zero-filled. occupancy, weight, log_t [B, V]; wfeat [B, V, C]; n_opaque [B, V].
template <typename T>
cudaError_t launch_accumulate_forward(const DeviceInputs<T>& in, T* occupancy, T* weight, T* wfeat, T* log_t,
                                      int32_t* n_opaque, cudaStream_t stream);

// Gradients must be zero-filled: g_means [B, N, 3], g_quats [B, N, 4], g_scales [B, N, 3],
// g_opacities [B, N], g_features [B, N, C].
template <typename T>
cudaError_t launch_accumulate_backward(const DeviceInputs<T>& in, const T* log_t, const int32_t* n_opaque,
                                       const T* g_occupancy, const T* g_weight, const T* g_wfeat, T* g_means,
                                       T* g_quats, T* g_scales, T* g_opacities, T* g_features,
                                       cudaStream_t stream);

}  // namespace accum
}  // namespace gaussocc
