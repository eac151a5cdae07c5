// Gaussian-to-occupancy math shared by the CPU and CUDA kernels: per-Gaussian setup (inverse
// covariance and the voxel box of its support), the per-voxel weights and their vector-Jacobian
// products, the per-voxel finishing step that turns the accumulated sums into class probabilities,
// its backward, and the stable "transmittance of the others" used by the backward pass.
// The pure-PyTorch oracle of the same math is src/gaussocc_ops/reference/accumulate.py.
//
// Three modes (Mode below). With g = exp(-d^2 / 2), d^2 the squared Mahalanobis distance of a
// voxel centre, a the opacity and c the features of a Gaussian:
//   additive         occupancy = sum a g, probs[c] = sum a g c                     (C channels)
//   probabilistic    o = 1 - prod (1 - a g), W = sum a g, S_c = sum a g c,
//                    probs = [o S_c / W ..., 1 - o] (empty channel at `empty`)     (C + 1 channels)
//   gaussianformer2  o = 1 - prod (1 - g), q = a g / ((2 pi)^(3/2) sqrt(det Sigma)), W = sum q,
//                    S_c = sum q c, probs = [o S_c / W ..., 1 - o]; where W <= 1e-9 the mixture
//                    S_c / W is replaced by the constant `fill`                    (C + 1 channels)
// The support is the ellipsoid d^2 <= k^2 (additive, probabilistic) or GaussianFormer-2's cube
// of voxels around the mean's voxel (gaussianformer2, see prepare).
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>

#include "gaussocc/common.h"
#include "gaussocc/rotation.h"

