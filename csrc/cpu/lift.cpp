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
void forward_kernel(const at::Tensor& features, const at::Tensor& depth,
                    const at::Tensor& ref_points, const at::Tensor& d_proj,
                    const at::Tensor& valid, const at::Tensor& offsets, const at::Tensor& attn,
                    T alpha, T sigma, at::Tensor& out) {
  const int64_t B = features.size(0), H = features.size(1), W = features.size(2);
  const int64_t C = features.size(3), Q = offsets.size(1), K = offsets.size(2);
  const T* feat = features.data_ptr<T>();
  const T* dep = depth.data_ptr<T>();
  const T* ref = ref_points.data_ptr<T>();
  const T* dp = d_proj.data_ptr<T>();
  const bool* ok = valid.data_ptr<bool>();
  const T* off = offsets.data_ptr<T>();
  const T* att = attn.data_ptr<T>();
  T* o = out.data_ptr<T>();
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, K * C));
  at::parallel_for(0, B * Q, grain, [&](int64_t begin, int64_t end) {
    const std::vector<T> zeros(C, T(0));
    for (int64_t bq = begin; bq < end; ++bq) {
      if (!ok[bq]) continue;
      const int64_t b = bq / Q;
      const T* F = feat + b * H * W * C;
      const T* D = dep + b * H * W;
      T* acc = o + bq * C;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t s = bq * K + k;
        const auto taps =
            bilinear_taps<T>(ref[2 * bq] + off[2 * s], ref[2 * bq + 1] + off[2 * s + 1], H, W);
        T kernel;
        const T gate = depth_gate<T>(dp[bq], bilinear_scalar<T>(D, taps), alpha, sigma, &kernel);
        const T coef = att[s] * gate;
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

template <typename T>
BackwardOutputs backward_kernel(const at::Tensor& grad_out, const at::Tensor& features,
                                   const at::Tensor& depth, const at::Tensor& ref_points,
                                   const at::Tensor& d_proj, const at::Tensor& valid,
                                   const at::Tensor& offsets, const at::Tensor& attn,
                                   const at::Tensor& alpha_t, const at::Tensor& sigma_t) {
  const T alpha = alpha_t.item<T>(), sigma = sigma_t.item<T>();
  const int64_t B = features.size(0), H = features.size(1), W = features.size(2);
  const int64_t C = features.size(3), Q = offsets.size(1), K = offsets.size(2);
  const int64_t HW = H * W;
  const int64_t per_chunk = std::max<int64_t>(1, B * HW * (C + 1));
  const int64_t chunks = std::max<int64_t>(
      1, std::min({int64_t(at::get_num_threads()), kScratchElements / per_chunk, Q}));

  auto opts = features.options();
  auto g_feat_parts = at::zeros({B, chunks, HW * C}, opts);
  auto g_depth_parts = at::zeros({B, chunks, HW}, opts);
  auto g_alpha_parts = at::zeros({B * chunks}, opts);
  auto g_sigma_parts = at::zeros({B * chunks}, opts);
  BackwardOutputs g;
  g.d_proj = at::zeros_like(d_proj);
  g.offsets = at::zeros_like(offsets);
  g.attn = at::zeros_like(attn);

  const T* go = grad_out.data_ptr<T>();
  const T* feat = features.data_ptr<T>();
  const T* dep = depth.data_ptr<T>();
  const T* ref = ref_points.data_ptr<T>();
  const T* dp = d_proj.data_ptr<T>();
  const bool* ok = valid.data_ptr<bool>();
  const T* off = offsets.data_ptr<T>();
  const T* att = attn.data_ptr<T>();
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
      const T* F = feat + b * HW * C;
      const T* D = dep + b * HW;
      T* gF = gf_parts + task * HW * C;
      T* gD = gd_parts + task * HW;
      T g_alpha = T(0), g_sigma = T(0);
      const std::vector<T> zeros(C, T(0));
      std::vector<T> sinks(4 * C);
      const int64_t q_end = Q * (chunk + 1) / chunks;
      for (int64_t q = Q * chunk / chunks; q < q_end; ++q) {
        const int64_t bq = b * Q + q;
        if (!ok[bq]) continue;
        const T* gout = go + bq * C;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t s = bq * K + k;
          const auto taps =
              bilinear_taps<T>(ref[2 * bq] + off[2 * s], ref[2 * bq + 1] + off[2 * s + 1], H, W);
          const T d_pred = bilinear_scalar<T>(D, taps);
          T kernel;
          const T gate = depth_gate<T>(dp[bq], d_pred, alpha, sigma, &kernel);
          const T coef = att[s] * gate;
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
          const auto gg = depth_gate_backward<T>(dp[bq], d_pred, alpha, sigma, gate, kernel,
                                                 att[s] * sampled_dot);
          g_dp[bq] += gg.d_proj;
          g_alpha += gg.alpha;
          g_sigma += gg.sigma;
          T gx = T(0), gy = T(0);
          for (int t = 0; t < 4; ++t) {
            const int64_t idx = taps.index[t];
            if (idx < 0) continue;
            const T through_tap = coef * tap_dot[t] + gg.d_pred * D[idx];
            gx += taps.dweight_dx[t] * through_tap;
            gy += taps.dweight_dy[t] * through_tap;
            gD[idx] += gg.d_pred * taps.weight[t];
          }
          g_off[2 * s] = gx;
          g_off[2 * s + 1] = gy;
        }
      }
      ga_parts[task] = g_alpha;
      gs_parts[task] = g_sigma;
    }
  });
  g.features = g_feat_parts.sum(1).view(features.sizes());
  g.depth = g_depth_parts.sum(1).view(depth.sizes());
  g.alpha = g_alpha_parts.sum().reshape(alpha_t.sizes());
  g.sigma = g_sigma_parts.sum().reshape(sigma_t.sizes());
  return g;
}

