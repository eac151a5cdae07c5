// Soft-gated lifting CUDA kernels on raw device pointers (layout in ops/lift.cpp).
// alpha and sigma are device pointers to one value each, so no host sync is needed.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gaussocc {
namespace cuda {

// out [B, Q, C] must be zero-filled; only valid queries are written.
template <typename T>
void soft_gated_lift_forward(const T* features, const T* depth, const T* ref_points,
                             const T* d_proj, const bool* valid, const T* offsets, const T* attn,
                             const T* alpha, const T* sigma, int64_t B, int64_t H, int64_t W,
                             int64_t C, int64_t Q, int64_t K, T* out, cudaStream_t stream);

// All outputs must be zero-filled. grad_features [B, H, W, C] and grad_depth [B, H, W] are
// accumulated with atomics; grad_offsets [B, Q, K, 2], grad_attn [B, Q, K] are final; the
// per-sample partials grad_d_proj_k, grad_alpha_k, grad_sigma_k [B, Q, K] are summed by the
// caller (over K for d_proj, over everything for alpha and sigma).
template <typename T>
void soft_gated_lift_backward(const T* grad_out, const T* features, const T* depth,
                              const T* ref_points, const T* d_proj, const bool* valid,
                              const T* offsets, const T* attn, const T* alpha, const T* sigma,
                              int64_t B, int64_t H, int64_t W, int64_t C, int64_t Q, int64_t K,
                              T* grad_features, T* grad_depth, T* grad_d_proj_k, T* grad_offsets,
                              T* grad_attn, T* grad_alpha_k, T* grad_sigma_k, cudaStream_t stream);

}  // namespace cuda
}  // namespace gaussocc
