// Schemas of the Gaussian-to-occupancy ops, their input checks and outputs (declared in
// ops/accumulate.h). Kernels: csrc/cpu/accumulate.cpp, csrc/cuda/accumulate_launch.cpp. Autograd
// and fake kernels are registered from Python (src/gaussocc_ops/_autograd/accumulate.py). The
// math: csrc/include/gaussocc/accumulate_math.h.
#include "ops/accumulate.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>

#include "ops/checks.h"

namespace gaussocc {
namespace accum {

Sizes check_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                   const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& valid,
                   at::ArrayRef<double> origin, at::ArrayRef<double> voxel_size, at::IntArrayRef shape, double radius,
                   int64_t mode, int64_t empty_index) {
  const char* op = "accumulate_gaussians";
  check_dim(op, means, "means", 3, "[B, N, 3]");
  check_dim(op, features, "features", 3, "[B, N, C]");
  check_float_dtype(op, means, "means");
  TORCH_CHECK(origin.size() == 3 && voxel_size.size() == 3 && shape.size() == 3, op,
              ": origin, voxel_size and shape must have 3 entries");
  for (int j = 0; j < 3; ++j) {
    TORCH_CHECK(voxel_size[j] > 0, op, ": voxel_size must be positive, got ", voxel_size);
    TORCH_CHECK(shape[j] > 0, op, ": shape must be positive, got ", shape);
  }
  TORCH_CHECK(radius > 0 && std::isfinite(radius), op, ": radius must be positive and finite, got ", radius);
  TORCH_CHECK(mode == kAdditive || mode == kProbabilistic || mode == kGaussianFormer2, op,
              ": mode must be 0 (additive), 1 (probabilistic) or 2 (gaussianformer2), got ", mode);
  const int64_t B = means.size(0), N = means.size(1), C = features.size(2);
  TORCH_CHECK(mode == kAdditive || (0 <= empty_index && empty_index <= C), op, ": empty_index must be in [0, C = ",
              C, "], got ", empty_index);
  const auto dt = means.scalar_type();
  const auto dev = means.device();
  check_tensor(op, means, "means", {B, N, 3}, dt, dev);
  check_tensor(op, quats, "quats", {B, N, 4}, dt, dev);
  check_tensor(op, scales, "scales", {B, N, 3}, dt, dev);
  check_tensor(op, opacities, "opacities", {B, N}, dt, dev);
  check_tensor(op, features, "features", {B, N, C}, dt, dev);
  check_tensor(op, valid, "valid", {B, N}, at::kBool, dev);
  return {B, N, C, shape[0] * shape[1] * shape[2]};
}

namespace {

// Output channels: C + 1 (probabilistic modes, with the empty channel) or C (additive).
int64_t output_channels(const Sizes& sz, int64_t mode) { return mode == kAdditive ? sz.C : sz.C + 1; }

}  // namespace

Outputs allocate_outputs(const at::Tensor& means, const Sizes& sz, int64_t mode) {
  const auto opts = means.options();
  const bool prob = mode != kAdditive;
  const int64_t Vs = prob ? sz.V : 0;
  return {prob ? at::empty({sz.B, sz.V}, opts) : at::zeros({sz.B, sz.V}, opts),
          at::zeros({sz.B, sz.V, output_channels(sz, mode)}, opts), at::zeros({sz.B, Vs}, opts),
          at::zeros({sz.B, Vs}, opts), at::zeros({sz.B, Vs}, opts.dtype(at::kInt))};
}

void check_backward_inputs(const at::Tensor& means, const Sizes& sz, int64_t mode, const at::Tensor& probs,
                           const at::Tensor& weight, const at::Tensor& log_t, const at::Tensor& n_opaque,
                           const at::Tensor& g_occ, const at::Tensor& g_probs) {
  const char* op = "accumulate_gaussians_backward";
  const auto dt = means.scalar_type();
  const auto dev = means.device();
  const int64_t Vs = mode == kAdditive ? 0 : sz.V;
  const int64_t Cout = output_channels(sz, mode);
  check_tensor(op, probs, "probs", {sz.B, sz.V, Cout}, dt, dev);
  check_tensor(op, weight, "weight", {sz.B, Vs}, dt, dev);
  check_tensor(op, log_t, "log_transmittance", {sz.B, Vs}, dt, dev);
  check_tensor(op, n_opaque, "num_opaque", {sz.B, Vs}, at::kInt, dev);
  check_tensor_any_strides(op, g_occ, "grad_occupancy", {sz.B, sz.V}, dt, dev);
  check_tensor_any_strides(op, g_probs, "grad_probs", {sz.B, sz.V, Cout}, dt, dev);
}

Grads allocate_grads(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                     const at::Tensor& opacities, const at::Tensor& features, const Sizes& sz) {
  return {at::zeros_like(means),     at::zeros_like(quats),    at::zeros_like(scales),
          at::zeros_like(opacities), at::zeros_like(features), at::empty({sz.B, sz.V, 3}, means.options())};
}

}  // namespace accum
}  // namespace gaussocc

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  // means [B,N,3], quats [B,N,4], scales [B,N,3], opacities [B,N], features [B,N,C], valid [B,N] bool;
  // radius: ellipsoid radius in standard deviations (modes 0, 1) or GaussianFormer-2's scale
  // multiplier of the cube (mode 2); mode: 0 additive, 1 probabilistic, 2 gaussianformer2;
  // empty_index: output channel of the empty class (modes 1, 2); fill: GaussianFormer-2's class
  // mixture where the summed weight is <= 1e-9 (mode 2).
  // -> occupancy [B,V], probs [B,V,C+1] (modes 1, 2; [B,V,C] additive), weight [B,V],
  //    log_transmittance [B,V], num_opaque [B,V] int32 (the last three [B,0] in mode 0);
  //    V = X*Y*Z, row-major over (X,Y,Z).
  m.def(
      "accumulate_gaussians(Tensor means, Tensor quats, Tensor scales, Tensor opacities, Tensor features, "
      "Tensor valid, float[] origin, float[] voxel_size, int[] shape, float radius, int mode, int empty_index, "
      "float fill) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // probs, weight, log_transmittance, num_opaque: the forward's outputs; grad_occupancy [B,V] and
  // grad_probs [B,V,C(+1)] may have any strides.
  // -> grad_means [B,N,3], grad_quats [B,N,4], grad_scales [B,N,3], grad_opacities [B,N],
  //    grad_features [B,N,C]
  m.def(
      "accumulate_gaussians_backward(Tensor means, Tensor quats, Tensor scales, Tensor opacities, "
      "Tensor features, Tensor valid, Tensor probs, Tensor weight, Tensor log_transmittance, Tensor num_opaque, "
      "Tensor grad_occupancy, Tensor grad_probs, float[] origin, float[] voxel_size, int[] shape, float radius, "
      "int mode, int empty_index, float fill) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}
