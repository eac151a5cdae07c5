// CPU kernels of soft-gated lifting (schema and layout in ops/lift.cpp).
//
// The forward runs one (batch, query) per iteration with no shared writes. The backward
// scatters into the feature and depth maps; instead of atomics, the queries of each batch
// element are split into chunks that accumulate into private copies of the map gradients
// (bounded to kScratchElements in all), summed afterwards: race-free and deterministic.
//
// The channel loops touch the four bilinear taps in one pass. A tap outside the map reads a row
// of zeros and writes to a private sink row, so the loops have no branches and vectorise.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "gaussocc/lift_math.h"
#include "ops/lift.h"

namespace gaussocc {
namespace {

constexpr int64_t kScratchElements = int64_t(1) << 25;
constexpr int kLanes = 8;  // independent partial sums of a dot product (vectorisable)

// acc[c] += sum_t w[t] * rows[t][c]
template <typename T>
inline void accumulate_taps(T* __restrict__ acc, const T* const rows[4], const T w[4],
                            int64_t C) {
  const T* __restrict__ r0 = rows[0];
  const T* __restrict__ r1 = rows[1];
  const T* __restrict__ r2 = rows[2];
  const T* __restrict__ r3 = rows[3];
  for (int64_t c = 0; c < C; ++c)
    acc[c] += w[0] * r0[c] + w[1] * r1[c] + w[2] * r2[c] + w[3] * r3[c];
}

// dots[t] = <g, rows[t]> with kLanes partial sums per tap (so the loop vectorises without
// reassociation), then grad_rows[t][c] += w[t] * g[c] (the four rows are distinct).
template <typename T>
inline void dot_and_scatter_taps(const T* __restrict__ g, const T* const rows[4],
                                 T* const grad_rows[4], const T w[4], T dots[4], int64_t C) {
  for (int t = 0; t < 4; ++t) {
    const T* __restrict__ r = rows[t];
    T part[kLanes] = {};
    int64_t c = 0;
    for (; c + kLanes <= C; c += kLanes)
      for (int j = 0; j < kLanes; ++j) part[j] += g[c + j] * r[c + j];
    T sum = T(0);
    for (; c < C; ++c) sum += g[c] * r[c];
    for (int j = 0; j < kLanes; ++j) sum += part[j];
    dots[t] = sum;
  }
  T* __restrict__ g0 = grad_rows[0];
  T* __restrict__ g1 = grad_rows[1];
  T* __restrict__ g2 = grad_rows[2];
  T* __restrict__ g3 = grad_rows[3];
  const T w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  for (int64_t c = 0; c < C; ++c) {
    const T v = g[c];
    g0[c] += w0 * v;
    g1[c] += w1 * v;
    g2[c] += w2 * v;
    g3[c] += w3 * v;
  }
}

template <typename T>
void forward_kernel(const LiftArgs<T>& a, T* out) {
  const int64_t H = a.H, W = a.W, C = a.C, Q = a.Q, K = a.K;
  const T alpha = *a.alpha, sigma = *a.sigma;
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, K * C));
  at::parallel_for(0, a.B * Q, grain, [&](int64_t begin, int64_t end) {
    const std::vector<T> zeros(C, T(0));
    for (int64_t bq = begin; bq < end; ++bq) {
      if (!a.valid[bq]) continue;
      const int64_t b = bq / Q;
      const T* F = a.features + b * H * W * C;
      const T* D = a.depth + b * H * W;
      T* acc = out + bq * C;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t s = bq * K + k;
        const auto taps = bilinear_taps<T>(a.ref_points[2 * bq] + a.offsets[2 * s],
                                           a.ref_points[2 * bq + 1] + a.offsets[2 * s + 1], H, W);
        T kernel;
        const T gate = depth_gate<T>(a.d_proj[bq], bilinear_scalar<T>(D, taps), alpha, sigma, &kernel);
        const T coef = a.attn[s] * gate;
        const T* rows[4];
        T w[4];
        for (int t = 0; t < 4; ++t) {
          const bool inside = taps.index[t] >= 0;
          rows[t] = inside ? F + taps.index[t] * C : zeros.data();
          w[t] = inside ? coef * taps.weight[t] : T(0);
        }
        accumulate_taps<T>(acc, rows, w, C);
      }
    }
  });
}

struct BackwardOutputs {
  at::Tensor features, depth, d_proj, offsets, attn, alpha, sigma;
};

