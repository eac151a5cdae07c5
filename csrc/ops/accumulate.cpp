// Schemas of the Gaussian-to-occupancy ops. Kernels: csrc/cpu/accumulate.cpp,
// csrc/cuda/accumulate_launch.cpp. Autograd and fake kernels are registered from Python
// (src/gaussocc_ops/accumulate.py). The math: csrc/include/gaussocc/accumulate_math.h.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  // means [B,N,3], quats [B,N,4], scales [B,N,3], opacities [B,N], features [B,N,C], valid [B,N] bool;
  // radius: ellipsoid radius in standard deviations (modes 0, 1) or GaussianFormer-2's scale
  // multiplier of the cube (mode 2); mode: 0 additive, 1 probabilistic, 2 gaussianformer2;
  // empty_index: output channel of the empty class (modes 1, 2); fill: GaussianFormer-2's class
  // mixture where the summed weight is <= 1e-9 (mode 2).
  // -> occupancy [B,V], probs [B,V,C+1] (modes 1, 2; [B,V,C] additive), weight [B,V],
  //    log_transmittance [B,V], num_opaque [B,V] int32 (the last three [B,0] in mode 0);
  //    V = X*Y*Z, row-major over (X,Y,Z).
  m.def(
      "accumulate_gaussians(Tensor means, Tensor quats, Tensor scales, Tensor opacities, Tensor features, "
      "Tensor valid, float[] origin, float[] voxel_size, int[] shape, float radius, int mode, int empty_index, "
      "float fill) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // probs, weight, log_transmittance, num_opaque: the forward's outputs; grad_occupancy [B,V] and
  // grad_probs [B,V,C(+1)] may have any strides.
  // -> grad_means [B,N,3], grad_quats [B,N,4], grad_scales [B,N,3], grad_opacities [B,N],
  //    grad_features [B,N,C]
  m.def(
      "accumulate_gaussians_backward(Tensor means, Tensor quats, Tensor scales, Tensor opacities, "
      "Tensor features, Tensor valid, Tensor probs, Tensor weight, Tensor log_transmittance, Tensor num_opaque, "
      "Tensor grad_occupancy, Tensor grad_probs, float[] origin, float[] voxel_size, int[] shape, float radius, "
      "int mode, int empty_index, float fill) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}
