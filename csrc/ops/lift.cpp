// Soft-gated lifting (SGR-OCC Eq. 1-2):
//   out[b, q] = sum_k attn[b, q, k] * G(d_proj[b, q], D(p_k)) * F(p_k)
// with p_k = ref[b, q] + off[b, q, k],
// G(a, d) = alpha * exp(-(a - d)^2 / (2 sigma^2)) and D, F bilinear reads of the depth and
// feature maps (convention in include/gaussocc/lift_math.h). Queries with valid == false give 0.
//
// Layout (all contiguous, one floating dtype, one device):
//   features [B, H, W, C]  depth [B, H, W]  ref_points [B, Q, 2] (x, y pixels)  d_proj [B, Q]
//   valid [B, Q] bool  offsets [B, Q, K, 2]  attn [B, Q, K]  alpha []  sigma []
// The backward returns the gradients of features, depth, d_proj, offsets, attn, alpha and sigma;
// the gradient of ref_points is the sum of the offsets' gradient over K.
#include "ops/lift.h"

#include <torch/library.h>

#include "ops/checks.h"

namespace gaussocc {

void check_soft_gated_lift_inputs(const at::Tensor& features, const at::Tensor& depth, const at::Tensor& ref_points,
                                  const at::Tensor& d_proj, const at::Tensor& valid, const at::Tensor& offsets,
                                  const at::Tensor& attn, const at::Tensor& alpha, const at::Tensor& sigma) {
  const char* op = "soft_gated_lift";
  check_dim(op, features, "features", 4, "[B, H, W, C]");
  check_dim(op, offsets, "offsets", 4, "[B, Q, K, 2]");
  check_float_dtype(op, features, "features");
  const int64_t B = features.size(0), H = features.size(1), W = features.size(2), C = features.size(3);
  const int64_t Q = offsets.size(1), K = offsets.size(2);
  const auto dt = features.scalar_type();
  const auto dev = features.device();
  check_tensor(op, features, "features", {B, H, W, C}, dt, dev);
  check_tensor(op, depth, "depth", {B, H, W}, dt, dev);
  check_tensor(op, ref_points, "ref_points", {B, Q, 2}, dt, dev);
  check_tensor(op, d_proj, "d_proj", {B, Q}, dt, dev);
  check_tensor(op, valid, "valid", {B, Q}, at::kBool, dev);
  check_tensor(op, offsets, "offsets", {B, Q, K, 2}, dt, dev);
  check_tensor(op, attn, "attn", {B, Q, K}, dt, dev);
  TORCH_CHECK(alpha.numel() == 1 && sigma.numel() == 1, op, ": alpha and sigma must hold one value each");
  check_tensor(op, alpha, "alpha", alpha.sizes(), dt, dev);
  check_tensor(op, sigma, "sigma", sigma.sizes(), dt, dev);
}

void check_soft_gated_lift_grad(const at::Tensor& grad_out, const at::Tensor& features, const at::Tensor& offsets) {
  check_tensor("soft_gated_lift_backward", grad_out, "grad_out",
               {features.size(0), offsets.size(1), features.size(3)}, features.scalar_type(), features.device());
}

}  // namespace gaussocc

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  m.def(
      "soft_gated_lift(Tensor features, Tensor depth, Tensor ref_points, Tensor d_proj, "
      "Tensor valid, Tensor offsets, Tensor attn, Tensor alpha, Tensor sigma) -> Tensor");
  m.def(
      "soft_gated_lift_backward(Tensor grad_out, Tensor features, Tensor depth, "
      "Tensor ref_points, Tensor d_proj, Tensor valid, Tensor offsets, Tensor attn, "
      "Tensor alpha, Tensor sigma) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}
