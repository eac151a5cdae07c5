// Input checks and output allocation shared by the CPU and CUDA entry points of the accumulation
// ops. The Python API validates user input; these guard the raw ops against misuse (wrong
// shapes, dtypes, layout, mode).
#pragma once

#include <ATen/ATen.h>

#include "gaussocc/accumulate_math.h"

namespace gaussocc {
namespace accum {

// Shape, dtype, device; contiguous unless `strided` (output gradients are read through their
// strides, so a permuted gradient needs no copy).
inline void check_tensor(const at::Tensor& t, const char* name, at::IntArrayRef shape, at::ScalarType dtype,
                         const at::Device& device, bool strided = false) {
  TORCH_CHECK(t.device() == device, name, " must be on ", device, ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(strided || t.is_contiguous(), name, " must be contiguous");
}

struct Sizes {
  int64_t B, N, C, V;
};

inline Sizes check_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                          const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& valid,
                          at::ArrayRef<double> origin, at::ArrayRef<double> voxel_size, at::IntArrayRef shape,
                          double radius, int64_t mode, int64_t empty_index) {
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
  TORCH_CHECK(radius > 0 && std::isfinite(radius), "radius must be positive and finite, got ", radius);
  TORCH_CHECK(mode == kAdditive || mode == kProbabilistic || mode == kGaussianFormer2,
              "mode must be 0 (additive), 1 (probabilistic) or 2 (gaussianformer2), got ", mode);
  const int64_t B = means.size(0), N = means.size(1), C = features.size(2);
  TORCH_CHECK(mode == kAdditive || (0 <= empty_index && empty_index <= C), "empty_index must be in [0, C = ", C,
              "], got ", empty_index);
  const auto dev = means.device();
  check_tensor(means, "means", {B, N, 3}, dt, dev);
  check_tensor(quats, "quats", {B, N, 4}, dt, dev);
  check_tensor(scales, "scales", {B, N, 3}, dt, dev);
  check_tensor(opacities, "opacities", {B, N}, dt, dev);
  check_tensor(features, "features", {B, N, C}, dt, dev);
  check_tensor(valid, "valid", {B, N}, at::kBool, dev);
  return {B, N, C, shape[0] * shape[1] * shape[2]};
}

// Output channels: C + 1 (probabilistic modes, with the empty channel) or C (additive).
inline int64_t output_channels(const Sizes& sz, int64_t mode) { return mode == kAdditive ? sz.C : sz.C + 1; }

// The forward's outputs: occupancy [B, V] and probs [B, V, C (+1)], and the per-voxel state the
// backward needs (probabilistic modes; [B, 0] otherwise): weight W [B, V], log_t [B, V] (sum of
// log1p(-occ_i) over occ_i < 1), n_opaque [B, V] int32 (count of occ_i >= 1). The
// probabilistic forward writes every occupancy value, so that one is not zero-filled.
struct Outputs {
  at::Tensor occupancy, probs, weight, log_t, n_opaque;
};

inline Outputs allocate_outputs(const at::Tensor& means, const Sizes& sz, int64_t mode) {
  const auto opts = means.options();
  const bool prob = mode != kAdditive;
  const int64_t Vs = prob ? sz.V : 0;
  return {prob ? at::empty({sz.B, sz.V}, opts) : at::zeros({sz.B, sz.V}, opts),
          at::zeros({sz.B, sz.V, output_channels(sz, mode)}, opts), at::zeros({sz.B, Vs}, opts),
          at::zeros({sz.B, Vs}, opts), at::zeros({sz.B, Vs}, opts.dtype(at::kInt))};
}

inline void check_backward_inputs(const at::Tensor& means, const Sizes& sz, int64_t mode, const at::Tensor& probs,
                                  const at::Tensor& weight, const at::Tensor& log_t, const at::Tensor& n_opaque,
                                  const at::Tensor& g_occ, const at::Tensor& g_probs) {
  const auto dt = means.scalar_type();
  const auto dev = means.device();
  const int64_t Vs = mode == kAdditive ? 0 : sz.V;
  const int64_t Cout = output_channels(sz, mode);
  check_tensor(probs, "probs", {sz.B, sz.V, Cout}, dt, dev);
  check_tensor(weight, "weight", {sz.B, Vs}, dt, dev);
  check_tensor(log_t, "log_transmittance", {sz.B, Vs}, dt, dev);
  check_tensor(n_opaque, "num_opaque", {sz.B, Vs}, at::kInt, dev);
  check_tensor(g_occ, "grad_occupancy", {sz.B, sz.V}, dt, dev, /*strided=*/true);
  check_tensor(g_probs, "grad_probs", {sz.B, sz.V, Cout}, dt, dev, /*strided=*/true);
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

template <typename T>
Params<T> make_params(double radius, int64_t mode, int64_t empty_index, double fill) {
  return {int(mode), T(radius), mode == kAdditive ? int64_t(0) : empty_index, T(fill)};
}

}  // namespace accum
}  // namespace gaussocc
