// Splatting math shared by the CPU and CUDA kernels: EWA projection of one Gaussian into one
// camera (forward and vector-Jacobian product) and the per-pixel alpha (forward and VJP).
// The pure-PyTorch oracle of the same math is src/gaussocc_ops/reference/splat.py.
#pragma once

#include <cmath>

#include "gaussocc/common.h"
#include "gaussocc/rotation.h"

namespace gaussocc {
namespace splat {

// Constants of the compositing, each the value of type T nearest to it (as the reference
// computes them from Python floats): float literals would make the float64 kernels use
// 0.999f = 0.99900001287..., 0.3f = 0.30000001192... and so on.
template <typename T>
GO_HD T alpha_threshold() {  // a Gaussian with alpha below skips the pixel
  return T(1) / T(255);
}
template <typename T>
GO_HD T alpha_max() {  // alpha is clamped to this
  return T(0.999);
}
template <typename T>
GO_HD T transmittance_min() {  // stop before T would drop to <= this
  return T(1e-4);
}
template <typename T>
GO_HD T fov_clamp() {  // J uses x/z clamped to the FOV + 30%
  return T(0.3);
}

// The tile size of the rasterizer, the one value every backend accepts: the CUDA rasterizer runs
// a tile as one thread block of kTileSize x kTileSize threads (a whole number of warps), and the
// CPU rasterizer bins into the same tiles so that both return the same tile lists.
constexpr int kTileSize = 16;

template <typename T>
struct Camera {
  T R[9];  // world -> camera rotation (row-major)
  T t[3];
  T fx, fy, cx, cy;
  int width, height;
  bool ortho;
};

template <typename T>
GO_HD Camera<T> load_camera(const T* viewmat, const T* K, int width, int height, bool ortho) {
  Camera<T> cam;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) cam.R[r * 3 + c] = viewmat[r * 4 + c];
    cam.t[r] = viewmat[r * 4 + 3];
  }
  cam.fx = K[0];
  cam.fy = K[4];
  cam.cx = K[2];
  cam.cy = K[5];
  cam.width = width;
  cam.height = height;
  cam.ortho = ortho;
  return cam;
}

// Intermediate values of one projection, kept for the backward pass.
template <typename T>
struct Projection {
  T p[3];         // camera-frame centre
  T cov_cam[9];   // camera-frame covariance
  T J[6];         // 2x3 Jacobian of the projection
  T cov2d[3];     // (xx, xy, yy) including eps2d
  bool clamp_x, clamp_y;
};

// Projects one Gaussian. Returns false when it is culled (outside [near, far] or degenerate);
// otherwise writes the pixel-space mean, the conic (inverse 2D covariance: a, b, c) and the
// camera-frame depth.
template <typename T>
GO_HD bool project(const T* mean, const T* quat, const T* scale, const Camera<T>& cam, T near, T far,
                   T eps2d, T* mean2d, T* conic, T* depth, Projection<T>* keep) {
  Projection<T> pr;
  for (int r = 0; r < 3; ++r)
    pr.p[r] = cam.R[r * 3] * mean[0] + cam.R[r * 3 + 1] * mean[1] + cam.R[r * 3 + 2] * mean[2] + cam.t[r];
  const T x = pr.p[0], y = pr.p[1], z = pr.p[2];
  *depth = z;
  if (!(z >= near && z <= far) || (!cam.ortho && !(z > 0))) return false;

  T Rq[9];
  quat_to_rotmat(quat, Rq);
  // M = R_view * R_q * S, cov_cam = M M^T
  T M[9];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      M[r * 3 + c] = (cam.R[r * 3] * Rq[c] + cam.R[r * 3 + 1] * Rq[3 + c] + cam.R[r * 3 + 2] * Rq[6 + c]) * scale[c];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      pr.cov_cam[r * 3 + c] = M[r * 3] * M[c * 3] + M[r * 3 + 1] * M[c * 3 + 1] + M[r * 3 + 2] * M[c * 3 + 2];

  pr.clamp_x = pr.clamp_y = false;
  if (cam.ortho) {
    mean2d[0] = cam.fx * x + cam.cx;
    mean2d[1] = cam.fy * y + cam.cy;
    pr.J[0] = cam.fx; pr.J[1] = 0; pr.J[2] = 0;
    pr.J[3] = 0; pr.J[4] = cam.fy; pr.J[5] = 0;
  } else {
    const T rz = T(1) / z;
    mean2d[0] = cam.fx * x * rz + cam.cx;
    mean2d[1] = cam.fy * y * rz + cam.cy;
    const T tan_x = T(0.5) * cam.width / cam.fx, tan_y = T(0.5) * cam.height / cam.fy;
    const T lim_xp = (cam.width - cam.cx) / cam.fx + fov_clamp<T>() * tan_x;
    const T lim_xn = cam.cx / cam.fx + fov_clamp<T>() * tan_x;
    const T lim_yp = (cam.height - cam.cy) / cam.fy + fov_clamp<T>() * tan_y;
    const T lim_yn = cam.cy / cam.fy + fov_clamp<T>() * tan_y;
    const T ux = x * rz, uy = y * rz;
    pr.clamp_x = ux < -lim_xn || ux > lim_xp;
    pr.clamp_y = uy < -lim_yn || uy > lim_yp;
    const T tx = z * clamp_value(ux, -lim_xn, lim_xp);
    const T ty = z * clamp_value(uy, -lim_yn, lim_yp);
    pr.J[0] = cam.fx * rz; pr.J[1] = 0; pr.J[2] = -cam.fx * tx * rz * rz;
    pr.J[3] = 0; pr.J[4] = cam.fy * rz; pr.J[5] = -cam.fy * ty * rz * rz;
  }
  // cov2d = J cov_cam J^T
  T JC[6];
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c)
      JC[r * 3 + c] = pr.J[r * 3] * pr.cov_cam[c] + pr.J[r * 3 + 1] * pr.cov_cam[3 + c] + pr.J[r * 3 + 2] * pr.cov_cam[6 + c];
  pr.cov2d[0] = JC[0] * pr.J[0] + JC[1] * pr.J[1] + JC[2] * pr.J[2] + eps2d;
  pr.cov2d[1] = JC[0] * pr.J[3] + JC[1] * pr.J[4] + JC[2] * pr.J[5];
  pr.cov2d[2] = JC[3] * pr.J[3] + JC[4] * pr.J[4] + JC[5] * pr.J[5] + eps2d;
  const T det = pr.cov2d[0] * pr.cov2d[2] - pr.cov2d[1] * pr.cov2d[1];
  if (!(det > 0)) return false;
  conic[0] = pr.cov2d[2] / det;
  conic[1] = -pr.cov2d[1] / det;
  conic[2] = pr.cov2d[0] / det;
  if (keep != nullptr) *keep = pr;
  return true;
}

