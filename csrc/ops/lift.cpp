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

namespace gaussocc {

namespace {

void check_shape(const char* name, const at::Tensor& t, at::IntArrayRef shape) {
  TORCH_CHECK(t.sizes() == shape, "soft_gated_lift: ", name, " must have shape ", shape, ", got ",
              t.sizes());
}

}  // namespace

void check_soft_gated_lift_inputs(const at::Tensor& features, const at::Tensor& depth,
                                  const at::Tensor& ref_points, const at::Tensor& d_proj,
                                  const at::Tensor& valid, const at::Tensor& offsets,
                                  const at::Tensor& attn, const at::Tensor& alpha,
                                  const at::Tensor& sigma) {
  TORCH_CHECK(features.dim() == 4, "soft_gated_lift: features must be [B, H, W, C], got ",
              features.sizes());
  TORCH_CHECK(offsets.dim() == 4 && offsets.size(3) == 2,
              "soft_gated_lift: offsets must be [B, Q, K, 2], got ", offsets.sizes());
  const int64_t B = features.size(0), H = features.size(1), W = features.size(2);
  const int64_t Q = offsets.size(1), K = offsets.size(2);
  check_shape("depth", depth, {B, H, W});
  check_shape("ref_points", ref_points, {B, Q, 2});
  check_shape("d_proj", d_proj, {B, Q});
  check_shape("valid", valid, {B, Q});
  check_shape("offsets", offsets, {B, Q, K, 2});
  check_shape("attn", attn, {B, Q, K});
  TORCH_CHECK(alpha.numel() == 1 && sigma.numel() == 1,
              "soft_gated_lift: alpha and sigma must hold one value each");
  TORCH_CHECK(valid.scalar_type() == at::kBool, "soft_gated_lift: valid must be bool");
  const auto dtype = features.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble,
              "soft_gated_lift: features must be float32 or float64, got ", dtype);
  const at::Tensor* floats[] = {&depth, &ref_points, &d_proj, &offsets, &attn, &alpha, &sigma};
  for (const at::Tensor* t : floats)
    TORCH_CHECK(t->scalar_type() == dtype, "soft_gated_lift: all inputs must be ", dtype);
  const at::Tensor* all[] = {&features, &depth, &ref_points, &d_proj, &valid,
                             &offsets,  &attn,  &alpha,      &sigma};
  for (const at::Tensor* t : all) {
    TORCH_CHECK(t->device() == features.device(), "soft_gated_lift: all inputs must be on ",
                features.device());
    TORCH_CHECK(t->is_contiguous(), "soft_gated_lift: inputs must be contiguous");
  }
}

void check_soft_gated_lift_grad(const at::Tensor& grad_out, const at::Tensor& features,
                                const at::Tensor& offsets) {
  check_shape("grad_out", grad_out, {features.size(0), offsets.size(1), features.size(3)});
  TORCH_CHECK(grad_out.scalar_type() == features.scalar_type(),
              "soft_gated_lift_backward: grad_out must be ", features.scalar_type());
  TORCH_CHECK(grad_out.device() == features.device() && grad_out.is_contiguous(),
              "soft_gated_lift_backward: grad_out must be contiguous on ", features.device());
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
