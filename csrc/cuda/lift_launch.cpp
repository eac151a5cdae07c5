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

at::Tensor soft_gated_lift_cuda(const at::Tensor& features, const at::Tensor& depth,
                                const at::Tensor& ref_points, const at::Tensor& d_proj,
                                const at::Tensor& valid, const at::Tensor& offsets,
                                const at::Tensor& attn, const at::Tensor& alpha,
                                const at::Tensor& sigma) {
  check_soft_gated_lift_inputs(features, depth, ref_points, d_proj, valid, offsets, attn, alpha,
                               sigma);
  TORCH_CHECK(features.is_cuda(), "soft_gated_lift_cuda: inputs must be CUDA tensors");
  const c10::cuda::CUDAGuard guard(features.device());
  const int64_t B = features.size(0), H = features.size(1), W = features.size(2);
  const int64_t C = features.size(3), Q = offsets.size(1), K = offsets.size(2);
  auto out = at::zeros({B, Q, C}, features.options());
  if (out.numel() == 0 || K == 0) return out;
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "soft_gated_lift_cuda", [&] {
    cuda::soft_gated_lift_forward<scalar_t>(
        features.data_ptr<scalar_t>(), depth.data_ptr<scalar_t>(),
        ref_points.data_ptr<scalar_t>(), d_proj.data_ptr<scalar_t>(), valid.data_ptr<bool>(),
        offsets.data_ptr<scalar_t>(), attn.data_ptr<scalar_t>(), alpha.data_ptr<scalar_t>(),
        sigma.data_ptr<scalar_t>(), B, H, W, C, Q, K, out.data_ptr<scalar_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
soft_gated_lift_backward_cuda(const at::Tensor& grad_out, const at::Tensor& features,
                              const at::Tensor& depth, const at::Tensor& ref_points,
                              const at::Tensor& d_proj, const at::Tensor& valid,
                              const at::Tensor& offsets, const at::Tensor& attn,
                              const at::Tensor& alpha, const at::Tensor& sigma) {
  check_soft_gated_lift_inputs(features, depth, ref_points, d_proj, valid, offsets, attn, alpha,
                               sigma);
  check_soft_gated_lift_grad(grad_out, features, offsets);
  TORCH_CHECK(features.is_cuda(), "soft_gated_lift_backward_cuda: inputs must be CUDA tensors");
  const c10::cuda::CUDAGuard guard(features.device());
  const int64_t B = features.size(0), H = features.size(1), W = features.size(2);
  const int64_t C = features.size(3), Q = offsets.size(1), K = offsets.size(2);
  auto g_features = at::zeros_like(features);
  auto g_depth = at::zeros_like(depth);
  auto g_offsets = at::zeros_like(offsets);
  auto g_attn = at::zeros_like(attn);
  auto g_d_proj_k = at::zeros_like(attn);
  auto g_alpha_k = at::zeros_like(attn);
  auto g_sigma_k = at::zeros_like(attn);
  if (B * Q * K > 0) {
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "soft_gated_lift_backward_cuda", [&] {
      cuda::soft_gated_lift_backward<scalar_t>(
          grad_out.data_ptr<scalar_t>(), features.data_ptr<scalar_t>(),
          depth.data_ptr<scalar_t>(), ref_points.data_ptr<scalar_t>(),
          d_proj.data_ptr<scalar_t>(), valid.data_ptr<bool>(), offsets.data_ptr<scalar_t>(),
          attn.data_ptr<scalar_t>(), alpha.data_ptr<scalar_t>(), sigma.data_ptr<scalar_t>(), B,
          H, W, C, Q, K, g_features.data_ptr<scalar_t>(), g_depth.data_ptr<scalar_t>(),
          g_d_proj_k.data_ptr<scalar_t>(), g_offsets.data_ptr<scalar_t>(),
          g_attn.data_ptr<scalar_t>(), g_alpha_k.data_ptr<scalar_t>(),
          g_sigma_k.data_ptr<scalar_t>(), stream);
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
