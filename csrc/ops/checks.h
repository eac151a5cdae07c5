// Tensor checks shared by every op's CPU kernels and CUDA adapters (declared per op in
// ops/<op>.h, defined in ops/<op>.cpp next to the op's schema).
//
// The ops are the layer below the Python API: it validates user input (values included) once and
// hands the kernels flattened, contiguous tensors of one floating dtype. These checks guard the
// raw ops against misuse (torch.ops.gaussocc.* called directly): shapes, dtypes, devices and
// layout, never values that would need a pass over the data.
//
// Contiguity policy: every kernel takes contiguous tensors and checks that it got them (a
// non-contiguous argument is an error naming it); no kernel copies its inputs into a contiguous
// layout behind the caller's back. The Python wrappers pass contiguous tensors. The one exception:
// output gradients that a backward reads through their strides (check_tensor_any_strides).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <string>

namespace gaussocc {

// The dtype as Python spells it ("torch.int32"), for error messages.
inline std::string dtype_name(at::ScalarType dtype) {
  return "torch." + std::string(c10::getDtypeNames(dtype).first);
}

// `t` has exactly `shape` and `dtype` and lives on `device`, with any strides: the one exception
// to the contiguity policy, for output gradients that a backward reads through their strides (so
// that a permuted gradient needs no copy). Errors read "<op>: <name> must ...".
inline void check_tensor_any_strides(const char* op, const at::Tensor& t, const char* name, at::IntArrayRef shape,
                                     at::ScalarType dtype, const at::Device& device) {
  TORCH_CHECK(t.device() == device, op, ": ", name, " must be on ", device, ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, op, ": ", name, " must have dtype ", dtype_name(dtype), ", got ",
              dtype_name(t.scalar_type()));
  TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must have shape ", shape, ", got ", t.sizes());
}

// `t` has exactly `shape` and `dtype`, lives on `device` and is contiguous.
inline void check_tensor(const char* op, const at::Tensor& t, const char* name, at::IntArrayRef shape,
                         at::ScalarType dtype, const at::Device& device) {
  check_tensor_any_strides(op, t, name, shape, dtype, device);
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

// The compute dtype of the floating-point kernels: float32 or float64.
inline void check_float_dtype(const char* op, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": ", name,
              " must be float32 or float64, got ", dtype_name(t.scalar_type()));
}

// `t` has `dim` dimensions (before its sizes are read to build the expected shape).
inline void check_dim(const char* op, const at::Tensor& t, const char* name, int64_t dim, const char* layout) {
  TORCH_CHECK(t.dim() == dim, op, ": ", name, " must be ", layout, ", got ", t.sizes());
}

}  // namespace gaussocc
