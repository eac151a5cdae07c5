// Schemas of the Gaussian-to-occupancy ops. Kernels: csrc/cpu/accumulate.cpp,
// csrc/cuda/accumulate_launch.cpp. Autograd and fake kernels are registered from Python
// (src/gaussocc_ops/accumulate.py).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  // means [B,N,3], quats [B,N,4], scales [B,N,3], opacities [B,N], features [B,N,C], valid [B,N] bool
  // -> occupancy [B,V] (1 - prod(1 - alpha); zeros unless probabilistic), weight [B,V] (sum alpha),
  //    weighted_features [B,V,C] (sum alpha c), log_transmittance [B,V] (sum log1p(-alpha) over
  //    alpha < 1), num_opaque [B,V] int32 (count of alpha >= 1); V = X*Y*Z, row-major over (X,Y,Z).
  m.def(
      "accumulate_gaussians(Tensor means, Tensor quats, Tensor scales, Tensor opacities, Tensor features, "
      "Tensor valid, float[] origin, float[] voxel_size, int[] shape, float radius_sigma, bool probabilistic) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // -> grad_means [B,N,3], grad_quats [B,N,4], grad_scales [B,N,3], grad_opacities [B,N],
  //    grad_features [B,N,C]
  m.def(
      "accumulate_gaussians_backward(Tensor means, Tensor quats, Tensor scales, Tensor opacities, "
      "Tensor features, Tensor valid, Tensor log_transmittance, Tensor num_opaque, Tensor grad_occupancy, "
      "Tensor grad_weight, Tensor grad_weighted_features, float[] origin, float[] voxel_size, int[] shape, "
      "float radius_sigma, bool probabilistic) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}