// The gradients of every input of `a` from grad_out [B, Q, C]; `opts` the inputs' options, alpha
// and sigma the shapes of the scalar inputs.
template <typename T>
BackwardOutputs backward_kernel(const LiftArgs<T>& a, const T* grad_out, const at::TensorOptions& opts,
                                at::IntArrayRef alpha_shape, at::IntArrayRef sigma_shape) {
  const T alpha = *a.alpha, sigma = *a.sigma;
  const int64_t B = a.B, H = a.H, W = a.W, C = a.C, Q = a.Q, K = a.K;
  const int64_t HW = H * W;
  const int64_t per_chunk = std::max<int64_t>(1, B * HW * (C + 1));
  const int64_t chunks = std::max<int64_t>(
      1, std::min({int64_t(at::get_num_threads()), kScratchElements / per_chunk, Q}));

  auto g_feat_parts = at::zeros({B, chunks, HW * C}, opts);
  auto g_depth_parts = at::zeros({B, chunks, HW}, opts);
  auto g_alpha_parts = at::zeros({B * chunks}, opts);
  auto g_sigma_parts = at::zeros({B * chunks}, opts);
  BackwardOutputs g;
  g.d_proj = at::zeros({B, Q}, opts);
  g.offsets = at::zeros({B, Q, K, 2}, opts);
  g.attn = at::zeros({B, Q, K}, opts);

  T* gf_parts = g_feat_parts.data_ptr<T>();
  T* gd_parts = g_depth_parts.data_ptr<T>();
  T* ga_parts = g_alpha_parts.data_ptr<T>();
  T* gs_parts = g_sigma_parts.data_ptr<T>();
  T* g_dp = g.d_proj.data_ptr<T>();
  T* g_off = g.offsets.data_ptr<T>();
  T* g_att = g.attn.data_ptr<T>();

  at::parallel_for(0, B * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / chunks, chunk = task % chunks;
      const T* F = a.features + b * HW * C;
      const T* D = a.depth + b * HW;
      T* gF = gf_parts + task * HW * C;
      T* gD = gd_parts + task * HW;
      T g_alpha = T(0), g_sigma = T(0);
      const std::vector<T> zeros(C, T(0));
      std::vector<T> sinks(4 * C);
      const int64_t q_end = Q * (chunk + 1) / chunks;
      for (int64_t q = Q * chunk / chunks; q < q_end; ++q) {
        const int64_t bq = b * Q + q;
        if (!a.valid[bq]) continue;
        const T* gout = grad_out + bq * C;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t s = bq * K + k;
          const auto taps = bilinear_taps<T>(a.ref_points[2 * bq] + a.offsets[2 * s],
                                             a.ref_points[2 * bq + 1] + a.offsets[2 * s + 1], H, W);
          const T d_pred = bilinear_scalar<T>(D, taps);
          T kernel;
          const T gate = depth_gate<T>(a.d_proj[bq], d_pred, alpha, sigma, &kernel);
          const T coef = a.attn[s] * gate;
          const T* rows[4];
          T* grad_rows[4];
          for (int t = 0; t < 4; ++t) {
            const bool inside = taps.index[t] >= 0;
            rows[t] = inside ? F + taps.index[t] * C : zeros.data();
            grad_rows[t] = inside ? gF + taps.index[t] * C : sinks.data() + t * C;
          }
          T w[4];
          for (int t = 0; t < 4; ++t) w[t] = coef * taps.weight[t];
          T tap_dot[4];  // <grad_out, F(tap)>
          dot_and_scatter_taps<T>(gout, rows, grad_rows, w, tap_dot, C);
          T sampled_dot = T(0);  // <grad_out, F(p_k)>
          for (int t = 0; t < 4; ++t) sampled_dot += taps.weight[t] * tap_dot[t];
          g_att[s] = gate * sampled_dot;
          const auto gg = depth_gate_backward<T>(a.d_proj[bq], d_pred, alpha, sigma, gate, kernel,
                                                 a.attn[s] * sampled_dot);
          g_dp[bq] += gg.d_proj;
          g_alpha += gg.alpha;
          g_sigma += gg.sigma;
          sample_position_grad(taps, tap_dot, coef, gg.d_pred, D, g_off + 2 * s, g_off + 2 * s + 1);
          for (int t = 0; t < 4; ++t)
            if (taps.index[t] >= 0) gD[taps.index[t]] += gg.d_pred * taps.weight[t];
        }
      }
      ga_parts[task] = g_alpha;
      gs_parts[task] = g_sigma;
    }
  });
  g.features = g_feat_parts.sum(1).view({B, H, W, C});
  g.depth = g_depth_parts.sum(1).view({B, H, W});
  g.alpha = g_alpha_parts.sum().reshape(alpha_shape);
  g.sigma = g_sigma_parts.sum().reshape(sigma_shape);
  return g;
}

at::Tensor soft_gated_lift_cpu(const at::Tensor& features, const at::Tensor& depth, const at::Tensor& ref_points,
                               const at::Tensor& d_proj, const at::Tensor& valid, const at::Tensor& offsets,
                               const at::Tensor& attn, const at::Tensor& alpha, const at::Tensor& sigma) {
  check_soft_gated_lift_inputs(features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma);
  auto out = at::zeros({features.size(0), offsets.size(1), features.size(3)}, features.options());
  if (out.numel() == 0 || offsets.size(2) == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "soft_gated_lift_cpu", [&] {
    forward_kernel<scalar_t>(
        lift_args<scalar_t>(features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma),
        out.data_ptr<scalar_t>());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
soft_gated_lift_backward_cpu(const at::Tensor& grad_out, const at::Tensor& features, const at::Tensor& depth,
                             const at::Tensor& ref_points, const at::Tensor& d_proj, const at::Tensor& valid,
                             const at::Tensor& offsets, const at::Tensor& attn, const at::Tensor& alpha,
                             const at::Tensor& sigma) {
  check_soft_gated_lift_inputs(features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma);
  check_soft_gated_lift_grad(grad_out, features, offsets);
  BackwardOutputs g;
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "soft_gated_lift_backward_cpu", [&] {
    g = backward_kernel<scalar_t>(
        lift_args<scalar_t>(features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma),
        grad_out.data_ptr<scalar_t>(), features.options(), alpha.sizes(), sigma.sizes());
  });
  return {g.features, g.depth, g.d_proj, g.offsets, g.attn, g.alpha, g.sigma};
}

}  // namespace
}  // namespace gaussocc

TORCH_LIBRARY_IMPL(gaussocc, CPU, m) {
  m.impl("soft_gated_lift", &gaussocc::soft_gated_lift_cpu);
  m.impl("soft_gated_lift_backward", &gaussocc::soft_gated_lift_backward_cpu);
}
