// Schema of the voxel ray caster (first non-empty voxel along each ray). Not differentiable.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  // labels [B, X, Y, Z] int64; origins, directions [B, R, 3] float (unit directions);
  // grid_origin, voxel_size: 3 floats each. Returns (distance [B, R], label [B, R] int64) with
  // label -1 and distance +inf for rays that hit nothing within max_distance.
  m.def(
      "raycast(Tensor labels, Tensor origins, Tensor directions, float[] grid_origin, "
      "float[] voxel_size, int empty_label, float max_distance) -> (Tensor, Tensor)");
}