namespace gaussocc {
namespace accum {

enum Mode : int { kAdditive = 0, kProbabilistic = 1, kGaussianFormer2 = 2 };

// Below this summed weight GaussianFormer-2's kernel uses the constant class mixture `fill`.
constexpr double kGf2MinWeight = 1e-9;

// The settings of one call. k: support radius (standard deviations of the ellipsoid, or
// GaussianFormer-2's scale multiplier); empty: output channel of the empty class (probabilistic
// modes); fill: GaussianFormer-2's class mixture where W <= 1e-9.
template <typename T>
struct Params {
  int mode;
  T k;
  int64_t empty;
  T fill;
};

GO_HD bool is_probabilistic(int mode) { return mode != kAdditive; }

// Output channel of feature channel c: the empty channel is skipped in the probabilistic modes.
GO_HD int64_t class_slot(int64_t c, int64_t empty, int mode) {
  return (mode != kAdditive && c >= empty) ? c + 1 : c;
}

// Relative padding of the bounding box so that rounding never drops a voxel whose centre passes
// the ellipsoid test d^2 <= k^2 (the test, not the box, decides).
constexpr double kBoxPad = 1e-5;

template <typename T>
struct Grid {
  T origin[3];
  T size[3];
  int64_t dims[3];
};

// One call's Gaussians on raw pointers (the CPU kernels and the CUDA kernels read the same), the
// sizes, the grid and the settings.
template <typename T>
struct Inputs {
  const T* means;      // [B, N, 3]
  const T* quats;      // [B, N, 4]
  const T* scales;     // [B, N, 3]
  const T* opacities;  // [B, N]
  const T* features;   // [B, N, C]
  const bool* valid;   // [B, N]
  int64_t B, N, C;
  Grid<T> grid;
  Params<T> p;
};

// A Gaussian ready for evaluation: conic = Sigma^{-1} as (xx, xy, xz, yy, yz, zz), the
// inclusive voxel index range lo..hi of its support's box, clipped to the grid, and (for
// gaussianformer2) the density normalisation norm = 1 / ((2 pi)^(3/2) s_0 s_1 s_2).
template <typename T>
struct Prepared {
  T conic[6];
  int64_t lo[3];
  int64_t hi[3];
  T norm;
};

// Index range lo..hi (doubles, inclusive) clipped to 0..dim-1; false when empty.
GO_HD bool clip_range(double lo, double hi, int64_t dim, int64_t* out_lo, int64_t* out_hi) {
  const double top = double(dim - 1);
  const double lo_c = lo < 0.0 ? 0.0 : lo;
  const double hi_c = hi > top ? top : hi;
  if (!(lo_c <= hi_c)) {
    *out_lo = 0;
    *out_hi = -1;
    return false;
  }
  *out_lo = int64_t(lo_c);
  *out_hi = int64_t(hi_c);
  return true;
}

// Inverse covariance and clipped voxel box of one Gaussian. Returns false when the box misses
// the grid. Sigma = R diag(s^2) R^T, Sigma^{-1} = M M^T with M = R diag(1/s).
// Ellipsoid support (additive, probabilistic): d^2 <= k^2 reaches k sqrt(Sigma_jj) along world
// axis j; the box holds every voxel whose centre can pass that test.
// Cube support (gaussianformer2, GaussianFormer-2's localagg_prob): the voxels m_j - r_j ..
// m_j + r_j with m_j = trunc((mean_j - origin_j) / voxel_j) (C's int conversion, as their
// `.to(torch.int)`) and r_j = max(1, ceil(max_scale * k / voxel_j)), computed in T as they do.
template <typename T>
GO_HD bool prepare(const T* mean, const T* quat, const T* scale, T k, const Grid<T>& grid, int mode,
                   Prepared<T>* out) {
  T R[9];
  quat_to_rotmat(quat, R);
  const T inv_s2[3] = {1 / (scale[0] * scale[0]), 1 / (scale[1] * scale[1]), 1 / (scale[2] * scale[2])};
  const int pairs[6][2] = {{0, 0}, {0, 1}, {0, 2}, {1, 1}, {1, 2}, {2, 2}};
  for (int p = 0; p < 6; ++p) {
    const int r = pairs[p][0], c = pairs[p][1];
    out->conic[p] = R[r * 3] * R[c * 3] * inv_s2[0] + R[r * 3 + 1] * R[c * 3 + 1] * inv_s2[1] +
                    R[r * 3 + 2] * R[c * 3 + 2] * inv_s2[2];
  }
  out->norm = T(0);
  bool hit = true;
  if (mode == kGaussianFormer2) {
    // (2 pi)^(-3/2)
    out->norm = T(0.063493635934240969) / (scale[0] * scale[1] * scale[2]);
    T max_scale = scale[0] > scale[1] ? scale[0] : scale[1];
    max_scale = max_scale > scale[2] ? max_scale : scale[2];
    const T reach = max_scale * k;
    for (int j = 0; j < 3; ++j) {
      double r = ceil(double(reach / grid.size[j]));
      r = r < 1.0 ? 1.0 : r;
      const double m = trunc(double((mean[j] - grid.origin[j]) / grid.size[j]));
      hit = clip_range(m - r, m + r, grid.dims[j], &out->lo[j], &out->hi[j]) && hit;
    }
    return hit;
  }
  for (int j = 0; j < 3; ++j) {
    const T var = R[j * 3] * R[j * 3] * scale[0] * scale[0] + R[j * 3 + 1] * R[j * 3 + 1] * scale[1] * scale[1] +
                  R[j * 3 + 2] * R[j * 3 + 2] * scale[2] * scale[2];
    const double half = double(k) * sqrt(double(var)) * (1.0 + kBoxPad);
    const double lo = ceil((double(mean[j]) - half - double(grid.origin[j])) / double(grid.size[j]) - 0.5);
    const double hi = floor((double(mean[j]) + half - double(grid.origin[j])) / double(grid.size[j]) - 0.5);
    hit = clip_range(lo, hi, grid.dims[j], &out->lo[j], &out->hi[j]) && hit;
  }
  return hit;
}

// Whether a voxel of the box is in the support: the ellipsoid test, or every voxel of the cube.
template <typename T>
GO_HD bool in_support(int mode, T d2, T k2) {
  return mode == kGaussianFormer2 || d2 <= k2;
}

// The two weights of a Gaussian at a voxel, from g = exp(-d^2 / 2) and the opacity a:
// occ enters the occupancy product (a g; GaussianFormer-2: g), sem the semantic sums (a g;
// GaussianFormer-2: a g norm).
template <typename T>
struct Weights {
  T occ;
  T sem;
};

template <typename T>
GO_HD Weights<T> voxel_weights(int mode, T g, T a, T norm) {
  if (mode == kGaussianFormer2) return {g, a * norm * g};
  const T w = a * g;
  return {w, w};
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

// Whether the class mixture S_c / W is defined at a voxel: W above sqrt of the smallest normal
// number (probabilistic; below it the ratio o / W takes its limit 1), or above 1e-9
// (gaussianformer2, their threshold; below it the mixture is `fill`).
template <typename T>
GO_HD bool mixture_defined(int mode, T W) {
  if (mode == kGaussianFormer2) return W > T(kGf2MinWeight);
  // FLT_MIN / DBL_MIN: numeric_limits<T>::min() is a host function to nvcc
  return W > sqrt(sizeof(T) == sizeof(float) ? T(FLT_MIN) : T(DBL_MIN));
}

// Turns one voxel's sums into its outputs (probabilistic modes). row: the voxel's C + 1 output
// channels, holding S_c in the class channels on entry, probabilities on exit.
template <typename T>
GO_HD void finish_voxel(const Params<T>& p, int64_t C, T W, T log_t, int32_t n_opaque, T* row, T* occupancy) {
  const T o = occupancy_from_log(log_t, n_opaque);
  *occupancy = o;
  const bool defined = mixture_defined(p.mode, W);
  for (int64_t c = 0; c < C; ++c) {
    T* x = row + class_slot(c, p.empty, p.mode);
    if (p.mode == kGaussianFormer2) {
      *x = defined ? (*x / W) * o : p.fill * o;
    } else if (defined) {
      *x = *x * (o / W);
    }
  }
  row[p.empty] = T(1) - o;
}

// Per-voxel factors of the backward pass. With G the gradient of probs (class channels G_c,
// empty channel G_e), G_o that of the occupancy, A = sum_c G_c p_c and T_i the transmittance of
// the others, the gradient w.r.t. Gaussian i's weights at the voxel is
//   dL/dsem_i = g_w + r sum_c G_c c_ic,   dL/dc_ic = r G_c sem_i,   dL/docc_i = g_o T_i
// (for probabilistic sem_i = occ_i and the two add). Where the mixture is defined r = o / W,
// g_w = -A / W, g_o = G_o - G_e + A / o; else r = 1, g_w = 0, g_o = G_o - G_e (probabilistic)
// or r = 0, g_w = 0, g_o = G_o - G_e + fill sum_c G_c (gaussianformer2). Additive: r = 1,
// g_w = G_o, g_o = 0.
template <typename T>
struct VoxelGrad {
  T r, g_w, g_o;
};

// g_row: the voxel's probs gradient, channel stride g_stride; p_row: its probs.
template <typename T>
GO_HD VoxelGrad<T> voxel_grad(const Params<T>& p, int64_t C, T W, T log_t, int32_t n_opaque, T g_occ,
                              const T* g_row, int64_t g_stride, const T* p_row) {
  if (p.mode == kAdditive) return {T(1), g_occ, T(0)};
  const T o = occupancy_from_log(log_t, n_opaque);
  const T g_empty = g_row[p.empty * g_stride];
  T A = 0, sum_g = 0;
  for (int64_t c = 0; c < C; ++c) {
    const int64_t slot = class_slot(c, p.empty, p.mode);
    const T gc = g_row[slot * g_stride];
    A += gc * p_row[slot];
    sum_g += gc;
  }
  if (mixture_defined(p.mode, W)) return {o / W, -A / W, g_occ - g_empty + (o > T(0) ? A / o : T(0))};
  if (p.mode == kGaussianFormer2) return {T(0), T(0), g_occ - g_empty + p.fill * sum_g};
  return {T(1), T(0), g_occ - g_empty};
}

// Per-Gaussian gradient accumulators over the voxels: opacity = dL/da; q = dL/d(d^2) at each
// voxel; the conic and mean gradients follow from sum q delta delta^T and sum q delta
// (delta = voxel centre - mean).
template <typename T>
struct GradSums {
  T opacity = 0;
  T q_delta[3] = {0, 0, 0};
  T q_delta2[6] = {0, 0, 0, 0, 0, 0};
};

// dL/dg and dL/da of one voxel, from dL/dsem and dL/docc (voxel_weights' two weights).
template <typename T>
GO_HD void weight_vjp(int mode, T g_sem, T g_occ, T g, T a, T norm, T* g_g, T* g_a) {
  if (mode == kGaussianFormer2) {
    *g_g = g_sem * a * norm + g_occ;
    *g_a = g_sem * norm * g;
  } else {
    const T g_w = g_sem + g_occ;
    *g_g = g_w * a;
    *g_a = g_w * g;
  }
}

// Adds one voxel: g_g = dL/dg, g_a = dL/da, g = exp(-d^2 / 2).
template <typename T>
GO_HD void add_voxel_grad(T g_g, T g_a, T g, const T* delta, GradSums<T>* s) {
  s->opacity += g_a;
  const T q = T(-0.5) * g_g * g;
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
// dL/dmean = -2 A sum q delta, dL/dM = 2 G M. gaussianformer2: the normalisation
// norm = (2 pi)^(-3/2) / (s_0 s_1 s_2) adds dL/dnorm dnorm/ds_j with
// dL/dnorm = a / norm * dL/da (every dL/da term is g_sem norm g), dnorm/ds_j = -norm / s_j.
template <typename T>
GO_HD void finish_grads(int mode, T a, const T* quat, const T* scale, const T* conic, const GradSums<T>& s,
                        T* g_mean, T* g_quat, T* g_scale) {
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
    if (mode == kGaussianFormer2) g_scale[c] -= a * s.opacity * inv_s;
  }
  quat_to_rotmat_vjp(quat, gR, g_quat);
}

}  // namespace accum
}  // namespace gaussocc
