// Torch adapters of the soft-gated lifting CUDA kernels (schema in ops/lift.cpp).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda/lift.h"
#include "ops/lift.h"

namespace gaussocc {
namespace {

at::Tensor soft_gated_lift_cuda(const at::Tensor& features, const at::Tensor& depth, const at::Tensor& ref_points,
                                const at::Tensor& d_proj, const at::Tensor& valid, const at::Tensor& offsets,
                                const at::Tensor& attn, const at::Tensor& alpha, const at::Tensor& sigma) {
  TORCH_CHECK(features.is_cuda(), "soft_gated_lift_cuda: inputs must be CUDA tensors");
  const c10::cuda::CUDAGuard guard(features.device());
  check_soft_gated_lift_inputs(features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma);
  auto out = at::zeros({features.size(0), offsets.size(1), features.size(3)}, features.options());
  if (out.numel() == 0 || offsets.size(2) == 0) return out;
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "soft_gated_lift_cuda", [&] {
    cuda::soft_gated_lift_forward<scalar_t>(
        lift_args<scalar_t>(features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma),
        out.data_ptr<scalar_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
soft_gated_lift_backward_cuda(const at::Tensor& grad_out, const at::Tensor& features, const at::Tensor& depth,
                              const at::Tensor& ref_points, const at::Tensor& d_proj, const at::Tensor& valid,
                              const at::Tensor& offsets, const at::Tensor& attn, const at::Tensor& alpha,
                              const at::Tensor& sigma) {
  TORCH_CHECK(features.is_cuda(), "soft_gated_lift_backward_cuda: inputs must be CUDA tensors");
  const c10::cuda::CUDAGuard guard(features.device());
  check_soft_gated_lift_inputs(features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma);
  check_soft_gated_lift_grad(grad_out, features, offsets);
  auto g_features = at::zeros_like(features);
  auto g_depth = at::zeros_like(depth);
  auto g_offsets = at::zeros_like(offsets);
  auto g_attn = at::zeros_like(attn);
  auto g_d_proj_k = at::zeros_like(attn);
  auto g_alpha_k = at::zeros_like(attn);
  auto g_sigma_k = at::zeros_like(attn);
  if (attn.numel() > 0) {
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "soft_gated_lift_backward_cuda", [&] {
      const cuda::LiftGrads<scalar_t> g{g_features.data_ptr<scalar_t>(), g_depth.data_ptr<scalar_t>(),
                                        g_d_proj_k.data_ptr<scalar_t>(), g_offsets.data_ptr<scalar_t>(),
                                        g_attn.data_ptr<scalar_t>(),     g_alpha_k.data_ptr<scalar_t>(),
                                        g_sigma_k.data_ptr<scalar_t>()};
      cuda::soft_gated_lift_backward<scalar_t>(
          lift_args<scalar_t>(features, depth, ref_points, d_proj, valid, offsets, attn, alpha, sigma),
          grad_out.data_ptr<scalar_t>(), g, stream);
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {g_features,
          g_depth,
          g_d_proj_k.sum(-1),
          g_offsets,
          g_attn,
          g_alpha_k.sum().reshape(alpha.sizes()),
          g_sigma_k.sum().reshape(sigma.sizes())};
}

}  // namespace
}  // namespace gaussocc

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) {
  m.impl("soft_gated_lift", &gaussocc::soft_gated_lift_cuda);
  m.impl("soft_gated_lift_backward", &gaussocc::soft_gated_lift_backward_cuda);
}
