// Input checks and output allocation of the splatting ops (schemas in ops/splat.cpp), shared by
// the CPU kernels (cpu/splat.cpp) and the CUDA adapters (cuda/splat_launch.cpp). Each check
// covers every tensor argument of its op (shape, dtype, device, contiguity; see ops/checks.h) and
// the sizes, and returns the sizes.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "gaussocc/splat_math.h"

namespace gaussocc {

struct ProjectSizes {
  int64_t B, N, V;
};

struct RasterSizes {
  int64_t B, V, N, C;
};

// project_gaussians: means [B,N,3], quats [B,N,4], scales [B,N,3], opacities [B,N],
// viewmats [B,V,4,4], Ks [B,V,3,3] (one float dtype); height, width > 0.
ProjectSizes check_project_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                  const at::Tensor& opacities, const at::Tensor& viewmats, const at::Tensor& Ks,
                                  int64_t height, int64_t width);

// project_gaussians_backward: the forward's inputs (no opacities), radii [B,V,N,2] int32 and the
// gradients of means2d, conics and depths.
ProjectSizes check_project_backward_inputs(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                           const at::Tensor& viewmats, const at::Tensor& Ks, const at::Tensor& radii,
                                           const at::Tensor& g_means2d, const at::Tensor& g_conics,
                                           const at::Tensor& g_depths, int64_t height, int64_t width);

// rasterize: means2d [B,V,N,2], conics [B,V,N,3], depths [B,V,N], radii [B,V,N,2] int32,
// opacities [B,N], features [B,N,C]; height, width > 0; tile_size == splat::kTileSize.
RasterSizes check_raster_inputs(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths,
                                const at::Tensor& radii, const at::Tensor& opacities, const at::Tensor& features,
                                int64_t height, int64_t width, int64_t tile_size);

// rasterize_backward: the forward's inputs (no radii), what the forward returned (alpha,
// last_ids, tile_offsets, flat_ids) and the gradients of its images.
RasterSizes check_raster_backward_inputs(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& alpha, const at::Tensor& last_ids, const at::Tensor& offsets,
    const at::Tensor& ids, const at::Tensor& g_feat, const at::Tensor& g_depth, const at::Tensor& g_alpha,
    int64_t height, int64_t width, int64_t tile_size);

// The outputs of project_gaussians (uninitialised; the kernels write every entry): means2d
// [B,V,N,2], conics [B,V,N,3], depths [B,V,N], radii [B,V,N,2] int32.
struct ProjectOutputs {
  at::Tensor means2d, conics, depths, radii;
};
ProjectOutputs project_outputs(const at::Tensor& means, const ProjectSizes& sz);

// The images of rasterize (uninitialised; the kernels write every pixel): features [B,V,H,W,C],
// depth, alpha and last_ids (int32) [B,V,H,W].
struct RasterOutputs {
  at::Tensor features, depth, alpha, last_ids;
};
RasterOutputs raster_outputs(const at::Tensor& means2d, const RasterSizes& sz, int64_t height, int64_t width);

// The gradients rasterize_backward returns, zero-filled (the kernels accumulate into them): of
// means2d, conics, depths, opacities and features, shaped like them.
struct RasterGrads {
  at::Tensor means2d, conics, depths, opacities, features;
};
RasterGrads raster_grads(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths,
                         const at::Tensor& opacities, const at::Tensor& features);

// rasterize_backward's arguments after check_raster_backward_inputs, with the zero-filled
// gradients: pointers<T>() is the kernels' argument list, result() the op's return value.
struct RasterBackward {
  RasterSizes sizes;
  at::Tensor means2d, conics, depths, opacities, features, alpha, last_ids, offsets, ids, g_feat, g_depth, g_alpha;
  RasterGrads grads;

  template <typename T>
  splat::RasterBackwardArgs<T> pointers() const {
    return {means2d.data_ptr<T>(),       conics.data_ptr<T>(),        depths.data_ptr<T>(),
            opacities.data_ptr<T>(),     features.data_ptr<T>(),      alpha.data_ptr<T>(),
            last_ids.data_ptr<int32_t>(), offsets.data_ptr<int64_t>(), ids.data_ptr<int32_t>(),
            g_feat.data_ptr<T>(),        g_depth.data_ptr<T>(),       g_alpha.data_ptr<T>(),
            grads.means2d.data_ptr<T>(), grads.conics.data_ptr<T>(),  grads.depths.data_ptr<T>(),
            grads.opacities.data_ptr<T>(), grads.features.data_ptr<T>()};
  }
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> result() const {
    return {grads.means2d, grads.conics, grads.depths, grads.opacities, grads.features};
  }
};
RasterBackward prepare_raster_backward(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths,
                                       const at::Tensor& opacities, const at::Tensor& features,
                                       const at::Tensor& alpha, const at::Tensor& last_ids,
                                       const at::Tensor& offsets, const at::Tensor& ids, const at::Tensor& g_feat,
                                       const at::Tensor& g_depth, const at::Tensor& g_alpha, int64_t height,
                                       int64_t width, int64_t tile_size);

}  // namespace gaussocc
