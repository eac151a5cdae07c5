// The fusion step of GaussianMemory, shared by the CPU and CUDA kernels of memory_fuse.
//
// One memory Gaussian i (a "target") and the new Gaussians J(i) matched to it (pairs
// offsets[t] .. offsets[t+1] of pair_new, in ascending pair order):
//   gpocc: theta_i <- (gamma p_i theta_i + (1 - gamma) sum_j p_j theta_j) / (gamma p_i + (1 - gamma) sum_j p_j)
//   sgr:   theta_i <- C_i theta_i + (1 - C_i) sum_j p_j theta_j / sum_j p_j
// for theta in {mean, opacity, features, confidence} in the memory's precision T, with the same
// operations in the same order as the PyTorch reference (products rounded, then summed in pair
// order), so both give the same bits; and for the covariance Sigma = R diag(s^2) R^T in double,
// re-decomposed into ascending scales and a unit quaternion with w >= 0 (cyclic Jacobi).
#pragma once

#include <cmath>
#include <cstdint>

#include "gaussocc/common.h"

namespace gaussocc {

// IEEE operations without fused multiply-adds (nvcc contracts a * b + c by default).
template <typename T>
GO_HD T fuse_mul(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) {
    return __fmul_rn(a, b);
  } else {
    return __dmul_rn(a, b);
  }
#else
  return a * b;
#endif
}

template <typename T>
GO_HD T fuse_add(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) {
    return __fadd_rn(a, b);
  } else {
    return __dadd_rn(a, b);
  }
#else
  return a + b;
#endif
}

template <typename T>
GO_HD T fuse_div(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) {
    return __fdiv_rn(a, b);
  } else {
    return __ddiv_rn(a, b);
  }
#else
  return a / b;
#endif
}

// Sigma (xx, xy, xz, yy, yz, zz) of scales s[3] and quaternion q[4] = (w, x, y, z), any norm.
template <typename T>
GO_HD void fuse_covariance(const T* s, const T* q, double* cov) {
  double w = q[0], x = q[1], y = q[2], z = q[3];
  double n = sqrt(w * w + x * x + y * y + z * z);
  n = n > 1e-12 ? n : 1e-12;
  w /= n;
  x /= n;
  y /= n;
  z /= n;
  const double R[3][3] = {{1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)},
                          {2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)},
                          {2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)}};
  const double s2[3] = {double(s[0]) * double(s[0]), double(s[1]) * double(s[1]), double(s[2]) * double(s[2])};
  const int rows[6] = {0, 0, 0, 1, 1, 2}, cols[6] = {0, 1, 2, 1, 2, 2};
  for (int e = 0; e < 6; ++e) {
    const int a = rows[e], b = cols[e];
    cov[e] = R[a][0] * s2[0] * R[b][0] + R[a][1] * s2[1] * R[b][1] + R[a][2] * s2[2] * R[b][2];
  }
}

