// Gaussian-to-occupancy math shared by the CPU and CUDA kernels: per-Gaussian setup (inverse
// covariance and voxel bounding box of the radius_sigma ellipsoid), the per-voxel weight and its
// vector-Jacobian product, and the stable "transmittance of the others" used by the backward pass.
// The pure-PyTorch oracle of the same math is src/gaussocc_ops/reference/accumulate.py.
#pragma once

#include <cmath>
#include <cstdint>

#include "gaussocc/common.h"
#include "gaussocc/rotation.h"

namespace gaussocc {
namespace accum {

// Relative padding of the bounding box so that rounding never drops a voxel whose centre passes
// the ellipsoid test d^2 <= k^2 (the test, not the box, decides).
constexpr double kBoxPad = 1e-5;

template <typename T>
struct Grid {
  T origin[3];
  T size[3];
  int64_t dims[3];
};

// A Gaussian ready for evaluation: conic = Sigma^{-1} as (xx, xy, xz, yy, yz, zz) and the
// inclusive voxel index range lo..hi of its box, clipped to the grid.
template <typename T>
struct Prepared {
  T conic[6];
  int64_t lo[3];
  int64_t hi[3];
};

// Inverse covariance and clipped voxel box of one Gaussian. Returns false when the box misses
// the grid. Sigma = R diag(s^2) R^T, Sigma^{-1} = M M^T with M = R diag(1/s); the ellipsoid
// d^2 <= k^2 reaches k sqrt(Sigma_jj) along world axis j.
template <typename T>
GO_HD bool prepare(const T* mean, const T* quat, const T* scale, T k, const Grid<T>& grid, Prepared<T>* out) {
  T R[9];
  quat_to_rotmat(quat, R);
  const T inv_s2[3] = {1 / (scale[0] * scale[0]), 1 / (scale[1] * scale[1]), 1 / (scale[2] * scale[2])};
  const int pairs[6][2] = {{0, 0}, {0, 1}, {0, 2}, {1, 1}, {1, 2}, {2, 2}};
  for (int p = 0; p < 6; ++p) {
    const int r = pairs[p][0], c = pairs[p][1];
    out->conic[p] = R[r * 3] * R[c * 3] * inv_s2[0] + R[r * 3 + 1] * R[c * 3 + 1] * inv_s2[1] +
                    R[r * 3 + 2] * R[c * 3 + 2] * inv_s2[2];
  }
  bool hit = true;
  for (int j = 0; j < 3; ++j) {
    const T var = R[j * 3] * R[j * 3] * scale[0] * scale[0] + R[j * 3 + 1] * R[j * 3 + 1] * scale[1] * scale[1] +
                  R[j * 3 + 2] * R[j * 3 + 2] * scale[2] * scale[2];
    const double half = double(k) * sqrt(double(var)) * (1.0 + kBoxPad);
    const double lo = ceil((double(mean[j]) - half - double(grid.origin[j])) / double(grid.size[j]) - 0.5);
    const double hi = floor((double(mean[j]) + half - double(grid.origin[j])) / double(grid.size[j]) - 0.5);
    const double top = double(grid.dims[j] - 1);
    const double lo_c = lo < 0.0 ? 0.0 : lo;
    const double hi_c = hi > top ? top : hi;
    if (!(lo_c <= hi_c)) {
      hit = false;
      out->lo[j] = 0;
      out->hi[j] = -1;
    } else {
      out->lo[j] = int64_t(lo_c);
      out->hi[j] = int64_t(hi_c);
    }
  }
  return hit;
}

template <typename T>
GO_HD T voxel_center(const Grid<T>& grid, int axis, int64_t idx) {
  return grid.origin[axis] + (T(idx) + T(0.5)) * grid.size[axis];
}

// Squared Mahalanobis distance d^2 = delta^T Sigma^{-1} delta.
template <typename T>
GO_HD T mahalanobis_sq(const T* conic, const T* d) {
  return conic[0] * d[0] * d[0] + conic[3] * d[1] * d[1] + conic[5] * d[2] * d[2] +
         2 * (conic[1] * d[0] * d[1] + conic[2] * d[0] * d[2] + conic[4] * d[1] * d[2]);
}

// Occupancy 1 - prod_i (1 - alpha_i) from the running sums of the forward pass: log_t is
// sum log1p(-alpha_i) over the factors with alpha_i < 1, n_opaque counts those with alpha_i >= 1.
template <typename T>
GO_HD T occupancy_from_log(T log_t, int32_t n_opaque) {
  return n_opaque > 0 ? T(1) : -expm1(log_t);
}

// d occupancy / d alpha_i = prod_{j != i} (1 - alpha_j), without dividing by 1 - alpha_i: a
// factor with alpha_i < 1 is removed in log space; an opaque factor (alpha_i >= 1) is the only
// zero or one of several, which the count tells apart.
template <typename T>
GO_HD T transmittance_of_others(T alpha, T log_t, int32_t n_opaque) {
  if (alpha >= T(1)) return n_opaque == 1 ? exp(log_t) : T(0);
  return n_opaque == 0 ? exp(log_t - log1p(-alpha)) : T(0);
}

// Per-Gaussian gradient accumulators of the weight alpha = a exp(-d^2 / 2) over the voxels:
// q = dL/d(d^2) at each voxel; the conic and mean gradients follow from sum q delta delta^T and
// sum q delta (delta = voxel centre - mean).
template <typename T>
struct GradSums {
  T opacity = 0;
  T q_delta[3] = {0, 0, 0};
  T q_delta2[6] = {0, 0, 0, 0, 0, 0};
};

// Adds one voxel: g_alpha = dL/dalpha, g = exp(-d^2 / 2), a = opacity.
template <typename T>
GO_HD void add_voxel_grad(T g_alpha, T g, T a, const T* delta, GradSums<T>* s) {
  s->opacity += g_alpha * g;
  const T q = T(-0.5) * g_alpha * a * g;
  s->q_delta[0] += q * delta[0];
  s->q_delta[1] += q * delta[1];
  s->q_delta[2] += q * delta[2];
  s->q_delta2[0] += q * delta[0] * delta[0];
  s->q_delta2[1] += q * delta[0] * delta[1];
  s->q_delta2[2] += q * delta[0] * delta[2];
  s->q_delta2[3] += q * delta[1] * delta[1];
  s->q_delta2[4] += q * delta[1] * delta[2];
  s->q_delta2[5] += q * delta[2] * delta[2];
}

// Turns the summed accumulators into gradients w.r.t. mean, quaternion and scales.
// d^2 = delta^T A delta with A = M M^T, M = R diag(1/s): dL/dA = G = sum q delta delta^T,
// dL/dmean = -2 A sum q delta, dL/dM = 2 G M.
template <typename T>
GO_HD void finish_grads(const T* quat, const T* scale, const T* conic, const GradSums<T>& s, T* g_mean, T* g_quat,
                        T* g_scale) {
  const T A[9] = {conic[0], conic[1], conic[2], conic[1], conic[3], conic[4], conic[2], conic[4], conic[5]};
  for (int r = 0; r < 3; ++r)
    g_mean[r] = -2 * (A[r * 3] * s.q_delta[0] + A[r * 3 + 1] * s.q_delta[1] + A[r * 3 + 2] * s.q_delta[2]);
  const T G[9] = {s.q_delta2[0], s.q_delta2[1], s.q_delta2[2], s.q_delta2[1], s.q_delta2[3],
                  s.q_delta2[4], s.q_delta2[2], s.q_delta2[4], s.q_delta2[5]};
  T R[9];
  quat_to_rotmat(quat, R);
  T gR[9];
  for (int c = 0; c < 3; ++c) {
    const T inv_s = 1 / scale[c];
    T g_inv_s = 0;
    for (int r = 0; r < 3; ++r) {
      const T gM = 2 * (G[r * 3] * R[c] + G[r * 3 + 1] * R[3 + c] + G[r * 3 + 2] * R[6 + c]) * inv_s;
      gR[r * 3 + c] = gM * inv_s;
      g_inv_s += gM * R[r * 3 + c];
    }
    g_scale[c] = -g_inv_s * inv_s * inv_s;
  }
  quat_to_rotmat_vjp(quat, gR, g_quat);
}

}  // namespace accum
}  // namespace gaussocc
