// Schemas of the splatting ops, their input checks and outputs (declared in ops/splat.h). Kernels:
// csrc/cpu/splat.cpp, csrc/cuda/splat_launch.cpp. Autograd and fake kernels are registered from
// Python (src/gaussocc_ops/_autograd/splat.py).
#include "ops/splat.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "gaussocc/splat_math.h"
#include "ops/checks.h"

namespace gaussocc {
namespace {

void check_image_size(const char* op, int64_t height, int64_t width) {
  TORCH_CHECK(height > 0 && width > 0, op, ": height and width must be positive, got ", height, " and ", width);
}

RasterSizes check_raster_common(const char* op, const at::Tensor& means2d, const at::Tensor& conics,
                                const at::Tensor& depths, const at::Tensor& opacities, const at::Tensor& features,
                                int64_t height, int64_t width, int64_t tile_size) {
  check_dim(op, depths, "depths", 3, "[B, V, N]");
  check_dim(op, features, "features", 3, "[B, N, C]");
  check_float_dtype(op, means2d, "means2d");
  check_image_size(op, height, width);
  TORCH_CHECK(tile_size == splat::kTileSize, op, ": tile_size must be ", splat::kTileSize,
              " (the one tile size of every backend), got ", tile_size);
  const int64_t B = depths.size(0), V = depths.size(1), N = depths.size(2), C = features.size(2);
  const auto dt = means2d.scalar_type();
  const auto dev = means2d.device();
  check_tensor(op, means2d, "means2d", {B, V, N, 2}, dt, dev);
  check_tensor(op, conics, "conics", {B, V, N, 3}, dt, dev);
  check_tensor(op, depths, "depths", {B, V, N}, dt, dev);
  check_tensor(op, opacities, "opacities", {B, N}, dt, dev);
  check_tensor(op, features, "features", {B, N, C}, dt, dev);
  return {B, V, N, C};
}

ProjectSizes check_project_common(const char* op, const at::Tensor& means, const at::Tensor& quats,
                                  const at::Tensor& scales, const at::Tensor& viewmats, const at::Tensor& Ks,
                                  int64_t height, int64_t width) {
  check_dim(op, means, "means", 3, "[B, N, 3]");
  check_dim(op, viewmats, "viewmats", 4, "[B, V, 4, 4]");
  check_float_dtype(op, means, "means");
  check_image_size(op, height, width);
  const int64_t B = means.size(0), N = means.size(1), V = viewmats.size(1);
  const auto dt = means.scalar_type();
  const auto dev = means.device();
  check_tensor(op, means, "means", {B, N, 3}, dt, dev);
  check_tensor(op, quats, "quats", {B, N, 4}, dt, dev);
  check_tensor(op, scales, "scales", {B, N, 3}, dt, dev);
  check_tensor(op, viewmats, "viewmats", {B, V, 4, 4}, dt, dev);
  check_tensor(op, Ks, "Ks", {B, V, 3, 3}, dt, dev);
  return {B, N, V};
}

}  // namespace

ProjectSizes check_project_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                  const at::Tensor& opacities, const at::Tensor& viewmats, const at::Tensor& Ks,
                                  int64_t height, int64_t width) {
  const char* op = "project_gaussians";
  const auto sz = check_project_common(op, means, quats, scales, viewmats, Ks, height, width);
  check_tensor(op, opacities, "opacities", {sz.B, sz.N}, means.scalar_type(), means.device());
  return sz;
}

ProjectSizes check_project_backward_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                           const at::Tensor& viewmats, const at::Tensor& Ks, const at::Tensor& radii,
                                           const at::Tensor& g_means2d, const at::Tensor& g_conics,
                                           const at::Tensor& g_depths, int64_t height, int64_t width) {
  const char* op = "project_gaussians_backward";
  const auto sz = check_project_common(op, means, quats, scales, viewmats, Ks, height, width);
  const auto dt = means.scalar_type();
  const auto dev = means.device();
  check_tensor(op, radii, "radii", {sz.B, sz.V, sz.N, 2}, at::kInt, dev);
  check_tensor(op, g_means2d, "g_means2d", {sz.B, sz.V, sz.N, 2}, dt, dev);
  check_tensor(op, g_conics, "g_conics", {sz.B, sz.V, sz.N, 3}, dt, dev);
  check_tensor(op, g_depths, "g_depths", {sz.B, sz.V, sz.N}, dt, dev);
  return sz;
}

RasterSizes check_raster_inputs(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths,
                                const at::Tensor& radii, const at::Tensor& opacities, const at::Tensor& features,
                                int64_t height, int64_t width, int64_t tile_size) {
  const char* op = "rasterize";
  const auto sz = check_raster_common(op, means2d, conics, depths, opacities, features, height, width, tile_size);
  check_tensor(op, radii, "radii", {sz.B, sz.V, sz.N, 2}, at::kInt, means2d.device());
  return sz;
}