// Eigen-decomposition of the symmetric cov (xx, xy, xz, yy, yz, zz) by cyclic Jacobi rotations:
// eigenvalues ascending in evals[3], unit eigenvectors in the columns of V (a proper rotation).
GO_HD void fuse_sym3_eigen(const double* cov, double* evals, double V[3][3]) {
  double a[3][3] = {{cov[0], cov[1], cov[2]}, {cov[1], cov[3], cov[4]}, {cov[2], cov[4], cov[5]}};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) V[r][c] = r == c ? 1.0 : 0.0;
  const int P[3] = {0, 0, 1}, Q[3] = {1, 2, 2};
  for (int sweep = 0; sweep < 32; ++sweep) {
    const double off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
    const double diag = a[0][0] * a[0][0] + a[1][1] * a[1][1] + a[2][2] * a[2][2];
    if (!(off > 1e-32 * diag) || off == 0.0) break;
    for (int r = 0; r < 3; ++r) {
      const int p = P[r], q = Q[r];
      const double apq = a[p][q];
      if (apq == 0.0) continue;
      const double theta = (a[q][q] - a[p][p]) / (2.0 * apq);
      const double abs_theta = fabs(theta);
      double t = abs_theta > 1e150 ? 0.5 / abs_theta : 1.0 / (abs_theta + sqrt(theta * theta + 1.0));
      if (theta < 0) t = -t;
      const double c = 1.0 / sqrt(t * t + 1.0), s = t * c, tau = s / (1.0 + c);
      a[p][p] -= t * apq;
      a[q][q] += t * apq;
      a[p][q] = a[q][p] = 0.0;
      const int k = 3 - p - q;  // the third axis
      const double g = a[k][p], h = a[k][q];
      a[k][p] = a[p][k] = g - s * (h + g * tau);
      a[k][q] = a[q][k] = h + s * (g - h * tau);
      for (int m = 0; m < 3; ++m) {
        const double vg = V[m][p], vh = V[m][q];
        V[m][p] = vg - s * (vh + vg * tau);
        V[m][q] = vh + s * (vg - vh * tau);
      }
    }
  }
  int order[3] = {0, 1, 2};
  const double d[3] = {a[0][0], a[1][1], a[2][2]};
  for (int i = 1; i < 3; ++i)
    for (int j = i; j > 0 && d[order[j]] < d[order[j - 1]]; --j) {
      const int tmp = order[j];
      order[j] = order[j - 1];
      order[j - 1] = tmp;
    }
  double W[3][3];
  for (int c = 0; c < 3; ++c) {
    evals[c] = d[order[c]];
    for (int r = 0; r < 3; ++r) W[r][c] = V[r][order[c]];
  }
  const double det = W[0][0] * (W[1][1] * W[2][2] - W[1][2] * W[2][1]) -
                     W[0][1] * (W[1][0] * W[2][2] - W[1][2] * W[2][0]) +
                     W[0][2] * (W[1][0] * W[2][1] - W[1][1] * W[2][0]);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) V[r][c] = (c == 2 && det < 0) ? -W[r][c] : W[r][c];
}

// Unit quaternion (w, x, y, z) with w >= 0 of the rotation R (Shepperd's method: the largest of
// |w|, |x|, |y|, |z| is the pivot).
GO_HD void fuse_rotmat_to_quat(const double R[3][3], double* q) {
  const double sq[4] = {1 + R[0][0] + R[1][1] + R[2][2], 1 + R[0][0] - R[1][1] - R[2][2],
                        1 - R[0][0] + R[1][1] - R[2][2], 1 - R[0][0] - R[1][1] + R[2][2]};
  int pivot = 0;
  for (int i = 1; i < 4; ++i)
    if (sq[i] > sq[pivot]) pivot = i;
  const double root = sqrt(sq[pivot] > 1e-12 ? sq[pivot] : 1e-12);  // 2 |pivot component|
  const double rr = root * root;
  double c[4];
  if (pivot == 0) {
    c[0] = rr, c[1] = R[2][1] - R[1][2], c[2] = R[0][2] - R[2][0], c[3] = R[1][0] - R[0][1];
  } else if (pivot == 1) {
    c[0] = R[2][1] - R[1][2], c[1] = rr, c[2] = R[0][1] + R[1][0], c[3] = R[0][2] + R[2][0];
  } else if (pivot == 2) {
    c[0] = R[0][2] - R[2][0], c[1] = R[0][1] + R[1][0], c[2] = rr, c[3] = R[1][2] + R[2][1];
  } else {
    c[0] = R[1][0] - R[0][1], c[1] = R[0][2] + R[2][0], c[2] = R[1][2] + R[2][1], c[3] = rr;
  }
  double n = 0;
  for (int i = 0; i < 4; ++i) n += c[i] * c[i];
  n = sqrt(n);
  const double sign = c[0] < 0 ? -1.0 : 1.0;
  for (int i = 0; i < 4; ++i) q[i] = sign * c[i] / n;
}

