// Schema of the SNOG accept/reject op (see src/gaussocc_ops/snog.py).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  // candidates [B, T, 2] int32 top-left (row, col), row < 0 = no candidate; positions [B, P, 2]
  // int32 and count [B] int32: patches accepted so far. Returns the updated (positions, count).
  m.def("snog_accept(Tensor candidates, Tensor positions, Tensor count, int patch_size) -> (Tensor, Tensor)");
}