RasterSizes check_raster_backward_inputs(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& alpha, const at::Tensor& last_ids, const at::Tensor& offsets,
    const at::Tensor& ids, const at::Tensor& g_feat, const at::Tensor& g_depth, const at::Tensor& g_alpha,
    int64_t height, int64_t width, int64_t tile_size) {
  const char* op = "rasterize_backward";
  const auto sz = check_raster_common(op, means2d, conics, depths, opacities, features, height, width, tile_size);
  const auto dt = means2d.scalar_type();
  const auto dev = means2d.device();
  const int64_t tiles = ((width + tile_size - 1) / tile_size) * ((height + tile_size - 1) / tile_size);
  check_tensor(op, alpha, "alpha", {sz.B, sz.V, height, width}, dt, dev);
  check_tensor(op, last_ids, "last_ids", {sz.B, sz.V, height, width}, at::kInt, dev);
  check_tensor(op, offsets, "tile_offsets", {sz.B * sz.V * tiles + 1}, at::kLong, dev);
  check_dim(op, ids, "flat_ids", 1, "[n_isect]");
  check_tensor(op, ids, "flat_ids", {ids.size(0)}, at::kInt, dev);
  check_tensor(op, g_feat, "g_features", {sz.B, sz.V, height, width, sz.C}, dt, dev);
  check_tensor(op, g_depth, "g_depth", {sz.B, sz.V, height, width}, dt, dev);
  check_tensor(op, g_alpha, "g_alpha", {sz.B, sz.V, height, width}, dt, dev);
  return sz;
}

ProjectOutputs project_outputs(const at::Tensor& means, const ProjectSizes& sz) {
  const auto opts = means.options();
  return {at::empty({sz.B, sz.V, sz.N, 2}, opts), at::empty({sz.B, sz.V, sz.N, 3}, opts),
          at::empty({sz.B, sz.V, sz.N}, opts), at::empty({sz.B, sz.V, sz.N, 2}, opts.dtype(at::kInt))};
}

RasterOutputs raster_outputs(const at::Tensor& means2d, const RasterSizes& sz, int64_t height, int64_t width) {
  const auto opts = means2d.options();
  return {at::empty({sz.B, sz.V, height, width, sz.C}, opts), at::empty({sz.B, sz.V, height, width}, opts),
          at::empty({sz.B, sz.V, height, width}, opts), at::empty({sz.B, sz.V, height, width}, opts.dtype(at::kInt))};
}

RasterGrads raster_grads(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths,
                         const at::Tensor& opacities, const at::Tensor& features) {
  return {at::zeros_like(means2d), at::zeros_like(conics), at::zeros_like(depths), at::zeros_like(opacities),
          at::zeros_like(features)};
}

RasterBackward prepare_raster_backward(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths,
                                       const at::Tensor& opacities, const at::Tensor& features,
                                       const at::Tensor& alpha, const at::Tensor& last_ids,
                                       const at::Tensor& offsets, const at::Tensor& ids, const at::Tensor& g_feat,
                                       const at::Tensor& g_depth, const at::Tensor& g_alpha, int64_t height,
                                       int64_t width, int64_t tile_size) {
  const RasterSizes sizes = check_raster_backward_inputs(means2d, conics, depths, opacities, features, alpha, last_ids,
                                                         offsets, ids, g_feat, g_depth, g_alpha, height, width,
                                                         tile_size);
  return {sizes,     means2d, conics,  depths,  opacities, features, alpha, last_ids, offsets, ids, g_feat,
          g_depth, g_alpha, raster_grads(means2d, conics, depths, opacities, features)};
}

}  // namespace gaussocc

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  // means [B,N,3], quats [B,N,4], scales [B,N,3], opacities [B,N], viewmats [B,V,4,4], Ks [B,V,3,3]
  // -> means2d [B,V,N,2], conics [B,V,N,3], depths [B,V,N], radii [B,V,N,2] int32 (0 = culled)
  m.def(
      "project_gaussians(Tensor means, Tensor quats, Tensor scales, Tensor opacities, Tensor viewmats, "
      "Tensor Ks, int height, int width, float near, float far, float eps2d, bool ortho) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "project_gaussians_backward(Tensor means, Tensor quats, Tensor scales, Tensor viewmats, Tensor Ks, "
      "Tensor radii, Tensor g_means2d, Tensor g_conics, Tensor g_depths, int height, int width, "
      "float eps2d, bool ortho) -> (Tensor, Tensor, Tensor)");
  // -> features [B,V,H,W,C], depth [B,V,H,W], alpha [B,V,H,W], last_ids [B,V,H,W] int32,
  //    tile_offsets [B*V*tiles+1] int64, flat_ids [n_isect] int32 (Gaussians of each tile, by depth);
  //    tile_size must be 16 (splat::kTileSize) on every backend
  m.def(
      "rasterize(Tensor means2d, Tensor conics, Tensor depths, Tensor radii, Tensor opacities, "
      "Tensor features, int height, int width, int tile_size) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "rasterize_backward(Tensor means2d, Tensor conics, Tensor depths, Tensor opacities, Tensor features, "
      "Tensor alpha, Tensor last_ids, Tensor tile_offsets, Tensor flat_ids, Tensor g_features, "
      "Tensor g_depth, Tensor g_alpha, int height, int width, int tile_size) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}
