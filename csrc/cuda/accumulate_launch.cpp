// Torch adapters of the CUDA accumulation kernels: input checks, output allocation, stream.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda/accumulate.h"
#include "ops/accumulate_checks.h"

namespace gaussocc {
namespace accum {
namespace {

template <typename T>
DeviceInputs<T> device_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                              const at::Tensor& opacities, const at::Tensor& features, const at::Tensor& valid,
                              const Sizes& sz, at::ArrayRef<double> origin, at::ArrayRef<double> voxel_size,
                              at::IntArrayRef shape, double radius_sigma, bool probabilistic) {
  return {means.data_ptr<T>(), quats.data_ptr<T>(), scales.data_ptr<T>(), opacities.data_ptr<T>(),
          features.data_ptr<T>(), valid.data_ptr<bool>(), sz.B, sz.N, sz.C,
          make_grid<T>(origin, voxel_size, shape), T(radius_sigma), probabilistic};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> accumulate_gaussians_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& valid, at::ArrayRef<double> origin,
    at::ArrayRef<double> voxel_size, at::IntArrayRef shape, double radius_sigma, bool probabilistic) {
  TORCH_CHECK(means.is_cuda(), "accumulate_gaussians (CUDA) needs CUDA tensors, got ", means.device());
  const Sizes sz = check_inputs(means, quats, scales, opacities, features, valid, origin, voxel_size, shape,
                                radius_sigma);
  const c10::cuda::CUDAGuard guard(means.device());
  // The probabilistic forward writes every occupancy value.
  auto occupancy = probabilistic ? at::empty({sz.B, sz.V}, means.options())
                                 : at::zeros({sz.B, sz.V}, means.options());
  auto weight = at::zeros({sz.B, sz.V}, means.options());
  auto wfeat = at::zeros({sz.B, sz.V, sz.C}, means.options());
  auto log_t = at::zeros({sz.B, sz.V}, means.options());
  auto n_opaque = at::zeros({sz.B, sz.V}, means.options().dtype(at::kInt));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "accumulate_gaussians_cuda", [&] {
    const auto in = device_inputs<scalar_t>(means, quats, scales, opacities, features, valid, sz, origin,
                                            voxel_size, shape, radius_sigma, probabilistic);
    C10_CUDA_CHECK(launch_accumulate_forward<scalar_t>(
        in, occupancy.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(), wfeat.data_ptr<scalar_t>(),
        log_t.data_ptr<scalar_t>(), n_opaque.data_ptr<int32_t>(), stream));
  });
  return {occupancy, weight, wfeat, log_t, n_opaque};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> accumulate_gaussians_backward_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& valid, const at::Tensor& log_t, const at::Tensor& n_opaque,
    const at::Tensor& g_occ, const at::Tensor& g_weight, const at::Tensor& g_wfeat, at::ArrayRef<double> origin,
    at::ArrayRef<double> voxel_size, at::IntArrayRef shape, double radius_sigma, bool probabilistic) {
  TORCH_CHECK(means.is_cuda(), "accumulate_gaussians_backward (CUDA) needs CUDA tensors, got ", means.device());
  const Sizes sz = check_inputs(means, quats, scales, opacities, features, valid, origin, voxel_size, shape,
                                radius_sigma);
  const auto dt = means.scalar_type();
  const auto dev = means.device();
  check_tensor(log_t, "log_transmittance", {sz.B, sz.V}, dt, dev);
  check_tensor(n_opaque, "num_opaque", {sz.B, sz.V}, at::kInt, dev);
  check_tensor(g_occ, "grad_occupancy", {sz.B, sz.V}, dt, dev);
  check_tensor(g_weight, "grad_weight", {sz.B, sz.V}, dt, dev);
  check_tensor(g_wfeat, "grad_weighted_features", {sz.B, sz.V, sz.C}, dt, dev);
  const c10::cuda::CUDAGuard guard(dev);
  auto g_means = at::zeros_like(means);
  auto g_quats = at::zeros_like(quats);
  auto g_scales = at::zeros_like(scales);
  auto g_opacities = at::zeros_like(opacities);
  auto g_features = at::zeros_like(features);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(dt, "accumulate_gaussians_backward_cuda", [&] {
    const auto in = device_inputs<scalar_t>(means, quats, scales, opacities, features, valid, sz, origin,
                                            voxel_size, shape, radius_sigma, probabilistic);
    C10_CUDA_CHECK(launch_accumulate_backward<scalar_t>(
        in, log_t.data_ptr<scalar_t>(), n_opaque.data_ptr<int32_t>(), g_occ.data_ptr<scalar_t>(),
        g_weight.data_ptr<scalar_t>(), g_wfeat.data_ptr<scalar_t>(), g_means.data_ptr<scalar_t>(),
        g_quats.data_ptr<scalar_t>(), g_scales.data_ptr<scalar_t>(), g_opacities.data_ptr<scalar_t>(),
        g_features.data_ptr<scalar_t>(), stream));
  });
  return {g_means, g_quats, g_scales, g_opacities, g_features};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) {
  m.impl("accumulate_gaussians", &accumulate_gaussians_cuda);
  m.impl("accumulate_gaussians_backward", &accumulate_gaussians_backward_cuda);
}

}  // namespace accum
}  // namespace gaussocc
