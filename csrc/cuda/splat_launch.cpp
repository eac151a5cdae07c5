// torch -> raw pointer adapters of the CUDA splatting kernels (compiled only with CUDA).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda/splat.h"
#include "ops/splat.h"

namespace gaussocc {
namespace {

cuda::TileShape tile_shape(int64_t images, int64_t N, int64_t height, int64_t width, int64_t tile_size) {
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
    const at::Tensor& viewmats, const at::Tensor& Ks, int64_t height, int64_t width, double near, double far,
    double eps2d, bool ortho) {
  const auto sz = check_project_inputs(means, quats, scales, opacities, viewmats, Ks, height, width);
  const c10::cuda::CUDAGuard guard(means.device());
  const ProjectOutputs out = project_outputs(means, sz);
  auto stream = at::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_gaussians_cuda", [&] {
    cuda::project_forward<scalar_t>(means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(),
                                    scales.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(),
                                    viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), sz.B, sz.V, sz.N,
                                    (int)width, (int)height, (scalar_t)near, (scalar_t)far, (scalar_t)eps2d, ortho,
                                    out.means2d.data_ptr<scalar_t>(), out.conics.data_ptr<scalar_t>(),
                                    out.depths.data_ptr<scalar_t>(), out.radii.data_ptr<int32_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out.means2d, out.conics, out.depths, out.radii};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_gaussians_backward_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& viewmats,
    const at::Tensor& Ks, const at::Tensor& radii, const at::Tensor& g_means2d, const at::Tensor& g_conics,
    const at::Tensor& g_depths, int64_t height, int64_t width, double eps2d, bool ortho) {
  const auto sz = check_project_backward_inputs(means, quats, scales, viewmats, Ks, radii, g_means2d, g_conics,
                                                g_depths, height, width);
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
    const at::Tensor& opacities, const at::Tensor& features, int64_t height, int64_t width, int64_t tile_size) {
  const auto sz = check_raster_inputs(means2d, conics, depths, radii, opacities, features, height, width, tile_size);
  const c10::cuda::CUDAGuard guard(means2d.device());
  const auto s = tile_shape(sz.B * sz.V, sz.N, height, width, tile_size);
  auto opts = means2d.options();
  auto stream = at::cuda::getCurrentCUDAStream().stream();
  const RasterOutputs out = raster_outputs(means2d, sz, height, width);
  auto offsets = at::empty({s.images * s.tiles + 1}, opts.dtype(at::kLong));
  at::Tensor ids;
  // Binning (splat.h): each scratch buffer is released as soon as the next step no longer needs
  // it, so the caching allocator can hand its memory to the next one.
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_cuda", [&] {
    const int64_t n = s.images * s.N;
    TORCH_CHECK(n < (int64_t(1) << 31), "too many images x Gaussians for one launch: ", n);
    auto counts = at::empty({n}, opts.dtype(at::kInt));
    cuda::count_tiles<scalar_t>(means2d.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(), s,
                                counts.data_ptr<int32_t>(), stream);
    // the entries in depth order
    const int key_bytes = cuda::depth_key_bytes(sizeof(scalar_t));
    const auto key_type = key_bytes == 4 ? at::kInt : at::kLong;
    at::Tensor order = at::empty({n}, opts.dtype(at::kInt));
    {
      auto keys_in = at::empty({n}, opts.dtype(key_type));
      auto keys_out = at::empty({n}, opts.dtype(key_type));
      auto index = at::empty({n}, opts.dtype(at::kInt));
      cuda::depth_keys<scalar_t>(depths.data_ptr<scalar_t>(), n, keys_in.data_ptr(), index.data_ptr<int32_t>(),
                                 stream);
      const size_t bytes = cuda::depth_sort_temp_bytes(n, key_bytes);
      auto tmp = at::empty({(int64_t)bytes + 1}, opts.dtype(at::kByte));
      cuda::sort_by_depth(keys_in.data_ptr(), keys_out.data_ptr(), index.data_ptr<int32_t>(),
                          order.data_ptr<int32_t>(), n, key_bytes, tmp.data_ptr(), bytes, stream);
    }
    // where each entry's intersections end, in that order
    auto cum = at::empty({n}, opts.dtype(at::kLong));
    {
      auto sorted_counts = at::empty({n}, opts.dtype(at::kLong));
      cuda::gather_counts(order.data_ptr<int32_t>(), counts.data_ptr<int32_t>(), n,
                          sorted_counts.data_ptr<int64_t>(), stream);
      counts.reset();
      const size_t bytes = cuda::scan_temp_bytes(n);
      auto tmp = at::empty({(int64_t)bytes + 1}, opts.dtype(at::kByte));
      cuda::inclusive_scan(sorted_counts.data_ptr<int64_t>(), cum.data_ptr<int64_t>(), n, tmp.data_ptr(), bytes,
                           stream);
    }
    const int64_t total = n == 0 ? 0 : cum[n - 1].item<int64_t>();
    auto keys = at::empty({total}, opts.dtype(at::kInt));
    auto values = at::empty({total}, opts.dtype(at::kInt));
    cuda::emit_intersections<scalar_t>(means2d.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(),
                                       order.data_ptr<int32_t>(), cum.data_ptr<int64_t>(), s,
                                       reinterpret_cast<uint32_t*>(keys.data_ptr<int32_t>()),
                                       values.data_ptr<int32_t>(), stream);
    order.reset();
    cum.reset();
    auto keys_sorted = at::empty_like(keys);
    ids = at::empty_like(values);
    {
      const int end_bit = cuda::tile_sort_end_bit(s);
      const size_t bytes = cuda::tile_sort_temp_bytes(total, end_bit);
      auto tmp = at::empty({(int64_t)bytes + 1}, opts.dtype(at::kByte));
      cuda::sort_by_tile(reinterpret_cast<const uint32_t*>(keys.data_ptr<int32_t>()),
                         reinterpret_cast<uint32_t*>(keys_sorted.data_ptr<int32_t>()), values.data_ptr<int32_t>(),
                         ids.data_ptr<int32_t>(), total, end_bit, tmp.data_ptr(), bytes, stream);
    }
    keys.reset();
    values.reset();
    cuda::tile_ranges(reinterpret_cast<const uint32_t*>(keys_sorted.data_ptr<int32_t>()), total,
                      s.images * s.tiles, offsets.data_ptr<int64_t>(), stream);
    keys_sorted.reset();
    cuda::rasterize_forward<scalar_t>(s, sz.V, sz.C, means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                                      depths.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(),
                                      features.data_ptr<scalar_t>(), offsets.data_ptr<int64_t>(),
                                      ids.data_ptr<int32_t>(), out.features.data_ptr<scalar_t>(),
                                      out.depth.data_ptr<scalar_t>(), out.alpha.data_ptr<scalar_t>(),
                                      out.last_ids.data_ptr<int32_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out.features, out.depth, out.alpha, out.last_ids, offsets, ids};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_backward_cuda(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& alpha, const at::Tensor& last_ids, const at::Tensor& offsets,
    const at::Tensor& ids, const at::Tensor& g_feat, const at::Tensor& g_depth, const at::Tensor& g_alpha,
    int64_t height, int64_t width, int64_t tile_size) {
  const RasterBackward rb = prepare_raster_backward(means2d, conics, depths, opacities, features, alpha, last_ids,
                                                    offsets, ids, g_feat, g_depth, g_alpha, height, width, tile_size);
  const c10::cuda::CUDAGuard guard(means2d.device());
  const auto s = tile_shape(rb.sizes.B * rb.sizes.V, rb.sizes.N, height, width, tile_size);
  auto stream = at::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_backward_cuda", [&] {
    cuda::rasterize_backward<scalar_t>(s, rb.sizes.V, rb.sizes.C, rb.pointers<scalar_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return rb.result();
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CUDA, m) {
  m.impl("project_gaussians", &project_gaussians_cuda);
  m.impl("project_gaussians_backward", &project_gaussians_backward_cuda);
  m.impl("rasterize", &rasterize_cuda);
  m.impl("rasterize_backward", &rasterize_backward_cuda);
}

}  // namespace gaussocc
