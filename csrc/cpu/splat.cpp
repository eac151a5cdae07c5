// CPU kernels of the splatting ops: projection, tile binning, and a tile rasterizer with an
// explicit backward pass. Parallel over Gaussians (projection) and tiles (rasterization).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gaussocc/splat_math.h"
#include "ops/splat.h"

namespace gaussocc {
namespace {

using namespace splat;

// ---------------------------------------------------------------------------------------------
// Projection

template <typename T>
void project_forward_cpu(const T* means, const T* quats, const T* scales, const T* opac, const T* viewmats,
                         const T* Ks, int64_t B, int64_t V, int64_t N, int width, int height, T near, T far,
                         T eps2d, bool ortho, T* means2d, T* conics, T* depths, int32_t* radii) {
  at::parallel_for(0, B * V * N, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t n = i % N, bv = i / N, b = bv / V;
      const Camera<T> cam = load_camera(viewmats + bv * 16, Ks + bv * 9, width, height, ortho);
      project_and_cull(means + (b * N + n) * 3, quats + (b * N + n) * 4, scales + (b * N + n) * 3, opac[b * N + n],
                       cam, near, far, eps2d, means2d + i * 2, conics + i * 3, depths + i, radii + i * 2);
    }
  });
}

template <typename T>
void project_backward_cpu(const T* means, const T* quats, const T* scales, const T* viewmats, const T* Ks,
                          const int32_t* radii, const T* g_means2d, const T* g_conics, const T* g_depths, int64_t B,
                          int64_t V, int64_t N, int width, int height, T eps2d, bool ortho, T* g_means, T* g_quats,
                          T* g_scales) {
  // One task per Gaussian, looping over views: no two tasks write the same gradient.
  at::parallel_for(0, B * N, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / N, n = i % N;
      for (int64_t v = 0; v < V; ++v) {
        const int64_t j = (b * V + v) * N + n;
        if (radii[j * 2] == 0 && radii[j * 2 + 1] == 0) continue;
        const Camera<T> cam = load_camera(viewmats + (b * V + v) * 16, Ks + (b * V + v) * 9, width, height, ortho);
        project_vjp(means + i * 3, quats + i * 4, scales + i * 3, cam, eps2d, g_means2d + j * 2, g_conics + j * 3,
                    g_depths[j], g_means + i * 3, g_quats + i * 4, g_scales + i * 3);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> project_gaussians_cpu(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& viewmats, const at::Tensor& Ks, int64_t height, int64_t width, double near, double far,
    double eps2d, bool ortho) {
  const auto sz = check_project_inputs(means, quats, scales, opacities, viewmats, Ks, height, width);
  const ProjectOutputs out = project_outputs(means, sz);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_gaussians_cpu", [&] {
    project_forward_cpu<scalar_t>(means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(),
                                  scales.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(),
                                  viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), sz.B, sz.V, sz.N,
                                  (int)width, (int)height, (scalar_t)near, (scalar_t)far, (scalar_t)eps2d, ortho,
                                  out.means2d.data_ptr<scalar_t>(), out.conics.data_ptr<scalar_t>(),
                                  out.depths.data_ptr<scalar_t>(), out.radii.data_ptr<int32_t>());
  });
  return {out.means2d, out.conics, out.depths, out.radii};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> project_gaussians_backward_cpu(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& viewmats,
    const at::Tensor& Ks, const at::Tensor& radii, const at::Tensor& g_means2d, const at::Tensor& g_conics,
    const at::Tensor& g_depths, int64_t height, int64_t width, double eps2d, bool ortho) {
  const auto sz = check_project_backward_inputs(means, quats, scales, viewmats, Ks, radii, g_means2d, g_conics,
                                                g_depths, height, width);
  const auto dt = means.scalar_type();
  auto g_means = at::zeros_like(means);
  auto g_quats = at::zeros_like(quats);
  auto g_scales = at::zeros_like(scales);
  AT_DISPATCH_FLOATING_TYPES(dt, "project_gaussians_backward_cpu", [&] {
    project_backward_cpu<scalar_t>(means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(),
                                   scales.data_ptr<scalar_t>(), viewmats.data_ptr<scalar_t>(),
                                   Ks.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(),
                                   g_means2d.data_ptr<scalar_t>(), g_conics.data_ptr<scalar_t>(),
                                   g_depths.data_ptr<scalar_t>(), sz.B, sz.V, sz.N, (int)width, (int)height,
                                   (scalar_t)eps2d, ortho, g_means.data_ptr<scalar_t>(),
                                   g_quats.data_ptr<scalar_t>(), g_scales.data_ptr<scalar_t>());
  });
  return {g_means, g_quats, g_scales};
}

// ---------------------------------------------------------------------------------------------
// Tile binning: for every image and tile, the Gaussians whose pixel box touches the tile,
// sorted front to back (depth, then index).

struct TileGrid {
  int64_t tiles_x, tiles_y, tiles;
  int tile_size;
};

template <typename T>
std::pair<at::Tensor, at::Tensor> bin_gaussians(const T* means2d, const int32_t* radii, const T* depths,
                                                int64_t images, int64_t N, const TileGrid& tg,
                                                const at::TensorOptions& opts) {
  auto offsets = at::zeros({images * tg.tiles + 1}, opts.dtype(at::kLong));
  int64_t* off = offsets.data_ptr<int64_t>();
  at::parallel_for(0, images, 1, [&](int64_t begin, int64_t end) {
    for (int64_t img = begin; img < end; ++img) {
      int64_t* count = off + 1 + img * tg.tiles;
      for (int64_t n = 0; n < N; ++n) {
        int64_t r[4];
        const int64_t i = img * N + n;
        if (!tile_rect(means2d + i * 2, radii + i * 2, tg.tile_size, tg.tiles_x, tg.tiles_y, r)) continue;
        for (int64_t ty = r[2]; ty < r[3]; ++ty)
          for (int64_t tx = r[0]; tx < r[1]; ++tx) ++count[ty * tg.tiles_x + tx];
      }
    }
  });
  for (int64_t t = 0; t < images * tg.tiles; ++t) off[t + 1] += off[t];
  const int64_t total = off[images * tg.tiles];
  auto ids = at::empty({total}, opts.dtype(at::kInt));
  int32_t* flat = ids.data_ptr<int32_t>();
  at::parallel_for(0, images, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> cursor(tg.tiles);
    for (int64_t img = begin; img < end; ++img) {
      std::copy(off + img * tg.tiles, off + (img + 1) * tg.tiles, cursor.begin());
      for (int64_t n = 0; n < N; ++n) {
        int64_t r[4];
        const int64_t i = img * N + n;
        if (!tile_rect(means2d + i * 2, radii + i * 2, tg.tile_size, tg.tiles_x, tg.tiles_y, r)) continue;
        for (int64_t ty = r[2]; ty < r[3]; ++ty)
          for (int64_t tx = r[0]; tx < r[1]; ++tx) flat[cursor[ty * tg.tiles_x + tx]++] = (int32_t)n;
      }
    }
  });
  at::parallel_for(0, images * tg.tiles, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const T* d = depths + (t / tg.tiles) * N;
      // ids were written in increasing order, so a stable sort orders ties by index
      std::stable_sort(flat + off[t], flat + off[t + 1], [d](int32_t a, int32_t b) { return d[a] < d[b]; });
    }
  });
  return {offsets, ids};
}