// Pointers of one memory_fuse call (layout in ops/memory_fuse.cpp).
template <typename T>
struct FuseArgs {
  T* means;  // [cap, 3] ... the memory, updated in place at the target rows
  T* scales;
  T* quats;
  T* opacities;
  T* features;  // [cap, C]
  T* confidence;
  int64_t* observations;
  int64_t* last_seen;
  bool* tags;
  const T* new_means;  // [n, 3] ... the frame, in the world frame
  const T* new_scales;
  const T* new_quats;
  const T* new_opacities;
  const T* new_features;
  const T* new_confidence;
  const bool* new_tags;
  const int64_t* targets;   // [T] memory rows
  const int64_t* offsets;   // [T + 1]
  const int64_t* pair_new;  // [P] frame rows, grouped by target
  const T* coef;            // [T] SGR-OCC C_i, or nullptr for the GPOcc rule
  int64_t channels;
  double gamma;
  int64_t frame;
};

// Fuses target t of `a`.
template <typename T>
GO_HD void memory_fuse_one(const FuseArgs<T>& a, int64_t t) {
  const int64_t i = a.targets[t], p0 = a.offsets[t], p1 = a.offsets[t + 1];
  const bool sgr = a.coef != nullptr;
  T weight = 0;
  bool tag = a.tags[i];
  double cov_sum[6] = {0, 0, 0, 0, 0, 0};
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t j = a.pair_new[p];
    const T w = a.new_confidence[j];
    weight = fuse_add(weight, w);
    tag = tag || a.new_tags[j];
    double cov[6];
    fuse_covariance(a.new_scales + 3 * j, a.new_quats + 4 * j, cov);
    for (int e = 0; e < 6; ++e) cov_sum[e] += double(w) * cov[e];
  }
  const T g = static_cast<T>(a.gamma), g1 = static_cast<T>(1.0 - a.gamma);
  const T w_old = fuse_mul(g, a.confidence[i]);
  const T norm = fuse_add(w_old, fuse_mul(g1, weight));
  const T c = sgr ? a.coef[t] : T(0);
  const T one_minus_c = fuse_add(T(1), -c);
  // theta_i from its old value and sum_j p_j theta_j
  auto fused = [&](T old, T sum) -> T {
    if (sgr) return fuse_add(fuse_mul(c, old), fuse_div(fuse_mul(one_minus_c, sum), weight));
    return fuse_div(fuse_add(fuse_mul(w_old, old), fuse_mul(g1, sum)), norm);
  };
  // sum_j p_j theta_j of a per-Gaussian value, in pair order
  auto weighted_sum = [&](const T* values, int64_t stride, int64_t offset) -> T {
    T s = 0;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t j = a.pair_new[p];
      s = fuse_add(s, fuse_mul(a.new_confidence[j], values[stride * j + offset]));
    }
    return s;
  };
  for (int d = 0; d < 3; ++d) a.means[3 * i + d] = fused(a.means[3 * i + d], weighted_sum(a.new_means, 3, d));
  a.opacities[i] = fused(a.opacities[i], weighted_sum(a.new_opacities, 1, 0));
  for (int64_t ch = 0; ch < a.channels; ++ch) {
    const int64_t e = a.channels * i + ch;
    a.features[e] = fused(a.features[e], weighted_sum(a.new_features, a.channels, ch));
  }
  // covariance in double
  double cov_old[6], cov[6];
  fuse_covariance(a.scales + 3 * i, a.quats + 4 * i, cov_old);
  const double dw_old = double(w_old), dnorm = double(w_old) + double(g1) * double(weight);
  for (int e = 0; e < 6; ++e) {
    cov[e] = sgr ? double(c) * cov_old[e] + (1.0 - double(c)) * cov_sum[e] / double(weight)
                 : (dw_old * cov_old[e] + double(g1) * cov_sum[e]) / dnorm;
  }
  // the confidence last: the weights above use its old value
  a.confidence[i] = fused(a.confidence[i], weighted_sum(a.new_confidence, 1, 0));
  double evals[3], V[3][3], q[4];
  fuse_sym3_eigen(cov, evals, V);
  fuse_rotmat_to_quat(V, q);
  for (int d = 0; d < 3; ++d) a.scales[3 * i + d] = static_cast<T>(sqrt(evals[d] > 0 ? evals[d] : 0.0));
  for (int d = 0; d < 4; ++d) a.quats[4 * i + d] = static_cast<T>(q[d]);
  a.observations[i] += 1;
  a.last_seen[i] = a.frame;
  a.tags[i] = tag;
}

}  // namespace gaussocc
