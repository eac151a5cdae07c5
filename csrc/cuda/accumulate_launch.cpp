// Torch adapters of the CUDA accumulation kernels: input checks, output allocation, stream.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda/accumulate.h"
#include "ops/accumulate.h"

namespace gaussocc {
namespace accum {
namespace {

template <typename T>
StridedGrad<T> strided(const at::Tensor& t) {
  return {t.data_ptr<T>(), t.stride(0), t.stride(1), t.dim() > 2 ? t.stride(2) : 0};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> accumulate_gaussians_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& valid, at::ArrayRef<double> origin,
    at::ArrayRef<double> voxel_size, at::IntArrayRef shape, double radius, int64_t mode, int64_t empty_index,
    double fill) {
  TORCH_CHECK(means.is_cuda(), "accumulate_gaussians (CUDA) needs CUDA tensors, got ", means.device());
  const Sizes sz = check_inputs(means, quats, scales, opacities, features, valid, origin, voxel_size, shape,
                                radius, mode, empty_index);
  const c10::cuda::CUDAGuard guard(means.device());
  const Outputs out = allocate_outputs(means, sz, mode);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "accumulate_gaussians_cuda", [&] {
    const auto in = load_inputs<scalar_t>(means, quats, scales, opacities, features, valid, sz, origin, voxel_size,
                                          shape, radius, mode, empty_index, fill);
    launch_accumulate_forward<scalar_t>(in, out.occupancy.data_ptr<scalar_t>(), out.probs.data_ptr<scalar_t>(),
                                        out.weight.data_ptr<scalar_t>(), out.log_t.data_ptr<scalar_t>(),
                                        out.n_opaque.data_ptr<int32_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out.occupancy, out.probs, out.weight, out.log_t, out.n_opaque};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> accumulate_gaussians_backward_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& valid, const at::Tensor& probs, const at::Tensor& weight,
    const at::Tensor& log_t, const at::Tensor& n_opaque, const at::Tensor& g_occ, const at::Tensor& g_probs,
    at::ArrayRef<double> origin, at::ArrayRef<double> voxel_size, at::IntArrayRef shape, double radius,
    int64_t mode, int64_t empty_index, double fill) {
  TORCH_CHECK(means.is_cuda(), "accumulate_gaussians_backward (CUDA) needs CUDA tensors, got ", means.device());
  const Sizes sz = check_inputs(means, quats, scales, opacities, features, valid, origin, voxel_size, shape,
                                radius, mode, empty_index);
  check_backward_inputs(means, sz, mode, probs, weight, log_t, n_opaque, g_occ, g_probs);
  const c10::cuda::CUDAGuard guard(means.device());
  const Grads g = allocate_grads(means, quats, scales, opacities, features, sz);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "accumulate_gaussians_backward_cuda", [&] {
    using T = scalar_t;
    const auto in = load_inputs<T>(means, quats, scales, opacities, features, valid, sz, origin, voxel_size, shape,
                                   radius, mode, empty_index, fill);
    const bool prob = mode != kAdditive;
    launch_accumulate_backward<T>(
        in, probs.data_ptr<T>(), prob ? weight.data_ptr<T>() : nullptr, prob ? log_t.data_ptr<T>() : nullptr,
        prob ? n_opaque.data_ptr<int32_t>() : nullptr, strided<T>(g_occ), strided<T>(g_probs),
        reinterpret_cast<VoxelGrad<T>*>(g.vgrad.data_ptr<T>()), g.means.data_ptr<T>(), g.quats.data_ptr<T>(),
        g.scales.data_ptr<T>(), g.opacities.data_ptr<T>(), g.features.data_ptr<T>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {g.means, g.quats, g.scales, g.opacities, g.features};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) {
  m.impl("accumulate_gaussians", &accumulate_gaussians_cuda);
  m.impl("accumulate_gaussians_backward", &accumulate_gaussians_backward_cuda);
}

}  // namespace accum
}  // namespace gaussocc
