// Quaternion (w, x, y, z) -> rotation matrix and its vector-Jacobian product, shared by every
// kernel that builds covariances from quaternions (splatting, accumulation).
#pragma once

#include <cmath>

#include "gaussocc/common.h"

namespace gaussocc {

// Rotation matrix (row-major) of the normalised quaternion (w, x, y, z).
template <typename T>
GO_HD void quat_to_rotmat(const T* q_in, T* R) {
  T n = sqrt(q_in[0] * q_in[0] + q_in[1] * q_in[1] + q_in[2] * q_in[2] + q_in[3] * q_in[3]);
  T w = q_in[0] / n, x = q_in[1] / n, y = q_in[2] / n, z = q_in[3] / n;
  R[0] = 1 - 2 * (y * y + z * z);
  R[1] = 2 * (x * y - w * z);
  R[2] = 2 * (x * z + w * y);
  R[3] = 2 * (x * y + w * z);
  R[4] = 1 - 2 * (x * x + z * z);
  R[5] = 2 * (y * z - w * x);
  R[6] = 2 * (x * z - w * y);
  R[7] = 2 * (y * z + w * x);
  R[8] = 1 - 2 * (x * x + y * y);
}

// Gradient w.r.t. the raw (unnormalised) quaternion given the gradient w.r.t. R.
template <typename T>
GO_HD void quat_to_rotmat_vjp(const T* q_in, const T* gR, T* gq) {
  T n = sqrt(q_in[0] * q_in[0] + q_in[1] * q_in[1] + q_in[2] * q_in[2] + q_in[3] * q_in[3]);
  T w = q_in[0] / n, x = q_in[1] / n, y = q_in[2] / n, z = q_in[3] / n;
  // d R / d (w, x, y, z) of the normalised quaternion
  T gw = 2 * (-z * gR[1] + y * gR[2] + z * gR[3] - x * gR[5] - y * gR[6] + x * gR[7]);
  T gx = 2 * (y * gR[1] + z * gR[2] + y * gR[3] - 2 * x * gR[4] - w * gR[5] + z * gR[6] + w * gR[7] -
              2 * x * gR[8]);
  T gy = 2 * (-2 * y * gR[0] + x * gR[1] + w * gR[2] + x * gR[3] + z * gR[5] - w * gR[6] + z * gR[7] -
              2 * y * gR[8]);
  T gz = 2 * (-2 * z * gR[0] - w * gR[1] + x * gR[2] + w * gR[3] - 2 * z * gR[4] + y * gR[5] + x * gR[6] +
              y * gR[7]);
  // through the normalisation q / |q|
  T dot = w * gw + x * gx + y * gy + z * gz;
  gq[0] = (gw - w * dot) / n;
  gq[1] = (gx - x * dot) / n;
  gq[2] = (gy - y * dot) / n;
  gq[3] = (gz - z * dot) / n;
}

}  // namespace gaussocc
