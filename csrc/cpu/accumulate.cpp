// CPU kernels of Gaussian-to-occupancy accumulation.
// Forward: one task per (batch, x-plane of the grid) over the Gaussians whose box reaches that
// plane (a per-plane id list of sum_i box_x(i) <= N * X int32 entries), so every voxel has one
// writer and the sums are deterministic. Backward: one task per Gaussian over its box, reading
// the per-voxel output gradients; no atomics, no (voxel, Gaussian) buffer.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "gaussocc/accumulate_math.h"
#include "ops/accumulate_checks.h"

namespace gaussocc {
namespace accum {
namespace {

template <typename T>
struct Inputs {
  const T* means;
  const T* quats;
  const T* scales;
  const T* opacities;
  const T* features;
  const bool* valid;
  int64_t B, N, C;
  Grid<T> grid;
  T k;
  bool probabilistic;
};

template <typename T>
Inputs<T> load_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                      const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& valid,
                      const Sizes& sz, const Grid<T>& grid, double radius_sigma, bool probabilistic) {
  return {means.data_ptr<T>(), quats.data_ptr<T>(), scales.data_ptr<T>(), opacities.data_ptr<T>(),
          features.data_ptr<T>(), valid.data_ptr<bool>(), sz.B, sz.N, sz.C, grid, T(radius_sigma),
          probabilistic};
}

template <typename T>
void forward_cpu(const Inputs<T>& in, T* occupancy, T* weight, T* wfeat, T* log_t, int32_t* n_opaque) {
  const int64_t B = in.B, N = in.N, C = in.C;
  const int64_t X = in.grid.dims[0], Y = in.grid.dims[1], Z = in.grid.dims[2];
  const T k2 = in.k * in.k;

  // Gaussians with opacity 0 add exactly nothing; they are skipped here (not in the backward).
  std::vector<Prepared<T>> prep(B * N);
  std::vector<uint8_t> active(B * N);
  at::parallel_for(0, B * N, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      active[i] = in.valid[i] && in.opacities[i] > T(0) &&
                  prepare(in.means + i * 3, in.quats + i * 4, in.scales + i * 3, in.k, in.grid, &prep[i]);
    }
  });

  std::vector<int64_t> offsets(B * X + 1, 0);
  for (int64_t i = 0; i < B * N; ++i) {
    if (!active[i]) continue;
    const int64_t b = i / N;
    for (int64_t x = prep[i].lo[0]; x <= prep[i].hi[0]; ++x) ++offsets[b * X + x + 1];
  }
  for (int64_t p = 0; p < B * X; ++p) offsets[p + 1] += offsets[p];
  std::vector<int32_t> ids(offsets[B * X]);
  {
    std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
    for (int64_t i = 0; i < B * N; ++i) {
      if (!active[i]) continue;
      const int64_t b = i / N;
      for (int64_t x = prep[i].lo[0]; x <= prep[i].hi[0]; ++x) ids[fill[b * X + x]++] = int32_t(i % N);
    }
  }

  at::parallel_for(0, B * X, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t b = plane / X, x = plane % X;
      const T cx = voxel_center(in.grid, 0, x);
      for (int64_t e = offsets[plane]; e < offsets[plane + 1]; ++e) {
        const int64_t i = b * N + ids[e];
        const Prepared<T>& pr = prep[i];
        const T* mean = in.means + i * 3;
        const T* feat = in.features + i * C;
        const T a = in.opacities[i];
        T d[3];
        d[0] = cx - mean[0];
        for (int64_t y = pr.lo[1]; y <= pr.hi[1]; ++y) {
          d[1] = voxel_center(in.grid, 1, y) - mean[1];
          for (int64_t z = pr.lo[2]; z <= pr.hi[2]; ++z) {
            d[2] = voxel_center(in.grid, 2, z) - mean[2];
            const T d2 = mahalanobis_sq(pr.conic, d);
            if (d2 > k2) continue;
            const T alpha = a * exp(T(-0.5) * d2);
            const int64_t v = (plane * Y + y) * Z + z;
            weight[v] += alpha;
            T* out = wfeat + v * C;
            for (int64_t c = 0; c < C; ++c) out[c] += alpha * feat[c];
            if (in.probabilistic) {
              if (alpha >= T(1)) {
                ++n_opaque[v];
              } else {
                log_t[v] += log1p(-alpha);
              }
            }
          }
        }
      }
      if (in.probabilistic) {
        for (int64_t v = plane * Y * Z; v < (plane + 1) * Y * Z; ++v)
          occupancy[v] = occupancy_from_log(log_t[v], n_opaque[v]);
      }
    }
  });
}

