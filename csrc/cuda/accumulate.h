// CUDA kernels of Gaussian-to-occupancy accumulation (csrc/cuda/accumulate.cu). Plain C++ and
// CUDA runtime types only, so that both nvcc and the torch adapter can include it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gaussocc/accumulate_math.h"

namespace gaussocc {
namespace accum {

// A [B, V] or [B, V, channels] gradient read through its element strides (s2 unused for [B, V]).
template <typename T>
struct StridedGrad {
  const T* ptr;
  int64_t s0, s1, s2;
};

// Outputs must be zero-filled except the occupancy of the probabilistic modes (written in full):
// occupancy [B, V], probs [B, V, C + 1] (probabilistic modes) or [B, V, C]; weight, log_t,
// n_opaque [B, V] (probabilistic modes; unused otherwise).
template <typename T>
void launch_accumulate_forward(const Inputs<T>& in, T* occupancy, T* probs, T* weight, T* log_t,
                               int32_t* n_opaque, cudaStream_t stream);

// probs, weight, log_t, n_opaque: the forward's outputs (the last three unused in additive mode);
// vgrad: [B, V] scratch of per-voxel factors. Gradients must be zero-filled: g_means [B, N, 3],
// g_quats [B, N, 4], g_scales [B, N, 3], g_opacities [B, N], g_features [B, N, C].
template <typename T>
void launch_accumulate_backward(const Inputs<T>& in, const T* probs, const T* weight, const T* log_t,
                                const int32_t* n_opaque, StridedGrad<T> g_occupancy, StridedGrad<T> g_probs,
                                VoxelGrad<T>* vgrad, T* g_means, T* g_quats, T* g_scales, T* g_opacities,
                                T* g_features, cudaStream_t stream);

}  // namespace accum
}  // namespace gaussocc
