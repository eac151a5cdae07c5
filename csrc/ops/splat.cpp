// Schemas of the splatting ops. Kernels: csrc/cpu/splat.cpp, csrc/cuda/splat_launch.cpp.
// Autograd and fake kernels are registered from Python (src/gaussocc_ops/splat.py).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  // means [B,N,3], quats [B,N,4], scales [B,N,3], opacities [B,N], viewmats [B,V,4,4], Ks [B,V,3,3]
  // -> means2d [B,V,N,2], conics [B,V,N,3], depths [B,V,N], radii [B,V,N,2] int32 (0 = culled)
  m.def(
      "project_gaussians(Tensor means, Tensor quats, Tensor scales, Tensor opacities, Tensor viewmats, "
      "Tensor Ks, int width, int height, float near, float far, float eps2d, bool ortho) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "project_gaussians_backward(Tensor means, Tensor quats, Tensor scales, Tensor viewmats, Tensor Ks, "
      "Tensor radii, Tensor g_means2d, Tensor g_conics, Tensor g_depths, int width, int height, "
      "float eps2d, bool ortho) -> (Tensor, Tensor, Tensor)");
  // -> features [B,V,H,W,C], depth [B,V,H,W], alpha [B,V,H,W], last_ids [B,V,H,W] int32,
  //    tile_offsets [B*V*tiles+1] int64, flat_ids [n_isect] int32 (Gaussians of each tile, by depth)
  m.def(
      "rasterize(Tensor means2d, Tensor conics, Tensor depths, Tensor radii, Tensor opacities, "
      "Tensor features, int width, int height, int tile_size) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "rasterize_backward(Tensor means2d, Tensor conics, Tensor depths, Tensor opacities, Tensor features, "
      "Tensor alpha, Tensor last_ids, Tensor tile_offsets, Tensor flat_ids, Tensor g_features, "
      "Tensor g_depth, Tensor g_alpha, int width, int height, int tile_size) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}