// Half-extent in pixels of the axis-aligned box holding every pixel where alpha >= 1/255:
// that needs sigma <= log(255 o), and the ellipse sigma <= s^2/2 reaches s * sqrt(cov_xx) along x.
// Returns false when no pixel can reach the threshold.
template <typename T>
GO_HD bool pixel_radius(const T* cov2d, T opacity, int* radius) {
  if (!(opacity >= alpha_threshold<T>())) return false;
  const T extent = sqrt(T(2) * log(opacity / alpha_threshold<T>()));
  radius[0] = (int)ceil(extent * sqrt(cov2d[0]));
  radius[1] = (int)ceil(extent * sqrt(cov2d[2]));
  return radius[0] > 0 || radius[1] > 0;
}

// True when the pixel box [x - rx, x + rx] x [y - ry, y + ry] of a projected Gaussian reaches the
// width x height image.
template <typename T>
GO_HD bool box_on_screen(const T* mean2d, const int* radius, int width, int height) {
  return mean2d[0] + radius[0] > 0 && mean2d[0] - radius[0] < width && mean2d[1] + radius[1] > 0 &&
         mean2d[1] - radius[1] < height;
}

// The forward projection of one Gaussian into one camera, as both kernels run it: `project`, then
// the culling. A Gaussian is culled outside [near, far], behind a pinhole camera, with a
// degenerate 2D covariance, when no pixel can reach the alpha threshold (`pixel_radius`) and when
// its pixel box misses the image. A culled Gaussian gets radii (0, 0) and a zero mean2d and conic;
// the depth is written either way.
template <typename T>
GO_HD void project_and_cull(const T* mean, const T* quat, const T* scale, T opacity, const Camera<T>& cam, T near,
                            T far, T eps2d, T* mean2d, T* conic, T* depth, int32_t* radii) {
  Projection<T> pr;
  int rad[2] = {0, 0};
  bool ok = project(mean, quat, scale, cam, near, far, eps2d, mean2d, conic, depth, &pr);
  ok = ok && pixel_radius(pr.cov2d, opacity, rad);
  ok = ok && box_on_screen(mean2d, rad, cam.width, cam.height);
  if (!ok) {
    mean2d[0] = mean2d[1] = T(0);
    conic[0] = conic[1] = conic[2] = T(0);
    rad[0] = rad[1] = 0;
  }
  radii[0] = rad[0];
  radii[1] = rad[1];
}