at::Tensor soft_gated_lift_cpu(const at::Tensor& features, const at::Tensor& depth,
                               const at::Tensor& ref_points, const at::Tensor& d_proj,
                               const at::Tensor& valid, const at::Tensor& offsets,
                               const at::Tensor& attn, const at::Tensor& alpha,
                               const at::Tensor& sigma) {
  check_soft_gated_lift_inputs(features, depth, ref_points, d_proj, valid, offsets, attn, alpha,
                               sigma);
  auto out = at::zeros({features.size(0), offsets.size(1), features.size(3)}, features.options());
  if (out.numel() == 0 || offsets.size(2) == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "soft_gated_lift_cpu", [&] {
    forward_kernel<scalar_t>(features, depth, ref_points, d_proj, valid, offsets, attn,
                             alpha.item<scalar_t>(), sigma.item<scalar_t>(), out);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
soft_gated_lift_backward_cpu(const at::Tensor& grad_out, const at::Tensor& features,
                             const at::Tensor& depth, const at::Tensor& ref_points,
                             const at::Tensor& d_proj, const at::Tensor& valid,
                             const at::Tensor& offsets, const at::Tensor& attn,
                             const at::Tensor& alpha, const at::Tensor& sigma) {
  check_soft_gated_lift_inputs(features, depth, ref_points, d_proj, valid, offsets, attn, alpha,
                               sigma);
  check_soft_gated_lift_grad(grad_out, features, offsets);
  BackwardOutputs g;
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "soft_gated_lift_backward_cpu", [&] {
    g = backward_kernel<scalar_t>(grad_out, features, depth, ref_points, d_proj, valid, offsets,
                                  attn, alpha, sigma);
  });
  return {g.features, g.depth, g.d_proj, g.offsets, g.attn, g.alpha, g.sigma};
}

}  // namespace
}  // namespace gaussocc

TORCH_LIBRARY_IMPL(gaussocc, CPU, m) {
  m.impl("soft_gated_lift", &gaussocc::soft_gated_lift_cpu);
  m.impl("soft_gated_lift_backward", &gaussocc::soft_gated_lift_backward_cpu);
}
