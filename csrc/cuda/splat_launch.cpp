// torch -> raw pointer adapters of the CUDA splatting kernels (compiled only with CUDA).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda/splat.h"
#include "ops/splat_checks.h"

namespace gaussocc {
namespace {

cuda::TileShape tile_shape(int64_t images, int64_t N, int64_t width, int64_t height, int64_t tile_size) {
  TORCH_CHECK(tile_size == cuda::kMaxTileSize, "the CUDA rasterizer uses tile_size ", cuda::kMaxTileSize,
              ", got ", tile_size);
  cuda::TileShape s;
  s.images = images;
  s.N = N;
  s.width = (int)width;
  s.height = (int)height;
  s.tile_size = (int)tile_size;
  s.tiles_x = (width + tile_size - 1) / tile_size;
  s.tiles_y = (height + tile_size - 1) / tile_size;
  s.tiles = s.tiles_x * s.tiles_y;
  TORCH_CHECK(images * s.tiles < (int64_t(1) << 31), "too many images x tiles for one launch: ", images * s.tiles);
  return s;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_gaussians_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height, double near, double far,
    double eps2d, bool ortho) {
  const auto sz = check_project_inputs(means, quats, scales, viewmats, Ks);
  check_input(opacities, "opacities", {sz.B, sz.N}, means.scalar_type(), means.device());
  const c10::cuda::CUDAGuard guard(means.device());
  auto means2d = at::empty({sz.B, sz.V, sz.N, 2}, means.options());
  auto conics = at::empty({sz.B, sz.V, sz.N, 3}, means.options());
  auto depths = at::empty({sz.B, sz.V, sz.N}, means.options());
  auto radii = at::empty({sz.B, sz.V, sz.N, 2}, means.options().dtype(at::kInt));
  auto stream = at::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_gaussians_cuda", [&] {
    cuda::project_forward<scalar_t>(means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(),
                                    scales.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(),
                                    viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), sz.B, sz.V, sz.N,
                                    (int)width, (int)height, (scalar_t)near, (scalar_t)far, (scalar_t)eps2d, ortho,
                                    means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                                    depths.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {means2d, conics, depths, radii};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_gaussians_backward_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& viewmats,
    const at::Tensor& Ks, const at::Tensor& radii, const at::Tensor& g_means2d, const at::Tensor& g_conics,
    const at::Tensor& g_depths, int64_t width, int64_t height, double eps2d, bool ortho) {
  const auto sz = check_project_backward_inputs(means, quats, scales, viewmats, Ks, radii, g_means2d, g_conics,
                                                g_depths);
  const auto dt = means.scalar_type();
  const c10::cuda::CUDAGuard guard(means.device());
  auto g_means = at::empty_like(means);
  auto g_quats = at::empty_like(quats);
  auto g_scales = at::empty_like(scales);
  auto stream = at::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(dt, "project_gaussians_backward_cuda", [&] {
    cuda::project_backward<scalar_t>(means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(),
                                     scales.data_ptr<scalar_t>(), viewmats.data_ptr<scalar_t>(),
                                     Ks.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(),
                                     g_means2d.data_ptr<scalar_t>(), g_conics.data_ptr<scalar_t>(),
                                     g_depths.data_ptr<scalar_t>(), sz.B, sz.V, sz.N, (int)width, (int)height,
                                     (scalar_t)eps2d, ortho, g_means.data_ptr<scalar_t>(),
                                     g_quats.data_ptr<scalar_t>(), g_scales.data_ptr<scalar_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {g_means, g_quats, g_scales};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_cuda(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths, const at::Tensor& radii,
    const at::Tensor& opacities, const at::Tensor& features, int64_t width, int64_t height, int64_t tile_size) {
  const auto sz = check_raster_inputs(means2d, conics, depths, opacities, features, width, height, tile_size);
  check_input(radii, "radii", {sz.B, sz.V, sz.N, 2}, at::kInt, means2d.device());
  const c10::cuda::CUDAGuard guard(means2d.device());
  const auto s = tile_shape(sz.B * sz.V, sz.N, width, height, tile_size);
  auto opts = means2d.options();
  auto stream = at::cuda::getCurrentCUDAStream().stream();
  auto out_feat = at::empty({sz.B, sz.V, height, width, sz.C}, opts);
  auto out_depth = at::empty({sz.B, sz.V, height, width}, opts);
  auto out_alpha = at::empty({sz.B, sz.V, height, width}, opts);
  auto last_ids = at::empty({sz.B, sz.V, height, width}, opts.dtype(at::kInt));
  auto offsets = at::empty({s.images * s.tiles + 1}, opts.dtype(at::kLong));
  at::Tensor ids;
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_cuda", [&] {
    const int64_t n = s.images * s.N;
    auto counts = at::empty({n}, opts.dtype(at::kLong));
    auto cum = at::empty({n}, opts.dtype(at::kLong));
    cuda::count_tiles<scalar_t>(means2d.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(), s,
                                counts.data_ptr<int64_t>(), stream);
    const size_t scan_bytes = cuda::scan_temp_bytes(n);
    auto scan_tmp = at::empty({(int64_t)scan_bytes + 1}, opts.dtype(at::kByte));
    cuda::inclusive_scan(counts.data_ptr<int64_t>(), cum.data_ptr<int64_t>(), n, scan_tmp.data_ptr(), scan_bytes,
                         stream);
    const int64_t total = n == 0 ? 0 : cum[n - 1].item<int64_t>();
    auto keys = at::empty({total}, opts.dtype(at::kLong));
    auto values = at::empty({total}, opts.dtype(at::kInt));
    cuda::emit_intersections<scalar_t>(means2d.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(),
                                       depths.data_ptr<scalar_t>(), cum.data_ptr<int64_t>(), s,
                                       keys.data_ptr<int64_t>(), values.data_ptr<int32_t>(), stream);
    auto keys_sorted = at::empty_like(keys);
    ids = at::empty_like(values);
    const int end_bit = cuda::sort_end_bit(s);
    const size_t sort_bytes = cuda::sort_temp_bytes(total, end_bit);
    auto sort_tmp = at::empty({(int64_t)sort_bytes + 1}, opts.dtype(at::kByte));
    cuda::sort_intersections(keys.data_ptr<int64_t>(), keys_sorted.data_ptr<int64_t>(), values.data_ptr<int32_t>(),
                             ids.data_ptr<int32_t>(), total, end_bit, sort_tmp.data_ptr(), sort_bytes, stream);
    cuda::refine_depth_ties<scalar_t>(keys_sorted.data_ptr<int64_t>(), total, depths.data_ptr<scalar_t>(), s,
                                      ids.data_ptr<int32_t>(), stream);
    cuda::tile_ranges(keys_sorted.data_ptr<int64_t>(), total, s.images * s.tiles, offsets.data_ptr<int64_t>(),
                      stream);
    cuda::rasterize_forward<scalar_t>(s, sz.V, sz.C, means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                                      depths.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(),
                                      features.data_ptr<scalar_t>(), offsets.data_ptr<int64_t>(),
                                      ids.data_ptr<int32_t>(), out_feat.data_ptr<scalar_t>(),
                                      out_depth.data_ptr<scalar_t>(), out_alpha.data_ptr<scalar_t>(),
                                      last_ids.data_ptr<int32_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out_feat, out_depth, out_alpha, last_ids, offsets, ids};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_backward_cuda(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& alpha, const at::Tensor& last_ids, const at::Tensor& offsets,
    const at::Tensor& ids, const at::Tensor& g_feat, const at::Tensor& g_depth, const at::Tensor& g_alpha,
    int64_t width, int64_t height, int64_t tile_size) {
  const auto sz = check_raster_backward_inputs(means2d, conics, depths, opacities, features, alpha, last_ids, offsets,
                                               ids, g_feat, g_depth, g_alpha, width, height, tile_size);
  const c10::cuda::CUDAGuard guard(means2d.device());
  const auto s = tile_shape(sz.B * sz.V, sz.N, width, height, tile_size);
  const auto dt = means2d.scalar_type();
  auto g_means2d = at::zeros_like(means2d);
  auto g_conics = at::zeros_like(conics);
  auto g_depths = at::zeros_like(depths);
  auto g_opac = at::zeros_like(opacities);
  auto g_features = at::zeros_like(features);
  auto stream = at::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(dt, "rasterize_backward_cuda", [&] {
    cuda::rasterize_backward<scalar_t>(
        s, sz.V, sz.C, means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), depths.data_ptr<scalar_t>(),
        opacities.data_ptr<scalar_t>(), features.data_ptr<scalar_t>(), alpha.data_ptr<scalar_t>(),
        last_ids.data_ptr<int32_t>(), offsets.data_ptr<int64_t>(), ids.data_ptr<int32_t>(),
        g_feat.data_ptr<scalar_t>(), g_depth.data_ptr<scalar_t>(), g_alpha.data_ptr<scalar_t>(),
        g_means2d.data_ptr<scalar_t>(), g_conics.data_ptr<scalar_t>(), g_depths.data_ptr<scalar_t>(),
        g_opac.data_ptr<scalar_t>(), g_features.data_ptr<scalar_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {g_means2d, g_conics, g_depths, g_opac, g_features};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) {
  m.impl("project_gaussians", &project_gaussians_cuda);
  m.impl("project_gaussians_backward", &project_gaussians_backward_cuda);
  m.impl("rasterize", &rasterize_cuda);
  m.impl("rasterize_backward", &rasterize_backward_cuda);
}

}  // namespace gaussocc
