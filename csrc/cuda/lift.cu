// CUDA kernels of soft-gated lifting. Forward: one thread per output element (b, q, c).
// Backward: one warp per sample (b, q, k); lanes stride over channels, the dot products with
// the upstream gradient are reduced across the warp, and map gradients use atomics.
#include "cuda/lift.h"
#include "gaussocc/lift_math.h"

namespace gaussocc {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;

template <typename T>
__global__ void forward_kernel(const T* __restrict__ features, const T* __restrict__ depth,
                               const T* __restrict__ ref_points, const T* __restrict__ d_proj,
                               const bool* __restrict__ valid, const T* __restrict__ offsets,
                               const T* __restrict__ attn, const T* __restrict__ alpha_ptr,
                               const T* __restrict__ sigma_ptr, int64_t H, int64_t W, int64_t C,
                               int64_t Q, int64_t K, int64_t total, T* __restrict__ out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= total) return;
  const int64_t bq = i / C, c = i % C;
  if (!valid[bq]) return;
  const int64_t b = bq / Q;
  const T alpha = *alpha_ptr, sigma = *sigma_ptr;
  const T* F = features + b * H * W * C;
  const T* D = depth + b * H * W;
  T acc = T(0);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t s = bq * K + k;
    const auto taps = bilinear_taps<T>(ref_points[2 * bq] + offsets[2 * s],
                                       ref_points[2 * bq + 1] + offsets[2 * s + 1], H, W);
    T kernel;
    const T d_pred = bilinear_scalar<T>(D, taps);
    const T coef = attn[s] * depth_gate<T>(d_proj[bq], d_pred, alpha, sigma, &kernel);
    T value = T(0);
    for (int t = 0; t < 4; ++t)
      if (taps.index[t] >= 0) value += taps.weight[t] * F[taps.index[t] * C + c];
    acc += coef * value;
  }
  out[i] = acc;
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename T>
__global__ void backward_kernel(const T* __restrict__ grad_out, const T* __restrict__ features,
                                const T* __restrict__ depth, const T* __restrict__ ref_points,
                                const T* __restrict__ d_proj, const bool* __restrict__ valid,
                                const T* __restrict__ offsets, const T* __restrict__ attn,
                                const T* __restrict__ alpha_ptr, const T* __restrict__ sigma_ptr,
                                int64_t H, int64_t W, int64_t C, int64_t Q, int64_t K,
                                int64_t num_samples, T* grad_features, T* grad_depth,
                                T* __restrict__ grad_d_proj_k, T* __restrict__ grad_offsets,
                                T* __restrict__ grad_attn, T* __restrict__ grad_alpha_k,
                                T* __restrict__ grad_sigma_k) {
  // Every early return below is taken by a whole warp (one sample per warp), so the full-mask
  // shuffles see all 32 lanes.
  const int64_t s = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (s >= num_samples) return;
  const int64_t bq = s / K;
  if (!valid[bq]) return;
  const int64_t b = bq / Q;
  const T alpha = *alpha_ptr, sigma = *sigma_ptr;
  const T* F = features + b * H * W * C;
  const T* D = depth + b * H * W;
  const T* gout = grad_out + bq * C;
  const auto taps = bilinear_taps<T>(ref_points[2 * bq] + offsets[2 * s],
                                     ref_points[2 * bq + 1] + offsets[2 * s + 1], H, W);
  const T d_pred = bilinear_scalar<T>(D, taps);
  T kernel;
  const T gate = depth_gate<T>(d_proj[bq], d_pred, alpha, sigma, &kernel);
  const T coef = attn[s] * gate;

  T tap_dot[4] = {T(0), T(0), T(0), T(0)};  // <grad_out, F(tap)>
  for (int64_t c = lane; c < C; c += kWarp) {
    const T g = gout[c];
    for (int t = 0; t < 4; ++t)
      if (taps.index[t] >= 0) tap_dot[t] += g * F[taps.index[t] * C + c];
  }
  T sampled_dot = T(0);
  for (int t = 0; t < 4; ++t) {
    tap_dot[t] = warp_sum(tap_dot[t]);
    sampled_dot += taps.weight[t] * tap_dot[t];
  }
  const auto gg = depth_gate_backward<T>(d_proj[bq], d_pred, alpha, sigma, gate, kernel,
                                         attn[s] * sampled_dot);

  T* gF = grad_features + b * H * W * C;
  if (lane == 0) {
    grad_attn[s] = gate * sampled_dot;
    grad_d_proj_k[s] = gg.d_proj;
    grad_alpha_k[s] = gg.alpha;
    grad_sigma_k[s] = gg.sigma;
    sample_position_grad(taps, tap_dot, coef, gg.d_pred, D, grad_offsets + 2 * s, grad_offsets + 2 * s + 1);
    T* gD = grad_depth + b * H * W;
    for (int t = 0; t < 4; ++t)
      if (taps.index[t] >= 0) atomicAdd(gD + taps.index[t], gg.d_pred * taps.weight[t]);
  }
  for (int t = 0; t < 4; ++t) {
    const int64_t idx = taps.index[t];
    if (idx < 0) continue;
    const T w = coef * taps.weight[t];
    for (int64_t c = lane; c < C; c += kWarp) atomicAdd(gF + idx * C + c, w * gout[c]);
  }
}

}  // namespace

template <typename T>
void soft_gated_lift_forward(const LiftArgs<T>& a, T* out, cudaStream_t stream) {
  const int64_t total = a.B * a.Q * a.C;
  if (total == 0 || a.K == 0) return;
  const int64_t blocks = ceil_div(total, kThreads);
  forward_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      a.features, a.depth, a.ref_points, a.d_proj, a.valid, a.offsets, a.attn, a.alpha, a.sigma, a.H, a.W, a.C, a.Q,
      a.K, total, out);
}

template <typename T>
void soft_gated_lift_backward(const LiftArgs<T>& a, const T* grad_out, const LiftGrads<T>& g, cudaStream_t stream) {
  const int64_t num_samples = a.B * a.Q * a.K;
  if (num_samples == 0) return;
  const int64_t blocks = ceil_div(num_samples * kWarp, kThreads);
  backward_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      grad_out, a.features, a.depth, a.ref_points, a.d_proj, a.valid, a.offsets, a.attn, a.alpha, a.sigma, a.H, a.W,
      a.C, a.Q, a.K, num_samples, g.features, g.depth, g.d_proj_k, g.offsets, g.attn, g.alpha_k, g.sigma_k);
}

#define GAUSSOCC_INSTANTIATE_LIFT(T)                                                                       \
  template void soft_gated_lift_forward<T>(const LiftArgs<T>&, T*, cudaStream_t);                          \
  template void soft_gated_lift_backward<T>(const LiftArgs<T>&, const T*, const LiftGrads<T>&, cudaStream_t);

GAUSSOCC_INSTANTIATE_LIFT(float)
GAUSSOCC_INSTANTIATE_LIFT(double)

#undef GAUSSOCC_INSTANTIATE_LIFT

}  // namespace cuda
}  // namespace gaussocc
