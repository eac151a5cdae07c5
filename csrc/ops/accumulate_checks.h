// Input checks shared by the CPU and CUDA entry points of the accumulation ops. The Python API
// validates user input; these guard the raw ops against misuse (wrong shapes, dtypes, layout).
#pragma once

#include <ATen/ATen.h>

#include "gaussocc/accumulate_math.h"

namespace gaussocc {
namespace accum {

inline void check_tensor(const at::Tensor& t, const char* name, at::IntArrayRef shape, at::ScalarType dtype,
                         const at::Device& device) {
  TORCH_CHECK(t.device() == device, name, " must be on ", device, ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

struct Sizes {
  int64_t B, N, C, V;
};

inline Sizes check_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                          const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& valid,
                          at::ArrayRef<double> origin, at::ArrayRef<double> voxel_size, at::IntArrayRef shape,
                          double radius_sigma) {
  TORCH_CHECK(means.dim() == 3 && means.size(2) == 3, "means must be [B, N, 3], got ", means.sizes());
  TORCH_CHECK(features.dim() == 3, "features must be [B, N, C], got ", features.sizes());
  const auto dt = means.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, "accumulation kernels take float32 or float64, got ", dt);
  TORCH_CHECK(origin.size() == 3 && voxel_size.size() == 3 && shape.size() == 3,
              "origin, voxel_size and shape must have 3 entries");
  for (int j = 0; j < 3; ++j) {
    TORCH_CHECK(voxel_size[j] > 0, "voxel_size must be positive, got ", voxel_size);
    TORCH_CHECK(shape[j] > 0, "shape must be positive, got ", shape);
  }
  TORCH_CHECK(radius_sigma > 0 && std::isfinite(radius_sigma), "radius_sigma must be positive and finite");
  const int64_t B = means.size(0), N = means.size(1), C = features.size(2);
  const auto dev = means.device();
  check_tensor(means, "means", {B, N, 3}, dt, dev);
  check_tensor(quats, "quats", {B, N, 4}, dt, dev);
  check_tensor(scales, "scales", {B, N, 3}, dt, dev);
  check_tensor(opacities, "opacities", {B, N}, dt, dev);
  check_tensor(features, "features", {B, N, C}, dt, dev);
  check_tensor(valid, "valid", {B, N}, at::kBool, dev);
  return {B, N, C, shape[0] * shape[1] * shape[2]};
}

template <typename T>
Grid<T> make_grid(at::ArrayRef<double> origin, at::ArrayRef<double> voxel_size, at::IntArrayRef shape) {
  Grid<T> g;
  for (int j = 0; j < 3; ++j) {
    g.origin[j] = T(origin[j]);
    g.size[j] = T(voxel_size[j]);
    g.dims[j] = shape[j];
  }
  return g;
}

}  // namespace accum
}  // namespace gaussocc