// The tiles [r0, r1) x [r2, r3) that the pixel box of a projected Gaussian touches, on a grid of
// tiles_x x tiles_y tiles of tile_size pixels (pixel centres at +0.5); false for a culled
// Gaussian (radii 0) or an empty range. The binning of both kernels.
template <typename T>
GO_HD bool tile_rect(const T* mean2d, const int32_t* radii, int tile_size, int64_t tiles_x, int64_t tiles_y,
                     int64_t* r) {
  if (radii[0] == 0 && radii[1] == 0) return false;
  const T ts = T(tile_size);
  const int64_t x0 = (int64_t)floor((mean2d[0] - radii[0] - T(0.5)) / ts);
  const int64_t x1 = (int64_t)floor((mean2d[0] + radii[0] + T(0.5)) / ts) + 1;
  const int64_t y0 = (int64_t)floor((mean2d[1] - radii[1] - T(0.5)) / ts);
  const int64_t y1 = (int64_t)floor((mean2d[1] + radii[1] + T(0.5)) / ts) + 1;
  r[0] = x0 > 0 ? x0 : 0;
  r[1] = x1 < tiles_x ? x1 : tiles_x;
  r[2] = y0 > 0 ? y0 : 0;
  r[3] = y1 < tiles_y ? y1 : tiles_y;
  return r[0] < r[1] && r[2] < r[3];
}

// VJP of `project`: given dL/dmean2d, dL/dconic (a, b, c as stored), dL/ddepth, accumulates
// dL/dmean, dL/dquat, dL/dscale.
template <typename T>
GO_HD void project_vjp(const T* mean, const T* quat, const T* scale, const Camera<T>& cam, T eps2d,
                       const T* g_mean2d, const T* g_conic, T g_depth, T* g_mean, T* g_quat, T* g_scale) {
  T mean2d[2], conic[3], depth;
  Projection<T> pr;
  if (!project(mean, quat, scale, cam, T(-1e30), T(1e30), eps2d, mean2d, conic, &depth, &pr)) return;
  const T x = pr.p[0], y = pr.p[1], z = pr.p[2];

  // conic = inverse(cov2d): dL/dcov2d = -Q G Q with G symmetric (off-diagonal gets half of g_b).
  const T Q00 = conic[0], Q01 = conic[1], Q11 = conic[2];
  const T G00 = g_conic[0], G01 = T(0.5) * g_conic[1], G11 = g_conic[2];
  // A = Q G
  const T A00 = Q00 * G00 + Q01 * G01, A01 = Q00 * G01 + Q01 * G11;
  const T A10 = Q01 * G00 + Q11 * G01, A11 = Q01 * G01 + Q11 * G11;
  T gS[4];  // full 2x2 gradient of cov2d
  gS[0] = -(A00 * Q00 + A01 * Q01);
  gS[1] = -(A00 * Q01 + A01 * Q11);
  gS[2] = -(A10 * Q00 + A11 * Q01);
  gS[3] = -(A10 * Q01 + A11 * Q11);

  // cov2d = J C J^T: dL/dC = J^T gS J, dL/dJ = (gS + gS^T) J C
  T gC[9];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      T acc = 0;
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) acc += pr.J[i * 3 + r] * gS[i * 2 + j] * pr.J[j * 3 + c];
      gC[r * 3 + c] = acc;
    }
  T JC[6];
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c)
      JC[r * 3 + c] = pr.J[r * 3] * pr.cov_cam[c] + pr.J[r * 3 + 1] * pr.cov_cam[3 + c] + pr.J[r * 3 + 2] * pr.cov_cam[6 + c];
  T gJ[6];
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c)
      gJ[r * 3 + c] = (gS[r * 2 + 0] + gS[0 * 2 + r]) * JC[0 * 3 + c] + (gS[r * 2 + 1] + gS[1 * 2 + r]) * JC[1 * 3 + c];

  // camera-frame centre gradient from mean2d, depth and J
  T gp[3] = {0, 0, g_depth};
  if (cam.ortho) {
    gp[0] += cam.fx * g_mean2d[0];
    gp[1] += cam.fy * g_mean2d[1];
  } else {
    const T rz = T(1) / z, rz2 = rz * rz, rz3 = rz2 * rz;
    gp[0] += cam.fx * rz * g_mean2d[0];
    gp[1] += cam.fy * rz * g_mean2d[1];
    gp[2] += -cam.fx * x * rz2 * g_mean2d[0] - cam.fy * y * rz2 * g_mean2d[1];
    // J00 = fx/z, J11 = fy/z, J02 = -fx tx/z^2, J12 = -fy ty/z^2 with tx = z clamp(x/z)
    gp[2] += -cam.fx * rz2 * gJ[0] - cam.fy * rz2 * gJ[4];
    const T tx = -pr.J[2] / (cam.fx * rz2), ty = -pr.J[5] / (cam.fy * rz2);
    if (pr.clamp_x) {
      gp[2] += cam.fx * tx * rz3 * gJ[2];  // tx = z L: J02 = -fx L / z
    } else {
      gp[0] += -cam.fx * rz2 * gJ[2];
      gp[2] += T(2) * cam.fx * x * rz3 * gJ[2];
    }
    if (pr.clamp_y) {
      gp[2] += cam.fy * ty * rz3 * gJ[5];
    } else {
      gp[1] += -cam.fy * rz2 * gJ[5];
      gp[2] += T(2) * cam.fy * y * rz3 * gJ[5];
    }
  }
  for (int c = 0; c < 3; ++c) g_mean[c] += cam.R[c] * gp[0] + cam.R[3 + c] * gp[1] + cam.R[6 + c] * gp[2];

  // cov_cam = W Sigma W^T: dL/dSigma = W^T gC W; Sigma = (Rq S)(Rq S)^T
  T gSig[9];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      T acc = 0;
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) acc += cam.R[i * 3 + r] * gC[i * 3 + j] * cam.R[j * 3 + c];
      gSig[r * 3 + c] = acc;
    }
  T Rq[9];
  quat_to_rotmat(quat, Rq);
  T M[9];  // Rq S
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) M[r * 3 + c] = Rq[r * 3 + c] * scale[c];
  // dL/dM = (gSig + gSig^T) M
  T gM[9];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      T acc = 0;
      for (int k = 0; k < 3; ++k) acc += (gSig[r * 3 + k] + gSig[k * 3 + r]) * M[k * 3 + c];
      gM[r * 3 + c] = acc;
    }
  T gR[9];
  for (int c = 0; c < 3; ++c) {
    T gs = 0;
    for (int r = 0; r < 3; ++r) {
      gR[r * 3 + c] = gM[r * 3 + c] * scale[c];
      gs += gM[r * 3 + c] * Rq[r * 3 + c];
    }
    g_scale[c] += gs;
  }
  T gq[4];
  quat_to_rotmat_vjp(quat, gR, gq);
  for (int i = 0; i < 4; ++i) g_quat[i] += gq[i];
}

