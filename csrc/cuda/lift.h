// Soft-gated lifting CUDA kernels on raw device pointers (layout in ops/lift.cpp).
// alpha and sigma are device pointers to one value each, so no host sync is needed.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gaussocc/lift_math.h"

namespace gaussocc {
namespace cuda {

// out [B, Q, C] must be zero-filled; only valid queries are written.
template <typename T>
void soft_gated_lift_forward(const LiftArgs<T>& args, T* out, cudaStream_t stream);

// The gradients the backward kernel writes, all zero-filled by the caller: features [B, H, W, C]
// and depth [B, H, W] are accumulated with atomics; offsets [B, Q, K, 2], attn [B, Q, K] are
// final; the per-sample partials d_proj_k, alpha_k, sigma_k [B, Q, K] are summed by the caller
// (over K for d_proj, over everything for alpha and sigma).
template <typename T>
struct LiftGrads {
  T* features;
  T* depth;
  T* d_proj_k;
  T* offsets;
  T* attn;
  T* alpha_k;
  T* sigma_k;
};

template <typename T>
void soft_gated_lift_backward(const LiftArgs<T>& args, const T* grad_out, const LiftGrads<T>& grads,
                              cudaStream_t stream);

}  // namespace cuda
}  // namespace gaussocc
