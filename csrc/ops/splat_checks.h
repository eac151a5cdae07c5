// Input checks shared by the CPU and CUDA entry points of the splatting ops. The Python API
// validates user input; these guard the raw ops against misuse (wrong shapes, dtypes, layout).
#pragma once

#include <ATen/ATen.h>

namespace gaussocc {

inline void check_input(const at::Tensor& t, const char* name, at::IntArrayRef shape, at::ScalarType dtype,
                        const at::Device& device) {
  TORCH_CHECK(t.device() == device, name, " must be on ", device, ", got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

struct ProjectSizes {
  int64_t B, N, V;
};

inline ProjectSizes check_project_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                         const at::Tensor& viewmats, const at::Tensor& Ks) {
  TORCH_CHECK(means.dim() == 3 && means.size(2) == 3, "means must be [B, N, 3], got ", means.sizes());
  TORCH_CHECK(viewmats.dim() == 4, "viewmats must be [B, V, 4, 4], got ", viewmats.sizes());
  TORCH_CHECK(means.scalar_type() == at::kFloat || means.scalar_type() == at::kDouble,
              "splatting kernels take float32 or float64, got ", means.scalar_type());
  const int64_t B = means.size(0), N = means.size(1), V = viewmats.size(1);
  const auto dt = means.scalar_type();
  const auto dev = means.device();
  check_input(means, "means", {B, N, 3}, dt, dev);
  check_input(quats, "quats", {B, N, 4}, dt, dev);
  check_input(scales, "scales", {B, N, 3}, dt, dev);
  check_input(viewmats, "viewmats", {B, V, 4, 4}, dt, dev);
  check_input(Ks, "Ks", {B, V, 3, 3}, dt, dev);
  return {B, N, V};
}

struct RasterSizes {
  int64_t B, V, N, C;
};

inline RasterSizes check_raster_inputs(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths,
                                       const at::Tensor& opacities, const at::Tensor& features, int64_t width,
                                       int64_t height, int64_t tile_size) {
  TORCH_CHECK(depths.dim() == 3, "depths must be [B, V, N], got ", depths.sizes());
  TORCH_CHECK(features.dim() == 3, "features must be [B, N, C], got ", features.sizes());
  TORCH_CHECK(width > 0 && height > 0, "width and height must be positive");
  TORCH_CHECK(tile_size > 0 && tile_size <= 32, "tile_size must be in [1, 32], got ", tile_size);
  const int64_t B = depths.size(0), V = depths.size(1), N = depths.size(2), C = features.size(2);
  const auto dt = means2d.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, "splatting kernels take float32 or float64, got ", dt);
  const auto dev = means2d.device();
  check_input(means2d, "means2d", {B, V, N, 2}, dt, dev);
  check_input(conics, "conics", {B, V, N, 3}, dt, dev);
  check_input(depths, "depths", {B, V, N}, dt, dev);
  check_input(opacities, "opacities", {B, N}, dt, dev);
  check_input(features, "features", {B, N, C}, dt, dev);
  return {B, V, N, C};
}

// Inputs of project_gaussians_backward beyond those of the forward.
inline ProjectSizes check_project_backward_inputs(const at::Tensor& means, const at::Tensor& quats,
                                                  const at::Tensor& scales, const at::Tensor& viewmats,
                                                  const at::Tensor& Ks, const at::Tensor& radii,
                                                  const at::Tensor& g_means2d, const at::Tensor& g_conics,
                                                  const at::Tensor& g_depths) {
  const auto sz = check_project_inputs(means, quats, scales, viewmats, Ks);
  const auto dt = means.scalar_type();
  const auto dev = means.device();
  check_input(radii, "radii", {sz.B, sz.V, sz.N, 2}, at::kInt, dev);
  check_input(g_means2d, "g_means2d", {sz.B, sz.V, sz.N, 2}, dt, dev);
  check_input(g_conics, "g_conics", {sz.B, sz.V, sz.N, 3}, dt, dev);
  check_input(g_depths, "g_depths", {sz.B, sz.V, sz.N}, dt, dev);
  return sz;
}

// Inputs of rasterize_backward: the forward's plus what the forward returned and the image
// gradients.
inline RasterSizes check_raster_backward_inputs(const at::Tensor& means2d, const at::Tensor& conics,
                                                const at::Tensor& depths, const at::Tensor& opacities,
                                                const at::Tensor& features, const at::Tensor& alpha,
                                                const at::Tensor& last_ids, const at::Tensor& offsets,
                                                const at::Tensor& ids, const at::Tensor& g_feat,
                                                const at::Tensor& g_depth, const at::Tensor& g_alpha,
                                                int64_t width, int64_t height, int64_t tile_size) {
  const auto sz = check_raster_inputs(means2d, conics, depths, opacities, features, width, height, tile_size);
  const auto dt = means2d.scalar_type();
  const auto dev = means2d.device();
  const int64_t tiles = ((width + tile_size - 1) / tile_size) * ((height + tile_size - 1) / tile_size);
  check_input(alpha, "alpha", {sz.B, sz.V, height, width}, dt, dev);
  check_input(last_ids, "last_ids", {sz.B, sz.V, height, width}, at::kInt, dev);
  check_input(offsets, "tile_offsets", {sz.B * sz.V * tiles + 1}, at::kLong, dev);
  TORCH_CHECK(ids.dim() == 1 && ids.scalar_type() == at::kInt && ids.is_contiguous() && ids.device() == dev,
              "flat_ids must be a contiguous int32 [M] tensor on ", dev);
  check_input(g_feat, "g_features", {sz.B, sz.V, height, width, sz.C}, dt, dev);
  check_input(g_depth, "g_depth", {sz.B, sz.V, height, width}, dt, dev);
  check_input(g_alpha, "g_alpha", {sz.B, sz.V, height, width}, dt, dev);
  return sz;
}

}  // namespace gaussocc