// sigma = 0.5 (a dx^2 + c dy^2) + b dx dy at pixel centre (px, py).
template <typename T>
GO_HD T pixel_sigma(const T* conic, T dx, T dy) {
  return T(0.5) * (conic[0] * dx * dx + conic[2] * dy * dy) + conic[1] * dx * dy;
}

// alpha of a Gaussian at a pixel, or 0 when it skips the pixel (sigma < 0 or alpha < 1/255).
template <typename T>
GO_HD T pixel_alpha(const T* conic, T opacity, T dx, T dy, T* gauss_out) {
  const T sigma = pixel_sigma(conic, dx, dy);
  if (sigma < 0) return T(0);
  const T g = exp(-sigma);
  const T a = opacity * g;
  *gauss_out = g;
  if (a < alpha_threshold<T>()) return T(0);
  return a < alpha_max<T>() ? a : alpha_max<T>();
}

// Given dL/dalpha at a pixel, accumulates dL/dmean2d, dL/dconic, dL/dopacity. No gradient
// flows where alpha is clamped to alpha_max.
template <typename T>
GO_HD void pixel_alpha_vjp(const T* conic, T opacity, T g, T dx, T dy, T g_alpha, T* g_mean2d, T* g_conic,
                           T* g_opacity) {
  const T raw = opacity * g;
  if (raw > alpha_max<T>()) return;
  *g_opacity += g * g_alpha;
  const T g_sigma = -raw * g_alpha;
  // dx = px - mean_x: dsigma/dmean_x = -(a dx + b dy)
  g_mean2d[0] += -g_sigma * (conic[0] * dx + conic[1] * dy);
  g_mean2d[1] += -g_sigma * (conic[2] * dy + conic[1] * dx);
  g_conic[0] += T(0.5) * g_sigma * dx * dx;
  g_conic[1] += g_sigma * dx * dy;
  g_conic[2] += T(0.5) * g_sigma * dy * dy;
}

// rasterize_backward's tensors as raw pointers, for the kernels of both backends: the op's
// inputs (projected Gaussians, features), the forward's alpha, last ids and tile lists, the
// gradients of its three outputs, and the five gradients it writes.
template <typename T>
struct RasterBackwardArgs {
  const T *means2d, *conics, *depths, *opacities, *features, *alpha;
  const int32_t* last_ids;
  const int64_t* offsets;
  const int32_t* ids;
  const T *g_out_features, *g_out_depth, *g_out_alpha;
  T *g_means2d, *g_conics, *g_depths, *g_opacities, *g_features;
};

}  // namespace splat
}  // namespace gaussocc
