// Schema of the voxel ray caster (first non-empty voxel along each ray; not differentiable) and
// its input checks and outputs (ops/raycast.h). Kernels: csrc/cpu/raycast.cpp, csrc/cuda/raycast_launch.cpp.
#include "ops/raycast.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/checks.h"

namespace gaussocc {

std::tuple<at::Tensor, at::Tensor> raycast_outputs(const at::Tensor& labels, const at::Tensor& origins,
                                                   const at::Tensor& directions, at::ArrayRef<double> grid_origin,
                                                   at::ArrayRef<double> voxel_size) {
  const char* op = "raycast";
  check_dim(op, labels, "labels", 4, "[B, X, Y, Z]");
  check_dim(op, origins, "origins", 3, "[B, R, 3]");
  check_float_dtype(op, origins, "origins");
  const int64_t B = labels.size(0), R = origins.size(1);
  const auto dev = labels.device();
  check_tensor(op, labels, "labels", labels.sizes(), at::kLong, dev);
  check_tensor(op, origins, "origins", {B, R, 3}, origins.scalar_type(), dev);
  check_tensor(op, directions, "directions", {B, R, 3}, origins.scalar_type(), dev);
  TORCH_CHECK(grid_origin.size() == 3 && voxel_size.size() == 3, op,
              ": grid_origin and voxel_size must have 3 entries");
  for (int a = 0; a < 3; ++a)
    TORCH_CHECK(voxel_size[a] > 0, op, ": voxel_size must be positive, got ", voxel_size);
  return {at::empty({B, R}, origins.options()), at::empty({B, R}, origins.options().dtype(at::kLong))};
}

}  // namespace gaussocc

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  // labels [B, X, Y, Z] int64; origins, directions [B, R, 3] float (unit directions);
  // grid_origin, voxel_size: 3 floats each. Returns (distance [B, R], label [B, R] int64) with
  // label -1 and distance +inf for rays that hit nothing within max_distance.
  m.def(
      "raycast(Tensor labels, Tensor origins, Tensor directions, float[] grid_origin, "
      "float[] voxel_size, int empty_label, float max_distance) -> (Tensor, Tensor)");
}