template <typename T>
void backward_cpu(const Inputs<T>& in, const T* log_t, const int32_t* n_opaque, const T* g_occ, const T* g_weight,
                  const T* g_wfeat, T* g_means, T* g_quats, T* g_scales, T* g_opacities, T* g_features) {
  const int64_t N = in.N, C = in.C;
  const int64_t Y = in.grid.dims[1], Z = in.grid.dims[2];
  const int64_t V = in.grid.dims[0] * Y * Z;
  const T k2 = in.k * in.k;
  at::parallel_for(0, in.B * N, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (!in.valid[i]) continue;
      Prepared<T> pr;
      if (!prepare(in.means + i * 3, in.quats + i * 4, in.scales + i * 3, in.k, in.grid, &pr)) continue;
      const int64_t base = (i / N) * V;
      const T* mean = in.means + i * 3;
      const T* feat = in.features + i * C;
      T* g_feat = g_features + i * C;
      const T a = in.opacities[i];
      GradSums<T> sums;
      T d[3];
      for (int64_t x = pr.lo[0]; x <= pr.hi[0]; ++x) {
        d[0] = voxel_center(in.grid, 0, x) - mean[0];
        for (int64_t y = pr.lo[1]; y <= pr.hi[1]; ++y) {
          d[1] = voxel_center(in.grid, 1, y) - mean[1];
          for (int64_t z = pr.lo[2]; z <= pr.hi[2]; ++z) {
            d[2] = voxel_center(in.grid, 2, z) - mean[2];
            const T d2 = mahalanobis_sq(pr.conic, d);
            if (d2 > k2) continue;
            const T g = exp(T(-0.5) * d2);
            const T alpha = a * g;
            const int64_t v = base + (x * Y + y) * Z + z;
            const T* gw = g_wfeat + v * C;
            T g_alpha = g_weight[v];
            for (int64_t c = 0; c < C; ++c) {
              g_alpha += gw[c] * feat[c];
              g_feat[c] += gw[c] * alpha;
            }
            if (in.probabilistic) g_alpha += g_occ[v] * transmittance_of_others(alpha, log_t[v], n_opaque[v]);
            add_voxel_grad(g_alpha, g, a, d, &sums);
          }
        }
      }
      g_opacities[i] = sums.opacity;
      finish_grads(in.quats + i * 4, in.scales + i * 3, pr.conic, sums, g_means + i * 3, g_quats + i * 4,
                   g_scales + i * 3);
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> accumulate_gaussians_cpu(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& valid, at::ArrayRef<double> origin,
    at::ArrayRef<double> voxel_size, at::IntArrayRef shape, double radius_sigma, bool probabilistic) {
  const Sizes sz = check_inputs(means, quats, scales, opacities, features, valid, origin, voxel_size, shape,
                                radius_sigma);
  // The probabilistic forward writes every occupancy value.
  auto occupancy = probabilistic ? at::empty({sz.B, sz.V}, means.options())
                                 : at::zeros({sz.B, sz.V}, means.options());
  auto weight = at::zeros({sz.B, sz.V}, means.options());
  auto wfeat = at::zeros({sz.B, sz.V, sz.C}, means.options());
  auto log_t = at::zeros({sz.B, sz.V}, means.options());
  auto n_opaque = at::zeros({sz.B, sz.V}, means.options().dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "accumulate_gaussians_cpu", [&] {
    const auto in = load_inputs<scalar_t>(means, quats, scales, opacities, features, valid, sz,
                                          make_grid<scalar_t>(origin, voxel_size, shape), radius_sigma,
                                          probabilistic);
    forward_cpu<scalar_t>(in, occupancy.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(),
                          wfeat.data_ptr<scalar_t>(), log_t.data_ptr<scalar_t>(), n_opaque.data_ptr<int32_t>());
  });
  return {occupancy, weight, wfeat, log_t, n_opaque};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> accumulate_gaussians_backward_cpu(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& valid, const at::Tensor& log_t, const at::Tensor& n_opaque,
    const at::Tensor& g_occ, const at::Tensor& g_weight, const at::Tensor& g_wfeat, at::ArrayRef<double> origin,
    at::ArrayRef<double> voxel_size, at::IntArrayRef shape, double radius_sigma, bool probabilistic) {
  const Sizes sz = check_inputs(means, quats, scales, opacities, features, valid, origin, voxel_size, shape,
                                radius_sigma);
  const auto dt = means.scalar_type();
  const auto dev = means.device();
  check_tensor(log_t, "log_transmittance", {sz.B, sz.V}, dt, dev);
  check_tensor(n_opaque, "num_opaque", {sz.B, sz.V}, at::kInt, dev);
  check_tensor(g_occ, "grad_occupancy", {sz.B, sz.V}, dt, dev);
  check_tensor(g_weight, "grad_weight", {sz.B, sz.V}, dt, dev);
  check_tensor(g_wfeat, "grad_weighted_features", {sz.B, sz.V, sz.C}, dt, dev);
  auto g_means = at::zeros_like(means);
  auto g_quats = at::zeros_like(quats);
  auto g_scales = at::zeros_like(scales);
  auto g_opacities = at::zeros_like(opacities);
  auto g_features = at::zeros_like(features);
  AT_DISPATCH_FLOATING_TYPES(dt, "accumulate_gaussians_backward_cpu", [&] {
    const auto in = load_inputs<scalar_t>(means, quats, scales, opacities, features, valid, sz,
                                          make_grid<scalar_t>(origin, voxel_size, shape), radius_sigma,
                                          probabilistic);
    backward_cpu<scalar_t>(in, log_t.data_ptr<scalar_t>(), n_opaque.data_ptr<int32_t>(),
                           g_occ.data_ptr<scalar_t>(), g_weight.data_ptr<scalar_t>(), g_wfeat.data_ptr<scalar_t>(),
                           g_means.data_ptr<scalar_t>(), g_quats.data_ptr<scalar_t>(),
                           g_scales.data_ptr<scalar_t>(), g_opacities.data_ptr<scalar_t>(),
                           g_features.data_ptr<scalar_t>());
  });
  return {g_means, g_quats, g_scales, g_opacities, g_features};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CPU, m) {
  m.impl("accumulate_gaussians", &accumulate_gaussians_cpu);
  m.impl("accumulate_gaussians_backward", &accumulate_gaussians_backward_cpu);
}

}  // namespace accum
}  // namespace gaussocc