// ---------------------------------------------------------------------------------------------
// Rasterization

struct RasterShape {
  int64_t B, V, N, C;
  int width, height;
  TileGrid tg;
};

// Pixel range of tile t of an image.
inline void tile_pixels(const RasterShape& s, int64_t t, int* x0, int* x1, int* y0, int* y1) {
  const int64_t tx = t % s.tg.tiles_x, ty = t / s.tg.tiles_x;
  *x0 = (int)(tx * s.tg.tile_size);
  *y0 = (int)(ty * s.tg.tile_size);
  *x1 = std::min(*x0 + s.tg.tile_size, s.width);
  *y1 = std::min(*y0 + s.tg.tile_size, s.height);
}

template <typename T>
void rasterize_forward_cpu(const RasterShape& s, const T* means2d, const T* conics, const T* depths, const T* opac,
                           const T* features, const int64_t* offsets, const int32_t* ids, T* out_feat, T* out_depth,
                           T* out_alpha, int32_t* last_ids) {
  const int64_t C = s.C;
  at::parallel_for(0, s.B * s.V * s.tg.tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> acc(C);
    for (int64_t job = begin; job < end; ++job) {
      const int64_t img = job / s.tg.tiles, t = job % s.tg.tiles, b = img / s.V;
      const int32_t* list = ids + offsets[job];
      const int64_t len = offsets[job + 1] - offsets[job];
      int x0, x1, y0, y1;
      tile_pixels(s, t, &x0, &x1, &y0, &y1);
      for (int py = y0; py < y1; ++py) {
        for (int px = x0; px < x1; ++px) {
          const int64_t pix = (img * s.height + py) * s.width + px;
          const T cx = T(px) + T(0.5), cy = T(py) + T(0.5);
          std::fill(acc.begin(), acc.end(), T(0));
          T T_cur = 1, d_acc = 0;
          int32_t last = 0;
          for (int64_t k = 0; k < len; ++k) {
            const int64_t n = list[k], i = img * s.N + n;
            T g;
            const T alpha = pixel_alpha(conics + i * 3, opac[b * s.N + n], cx - means2d[i * 2],
                                        cy - means2d[i * 2 + 1], &g);
            if (alpha == T(0)) continue;
            const T next_T = T_cur * (T(1) - alpha);
            if (next_T <= transmittance_min<T>()) break;
            const T w = alpha * T_cur;
            const T* f = features + (b * s.N + n) * C;
            for (int64_t c = 0; c < C; ++c) acc[c] += w * f[c];
            d_acc += w * depths[i];
            T_cur = next_T;
            last = (int32_t)(k + 1);
          }
          std::copy(acc.begin(), acc.end(), out_feat + pix * C);
          out_depth[pix] = d_acc;
          out_alpha[pix] = T(1) - T_cur;
          last_ids[pix] = last;
        }
      }
    }
  });
}

