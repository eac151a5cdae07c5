// CPU kernels of Gaussian-to-occupancy accumulation.
// Forward: one task per (batch, x-plane of the grid) over the Gaussians whose box reaches that
// plane (a per-plane id list of sum_i box_x(i) <= N * X int32 entries), so every voxel has one
// writer and the sums are deterministic; the class sums accumulate in the probs output and the
// task finishes its plane's probabilities in place (accumulate_math.h: finish_voxel).
// Backward: one pass over the voxels for the per-voxel factors (voxel_grad, [B, V, 3]), then one
// task per Gaussian over its box, reading them; no atomics, no (voxel, Gaussian) buffer.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "gaussocc/accumulate_math.h"
#include "ops/accumulate.h"

namespace gaussocc {
namespace accum {
namespace {

// Calls fn(vox, d, d2) for every voxel of the grid planes x0..x1 in the box of the prepared
// Gaussian `pr` whose centre is in its support: vox the voxel's index (row-major over X, Y, Z),
// d its centre minus the mean, d2 the squared Mahalanobis distance.
template <typename T, typename Fn>
inline void for_each_support_voxel(const Inputs<T>& in, const Prepared<T>& pr, const T* mean, int64_t x0,
                                   int64_t x1, Fn&& fn) {
  const int64_t Y = in.grid.dims[1], Z = in.grid.dims[2];
  const T k2 = in.p.k * in.p.k;
  T d[3];
  for (int64_t x = x0; x <= x1; ++x) {
    d[0] = voxel_center(in.grid, 0, x) - mean[0];
    for (int64_t y = pr.lo[1]; y <= pr.hi[1]; ++y) {
      d[1] = voxel_center(in.grid, 1, y) - mean[1];
      for (int64_t z = pr.lo[2]; z <= pr.hi[2]; ++z) {
        d[2] = voxel_center(in.grid, 2, z) - mean[2];
        const T d2 = mahalanobis_sq(pr.conic, d);
        if (in_support(in.p.mode, d2, k2)) fn((x * Y + y) * Z + z, d, d2);
      }
    }
  }
}

template <typename T>
void forward_cpu(const Inputs<T>& in, T* occupancy, T* probs, T* weight, T* log_t, int32_t* n_opaque) {
  const int64_t B = in.B, N = in.N, C = in.C;
  const int64_t X = in.grid.dims[0], Y = in.grid.dims[1], Z = in.grid.dims[2];
  const int mode = in.p.mode;
  const bool prob = is_probabilistic(mode);
  const int64_t Cout = prob ? C + 1 : C;
  const int64_t V = X * Y * Z;

  // Gaussians with opacity 0 add exactly nothing (except to GaussianFormer-2's occupancy, which
  // leaves the opacity out); they are skipped here (not in the backward).
  std::vector<Prepared<T>> prep(B * N);
  std::vector<uint8_t> active(B * N);
  at::parallel_for(0, B * N, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      active[i] = in.valid[i] && (mode == kGaussianFormer2 || in.opacities[i] > T(0)) &&
                  prepare(in.means + i * 3, in.quats + i * 4, in.scales + i * 3, in.p.k, in.grid, mode, &prep[i]);
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
      for (int64_t e = offsets[plane]; e < offsets[plane + 1]; ++e) {
        const int64_t i = b * N + ids[e];
        const Prepared<T>& pr = prep[i];
        const T* mean = in.means + i * 3;
        const T* feat = in.features + i * C;
        const T a = in.opacities[i];
        for_each_support_voxel(in, pr, mean, x, x, [&](int64_t vox, const T*, T d2) {
          const Weights<T> w = voxel_weights(mode, T(exp(T(-0.5) * d2)), a, pr.norm);
          const int64_t v = b * V + vox;
          T* out = probs + v * Cout;
          for (int64_t c = 0; c < C; ++c) out[class_slot(c, in.p.empty, mode)] += w.sem * feat[c];
          if (!prob) {
            occupancy[v] += w.sem;
            return;
          }
          weight[v] += w.sem;
          if (w.occ >= T(1)) {
            ++n_opaque[v];
          } else {
            log_t[v] += log1p(-w.occ);
          }
        });
      }
      if (prob) {
        for (int64_t v = plane * Y * Z; v < (plane + 1) * Y * Z; ++v)
          finish_voxel(in.p, C, weight[v], log_t[v], n_opaque[v], probs + v * Cout, occupancy + v);
      }
    }
  });
}

template <typename T>
void backward_cpu(const Inputs<T>& in, const VoxelGrad<T>* vgrad, const T* g_probs, const int64_t* gp_strides,
                  const T* log_t, const int32_t* n_opaque, T* g_means, T* g_quats, T* g_scales, T* g_opacities,
                  T* g_features) {
  const int64_t N = in.N, C = in.C;
  const int64_t V = in.grid.dims[0] * in.grid.dims[1] * in.grid.dims[2];
  const int mode = in.p.mode;
  const bool prob = is_probabilistic(mode);
  std::vector<int64_t> slot_offset(C);
  for (int64_t c = 0; c < C; ++c) slot_offset[c] = class_slot(c, in.p.empty, mode) * gp_strides[2];
  at::parallel_for(0, in.B * N, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (!in.valid[i]) continue;
      Prepared<T> pr;
      if (!prepare(in.means + i * 3, in.quats + i * 4, in.scales + i * 3, in.p.k, in.grid, mode, &pr)) continue;
      const int64_t b = i / N;
      const T* mean = in.means + i * 3;
      const T* feat = in.features + i * C;
      T* g_feat = g_features + i * C;
      const T a = in.opacities[i];
      GradSums<T> sums;
      for_each_support_voxel(in, pr, mean, pr.lo[0], pr.hi[0], [&](int64_t vox, const T* d, T d2) {
        const T g = exp(T(-0.5) * d2);
        const Weights<T> w = voxel_weights(mode, g, a, pr.norm);
        const int64_t v = b * V + vox;
        const VoxelGrad<T> vg = vgrad[v];
        const T* gp = g_probs + b * gp_strides[0] + vox * gp_strides[1];
        T dot = 0;
        for (int64_t c = 0; c < C; ++c) {
          const T gc = gp[slot_offset[c]];
          dot += gc * feat[c];
          g_feat[c] += vg.r * gc * w.sem;
        }
        const T g_sem = vg.g_w + vg.r * dot;
        const T g_occ = prob ? vg.g_o * transmittance_of_others(w.occ, log_t[v], n_opaque[v]) : T(0);
        T g_g, g_a;
        weight_vjp(mode, g_sem, g_occ, g, a, pr.norm, &g_g, &g_a);
        add_voxel_grad(g_g, g_a, g, d, &sums);
      });
      g_opacities[i] = sums.opacity;
      finish_grads(mode, a, in.quats + i * 4, in.scales + i * 3, pr.conic, sums, g_means + i * 3, g_quats + i * 4,
                   g_scales + i * 3);
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> accumulate_gaussians_cpu(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& valid, at::ArrayRef<double> origin,
    at::ArrayRef<double> voxel_size, at::IntArrayRef shape, double radius, int64_t mode, int64_t empty_index,
    double fill) {
  const Sizes sz = check_inputs(means, quats, scales, opacities, features, valid, origin, voxel_size, shape,
                                radius, mode, empty_index);
  const Outputs out = allocate_outputs(means, sz, mode);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "accumulate_gaussians_cpu", [&] {
    const auto in = load_inputs<scalar_t>(means, quats, scales, opacities, features, valid, sz, origin, voxel_size,
                                          shape, radius, mode, empty_index, fill);
    forward_cpu<scalar_t>(in, out.occupancy.data_ptr<scalar_t>(), out.probs.data_ptr<scalar_t>(),
                          out.weight.data_ptr<scalar_t>(), out.log_t.data_ptr<scalar_t>(),
                          out.n_opaque.data_ptr<int32_t>());
  });
  return {out.occupancy, out.probs, out.weight, out.log_t, out.n_opaque};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> accumulate_gaussians_backward_cpu(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& valid, const at::Tensor& probs, const at::Tensor& weight,
    const at::Tensor& log_t, const at::Tensor& n_opaque, const at::Tensor& g_occ, const at::Tensor& g_probs,
    at::ArrayRef<double> origin, at::ArrayRef<double> voxel_size, at::IntArrayRef shape, double radius,
    int64_t mode, int64_t empty_index, double fill) {
  const Sizes sz = check_inputs(means, quats, scales, opacities, features, valid, origin, voxel_size, shape,
                                radius, mode, empty_index);
  check_backward_inputs(means, sz, mode, probs, weight, log_t, n_opaque, g_occ, g_probs);
  const Grads g = allocate_grads(means, quats, scales, opacities, features, sz);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "accumulate_gaussians_backward_cpu", [&] {
    using T = scalar_t;
    const auto in = load_inputs<T>(means, quats, scales, opacities, features, valid, sz, origin, voxel_size, shape,
                                   radius, mode, empty_index, fill);
    const bool prob = is_probabilistic(int(mode));
    const int64_t Cout = probs.size(2);
    const T* P = probs.data_ptr<T>();
    const T* W = prob ? weight.data_ptr<T>() : nullptr;
    const T* L = prob ? log_t.data_ptr<T>() : nullptr;
    const int32_t* NO = prob ? n_opaque.data_ptr<int32_t>() : nullptr;
    const T* GO = g_occ.data_ptr<T>();
    const T* GP = g_probs.data_ptr<T>();
    const int64_t go_s0 = g_occ.stride(0), go_s1 = g_occ.stride(1);
    const int64_t gp_strides[3] = {g_probs.stride(0), g_probs.stride(1), g_probs.stride(2)};
    auto* VG = reinterpret_cast<VoxelGrad<T>*>(g.vgrad.data_ptr<T>());
    const int64_t V = sz.V, C = sz.C;
    at::parallel_for(0, sz.B * V, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t v = begin; v < end; ++v) {
        const int64_t b = v / V, vox = v % V;
        VG[v] = voxel_grad(in.p, C, prob ? W[v] : T(0), prob ? L[v] : T(0), prob ? NO[v] : 0,
                           GO[b * go_s0 + vox * go_s1], GP + b * gp_strides[0] + vox * gp_strides[1],
                           gp_strides[2], P + v * Cout);
      }
    });
    backward_cpu<T>(in, VG, GP, gp_strides, L, NO, g.means.data_ptr<T>(), g.quats.data_ptr<T>(),
                    g.scales.data_ptr<T>(), g.opacities.data_ptr<T>(), g.features.data_ptr<T>());
  });
  return {g.means, g.quats, g.scales, g.opacities, g.features};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CPU, m) {
  m.impl("accumulate_gaussians", &accumulate_gaussians_cpu);
  m.impl("accumulate_gaussians_backward", &accumulate_gaussians_backward_cpu);
}

}  // namespace accum
}  // namespace gaussocc
