// Math of soft-gated lifting (SGR-OCC Eq. 1-2) shared by the CPU and CUDA kernels.
//
// Bilinear sampling convention: a map of size H x W covers the continuous pixel square
// [0, W) x [0, H); pixel (row, col) has its centre at (col + 0.5, row + 0.5). A point (x, y)
// reads the four pixels around (x - 0.5, y - 0.5); taps outside the map read zero. This is
// torch.nn.functional.grid_sample with align_corners=False and padding_mode="zeros".
#pragma once

#include <math.h>
#include <cstdint>

#include "gaussocc/common.h"

namespace gaussocc {

GO_HD float lift_floor(float v) { return floorf(v); }
GO_HD double lift_floor(double v) { return ::floor(v); }
GO_HD float lift_exp(float v) { return expf(v); }
GO_HD double lift_exp(double v) { return ::exp(v); }

// The four taps of a bilinear read: flat pixel index (row * W + col, or -1 outside the map),
// weight, and the weight's derivatives with respect to x and y.
template <typename T>
struct BilinearTaps {
  int64_t index[4];
  T weight[4];
  T dweight_dx[4];
  T dweight_dy[4];
};

template <typename T>
GO_HD BilinearTaps<T> bilinear_taps(T x, T y, int64_t height, int64_t width) {
  BilinearTaps<T> taps;
  const T gx = x - T(0.5);
  const T gy = y - T(0.5);
  // Far outside (or NaN): every tap reads zero. The bound also keeps floor() in int range.
  if (!(gx > T(-2) && gx < T(width + 1) && gy > T(-2) && gy < T(height + 1))) {
    for (int t = 0; t < 4; ++t) {
      taps.index[t] = -1;
      taps.weight[t] = T(0);
      taps.dweight_dx[t] = T(0);
      taps.dweight_dy[t] = T(0);
    }
    return taps;
  }
  const T fx0 = lift_floor(gx);
  const T fy0 = lift_floor(gy);
  const int64_t x0 = static_cast<int64_t>(fx0);
  const int64_t y0 = static_cast<int64_t>(fy0);
  const T ax = gx - fx0;  // fractional parts in [0, 1)
  const T ay = gy - fy0;
  const int64_t xs[4] = {x0, x0 + 1, x0, x0 + 1};
  const int64_t ys[4] = {y0, y0, y0 + 1, y0 + 1};
  const T wx[4] = {T(1) - ax, ax, T(1) - ax, ax};
  const T wy[4] = {T(1) - ay, T(1) - ay, ay, ay};
  const T dwx[4] = {T(-1), T(1), T(-1), T(1)};
  const T dwy[4] = {T(-1), T(-1), T(1), T(1)};
  for (int t = 0; t < 4; ++t) {
    const bool inside = xs[t] >= 0 && xs[t] < width && ys[t] >= 0 && ys[t] < height;
    taps.index[t] = inside ? ys[t] * width + xs[t] : -1;
    taps.weight[t] = wx[t] * wy[t];
    taps.dweight_dx[t] = dwx[t] * wy[t];
    taps.dweight_dy[t] = wx[t] * dwy[t];
  }
  return taps;
}

// Bilinear read of a single-channel map.
template <typename T>
GO_HD T bilinear_scalar(const T* map, const BilinearTaps<T>& taps) {
  T value = T(0);
  for (int t = 0; t < 4; ++t)
    if (taps.index[t] >= 0) value += taps.weight[t] * map[taps.index[t]];
  return value;
}

// Gaussian depth gate (SGR-OCC Eq. 2): alpha * exp(-(d_proj - d_pred)^2 / (2 sigma^2)).
// Returns the gate; `kernel` receives exp(...) (the gate divided by alpha).
template <typename T>
GO_HD T depth_gate(T d_proj, T d_pred, T alpha, T sigma, T* kernel) {
  const T r = d_proj - d_pred;
  const T e = lift_exp(-(r * r) / (T(2) * sigma * sigma));
  *kernel = e;
  return alpha * e;
}

// Derivatives of the gate g = alpha * e with respect to its inputs, scaled by the upstream
// gradient `grad_gate`.
template <typename T>
struct DepthGateGrad {
  T d_proj;
  T d_pred;
  T alpha;
  T sigma;
};

template <typename T>
GO_HD DepthGateGrad<T> depth_gate_backward(T d_proj, T d_pred, T alpha, T sigma, T gate, T kernel,
                                           T grad_gate) {
  const T r = d_proj - d_pred;
  const T s2 = sigma * sigma;
  const T dg_dr = -gate * r / s2;  // d g / d d_proj; d g / d d_pred is its negative
  DepthGateGrad<T> out;
  out.d_proj = grad_gate * dg_dr;
  out.d_pred = -grad_gate * dg_dr;
  out.alpha = grad_gate * kernel;
  out.sigma = grad_gate * gate * r * r / (s2 * sigma);
  return out;
}

// The gradient (d/dx, d/dy) of a sample position p_k through the bilinear weights of its taps.
// Each tap inside the map carries coef * tap_dot[t] (through the sampled features: the gate times
// the attention, times <grad_out, F(tap)>) plus g_d_pred * D(tap) (through the depth the gate
// reads).
template <typename T>
GO_HD void sample_position_grad(const BilinearTaps<T>& taps, const T tap_dot[4], T coef, T g_d_pred, const T* D,
                                T* gx, T* gy) {
  T x = T(0), y = T(0);
  for (int t = 0; t < 4; ++t) {
    const int64_t idx = taps.index[t];
    if (idx < 0) continue;
    const T through_tap = coef * tap_dot[t] + g_d_pred * D[idx];
    x += taps.dweight_dx[t] * through_tap;
    y += taps.dweight_dy[t] * through_tap;
  }
  *gx = x;
  *gy = y;
}

// One soft_gated_lift call on raw pointers (layout in ops/lift.cpp): the inputs, with alpha and
// sigma pointing at one value each (device pointers on CUDA, so no host sync), and the sizes.
template <typename T>
struct LiftArgs {
  const T* features;    // [B, H, W, C]
  const T* depth;       // [B, H, W]
  const T* ref_points;  // [B, Q, 2]
  const T* d_proj;      // [B, Q]
  const bool* valid;    // [B, Q]
  const T* offsets;     // [B, Q, K, 2]
  const T* attn;        // [B, Q, K]
  const T* alpha;
  const T* sigma;
  int64_t B, H, W, C, Q, K;
};

}  // namespace gaussocc