template <typename T>
void rasterize_backward_cpu(const RasterShape& s, const T* means2d, const T* conics, const T* depths, const T* opac,
                            const T* features, const T* alpha_out, const int32_t* last_ids, const int64_t* offsets,
                            const int32_t* ids, const T* g_feat, const T* g_depth, const T* g_alpha, T* g_means2d,
                            T* g_conics, T* g_depths, T* g_opac, T* g_features) {
  const int64_t C = s.C;
  constexpr int kGeo = 7;  // per entry: mean2d (2), conic (3), depth, opacity
  at::parallel_for(0, s.B * s.V * s.tg.tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> geo, feat, rec(C);
    for (int64_t job = begin; job < end; ++job) {
      const int64_t img = job / s.tg.tiles, t = job % s.tg.tiles, b = img / s.V;
      const int32_t* list = ids + offsets[job];
      const int64_t len = offsets[job + 1] - offsets[job];
      if (len == 0) continue;
      // Gradients of this tile's entries accumulate locally, then flush once per entry.
      geo.assign(len * kGeo, T(0));
      feat.assign(len * C, T(0));
      int x0, x1, y0, y1;
      tile_pixels(s, t, &x0, &x1, &y0, &y1);
      for (int py = y0; py < y1; ++py) {
        for (int px = x0; px < x1; ++px) {
          const int64_t pix = (img * s.height + py) * s.width + px;
          const T cx = T(px) + T(0.5), cy = T(py) + T(0.5);
          const T T_final = T(1) - alpha_out[pix];
          const T* gF = g_feat + pix * C;
          const T gD = g_depth[pix], gA = g_alpha[pix];
          std::fill(rec.begin(), rec.end(), T(0));
          T rec_d = 0, T_cur = T_final;
          for (int64_t k = last_ids[pix] - 1; k >= 0; --k) {
            const int64_t n = list[k], i = img * s.N + n;
            T g;
            const T dx = cx - means2d[i * 2], dy = cy - means2d[i * 2 + 1];
            const T alpha = pixel_alpha(conics + i * 3, opac[b * s.N + n], dx, dy, &g);
            if (alpha == T(0)) continue;
            T_cur /= (T(1) - alpha);
            const T w = alpha * T_cur;
            const T* f = features + (b * s.N + n) * C;
            T* gf = feat.data() + k * C;
            T d_alpha = 0;
            for (int64_t c = 0; c < C; ++c) {
              gf[c] += w * gF[c];
              d_alpha += (f[c] - rec[c]) * gF[c];
              rec[c] = alpha * f[c] + (T(1) - alpha) * rec[c];
            }
            T* ge = geo.data() + k * kGeo;
            ge[5] += w * gD;
            d_alpha += (depths[i] - rec_d) * gD;
            rec_d = alpha * depths[i] + (T(1) - alpha) * rec_d;
            d_alpha = d_alpha * T_cur + gA * T_final / (T(1) - alpha);
            pixel_alpha_vjp(conics + i * 3, opac[b * s.N + n], g, dx, dy, d_alpha, ge, ge + 2, ge + 6);
          }
        }
      }
      for (int64_t k = 0; k < len; ++k) {
        const int64_t n = list[k], i = img * s.N + n;
        const T* ge = geo.data() + k * kGeo;
        for (int c = 0; c < 2; ++c) atomic_add_host(g_means2d + i * 2 + c, ge[c]);
        for (int c = 0; c < 3; ++c) atomic_add_host(g_conics + i * 3 + c, ge[2 + c]);
        atomic_add_host(g_depths + i, ge[5]);
        atomic_add_host(g_opac + b * s.N + n, ge[6]);
        const T* gf = feat.data() + k * C;
        T* dst = g_features + (b * s.N + n) * C;
        for (int64_t c = 0; c < C; ++c) atomic_add_host(dst + c, gf[c]);
      }
    }
  });
}

RasterShape raster_shape(const RasterSizes& sz, int64_t height, int64_t width, int64_t tile_size) {
  RasterShape s;
  s.B = sz.B;
  s.V = sz.V;
  s.N = sz.N;
  s.C = sz.C;
  s.width = (int)width;
  s.height = (int)height;
  s.tg.tile_size = (int)tile_size;
  s.tg.tiles_x = ceil_div(width, tile_size);
  s.tg.tiles_y = ceil_div(height, tile_size);
  s.tg.tiles = s.tg.tiles_x * s.tg.tiles_y;
  return s;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_cpu(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths, const at::Tensor& radii,
    const at::Tensor& opacities, const at::Tensor& features, int64_t height, int64_t width, int64_t tile_size) {
  const auto sz = check_raster_inputs(means2d, conics, depths, radii, opacities, features, height, width, tile_size);
  const RasterShape s = raster_shape(sz, height, width, tile_size);
  const RasterOutputs out = raster_outputs(means2d, sz, height, width);
  at::Tensor offsets, ids;
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_cpu", [&] {
    std::tie(offsets, ids) = bin_gaussians<scalar_t>(means2d.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(),
                                                     depths.data_ptr<scalar_t>(), sz.B * sz.V, sz.N, s.tg,
                                                     means2d.options());
    rasterize_forward_cpu<scalar_t>(s, means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                                    depths.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(),
                                    features.data_ptr<scalar_t>(), offsets.data_ptr<int64_t>(),
                                    ids.data_ptr<int32_t>(), out.features.data_ptr<scalar_t>(),
                                    out.depth.data_ptr<scalar_t>(), out.alpha.data_ptr<scalar_t>(),
                                    out.last_ids.data_ptr<int32_t>());
  });
  return {out.features, out.depth, out.alpha, out.last_ids, offsets, ids};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_backward_cpu_entry(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& depths, const at::Tensor& opacities,
    const at::Tensor& features, const at::Tensor& alpha, const at::Tensor& last_ids, const at::Tensor& offsets,
    const at::Tensor& ids, const at::Tensor& g_feat, const at::Tensor& g_depth, const at::Tensor& g_alpha,
    int64_t height, int64_t width, int64_t tile_size) {
  const auto sz = check_raster_backward_inputs(means2d, conics, depths, opacities, features, alpha, last_ids, offsets,
                                               ids, g_feat, g_depth, g_alpha, height, width, tile_size);
  const RasterShape s = raster_shape(sz, height, width, tile_size);
  const RasterGrads g = raster_grads(means2d, conics, depths, opacities, features);
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_backward_cpu", [&] {
    rasterize_backward_cpu<scalar_t>(
        s, means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), depths.data_ptr<scalar_t>(),
        opacities.data_ptr<scalar_t>(), features.data_ptr<scalar_t>(), alpha.data_ptr<scalar_t>(),
        last_ids.data_ptr<int32_t>(), offsets.data_ptr<int64_t>(), ids.data_ptr<int32_t>(),
        g_feat.data_ptr<scalar_t>(), g_depth.data_ptr<scalar_t>(), g_alpha.data_ptr<scalar_t>(),
        g.means2d.data_ptr<scalar_t>(), g.conics.data_ptr<scalar_t>(), g.depths.data_ptr<scalar_t>(),
        g.opacities.data_ptr<scalar_t>(), g.features.data_ptr<scalar_t>());
  });
  return {g.means2d, g.conics, g.depths, g.opacities, g.features};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CPU, m) {
  m.impl("project_gaussians", &project_gaussians_cpu);
  m.impl("project_gaussians_backward", &project_gaussians_backward_cpu);
  m.impl("rasterize", &rasterize_cpu);
  m.impl("rasterize_backward", &rasterize_backward_cpu_entry);
}

}  // namespace gaussocc
