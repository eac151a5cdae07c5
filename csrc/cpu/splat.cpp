// CPU kernels of the splatting ops: projection, tile binning, and a tile rasterizer with an
// explicit backward pass. Parallel over Gaussians (projection) and tiles (rasterization).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
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

// Pixel blocks: every tile is rasterized in blocks of kBlock x kBlock pixels, each over the
// entries of the tile's list that can reach it. The pixels of a block visit the same entries in
// the same order as the whole tile list would give them, minus entries whose alpha is below
// alpha_threshold at every pixel of the block, which pixel_alpha skips anyway: the forward
// outputs are unchanged to the bit (the backward sums an entry's gradient over the pixels block
// by block, so only its rounding changes), and a pixel no longer evaluates every Gaussian of its
// tile (on a 16 x 16 tile, most of them far from it).
constexpr int kBlock = 4;
constexpr int kBlockPixels = kBlock * kBlock;
constexpr int64_t kChunk = 64;  // the forward pass filters a block's entries this many at a time

struct PixelBlock {
  int x0, x1, y0, y1;  // pixel columns [x0, x1) and rows [y0, y1)
};

// What decides whether a projected Gaussian can reach a block: the exponent
// sigma(dx, dy) = a dx^2 / 2 + b dx dy + c dy^2 / 2 of its conic (a, b, c) is at least
// qx dx^2 with qx = (a - b^2 / c) / 2 (its minimum over dy) and at least qy dy^2 likewise; alpha
// is below alpha_threshold where sigma > limit = log(opacity / alpha_threshold). `always` marks
// Gaussians without such a bound (a conic that is not positive definite, NaNs).
struct Reach {
  double mx, my, qx, qy, a, c, abs_b, limit;
  bool always, never;
};

template <typename T>
Reach make_reach(const T* mean2d, const T* conic, T opacity) {
  Reach r{};
  const double op = (double)opacity, a = conic[0], b = conic[1], c = conic[2];
  r.never = op < (double)alpha_threshold<T>();  // alpha = opacity * g <= opacity
  r.always = !r.never && !(a > 0 && c > 0 && a * c > b * b && std::isfinite(a * c));
  r.mx = mean2d[0];
  r.my = mean2d[1];
  r.qx = 0.5 * (a - b * b / c);
  r.qy = 0.5 * (c - b * b / a);
  r.a = a;
  r.c = c;
  r.abs_b = std::fabs(b);
  // the margin covers the rounding of exp and of opacity * g in T
  r.limit = r.never ? 0.0 : std::log(op / (double)alpha_threshold<T>()) * (1.0 + 1e-6) + 1e-4;
  return r;
}

// False only when alpha < alpha_threshold at every pixel centre of the block: the lower bound
// of sigma over the block, less a bound on the rounding error of sigma computed in T, exceeds
// the limit. NaNs compare false and keep the entry.
template <typename T>
bool block_reached(const PixelBlock& blk, const Reach& r) {
  if (r.never) return false;
  if (r.always) return true;
  const double lo_x = blk.x0 + 0.5 - r.mx, hi_x = blk.x1 - 0.5 - r.mx;
  const double lo_y = blk.y0 + 0.5 - r.my, hi_y = blk.y1 - 0.5 - r.my;
  const double near_x = lo_x > 0 ? lo_x : (hi_x < 0 ? -hi_x : 0.0);
  const double near_y = lo_y > 0 ? lo_y : (hi_y < 0 ? -hi_y : 0.0);
  const double bound = std::max(r.qx * near_x * near_x, r.qy * near_y * near_y);
  if (!(bound > r.limit)) return true;
  const double far_x = std::max(std::fabs(lo_x), std::fabs(hi_x));
  const double far_y = std::max(std::fabs(lo_y), std::fabs(hi_y));
  const double rounding = 8.0 * std::numeric_limits<T>::epsilon() *
                          (r.a * far_x * far_x + r.c * far_y * far_y + 2.0 * r.abs_b * far_x * far_y);
  return !(bound - rounding > r.limit);
}

// The reach of every projected Gaussian of every image, [images * N].
template <typename T>
std::vector<Reach> make_reaches(const RasterShape& s, const T* means2d, const T* conics, const T* opac) {
  std::vector<Reach> reach(s.B * s.V * s.N);
  at::parallel_for(0, s.B * s.V * s.N, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / (s.V * s.N), n = i % s.N;
      reach[i] = make_reach(means2d + i * 2, conics + i * 3, opac[b * s.N + n]);
    }
  });
  return reach;
}

// Appends the positions k in [k0, k1) (ascending) of the tile list's entries that can reach the
// block.
template <typename T>
void block_entries(const PixelBlock& blk, const int32_t* list, int64_t k0, int64_t k1, const Reach* img_reach,
                   std::vector<int32_t>* out) {
  for (int64_t k = k0; k < k1; ++k)
    if (block_reached<T>(blk, img_reach[list[k]])) out->push_back((int32_t)k);
}

// Calls f(block) for the kBlock x kBlock pixel blocks of tile t.
template <typename F>
void for_each_block(const RasterShape& s, int64_t t, F&& f) {
  int x0, x1, y0, y1;
  tile_pixels(s, t, &x0, &x1, &y0, &y1);
  for (int by = y0; by < y1; by += kBlock)
    for (int bx = x0; bx < x1; bx += kBlock) f(PixelBlock{bx, std::min(bx + kBlock, x1), by, std::min(by + kBlock, y1)});
}

template <typename T>
void rasterize_forward_cpu(const RasterShape& s, const T* means2d, const T* conics, const T* depths, const T* opac,
                           const T* features, const int64_t* offsets, const int32_t* ids, T* out_feat, T* out_depth,
                           T* out_alpha, int32_t* last_ids) {
  const int64_t C = s.C;
  const std::vector<Reach> reach = make_reaches(s, means2d, conics, opac);
  at::parallel_for(0, s.B * s.V * s.tg.tiles, 1, [&](int64_t begin, int64_t end) {
    // the state of a block's pixels while its entries are visited a chunk at a time
    std::vector<T> acc(kBlockPixels * C), T_cur(kBlockPixels), d_acc(kBlockPixels);
    std::vector<int32_t> last(kBlockPixels), entries;
    std::vector<char> active(kBlockPixels);
    for (int64_t job = begin; job < end; ++job) {
      const int64_t img = job / s.tg.tiles, t = job % s.tg.tiles, b = img / s.V;
      const int32_t* list = ids + offsets[job];
      const int64_t len = offsets[job + 1] - offsets[job];
      for_each_block(s, t, [&](const PixelBlock& blk) {
        const int bw = blk.x1 - blk.x0, np = bw * (blk.y1 - blk.y0);
        std::fill(acc.begin(), acc.end(), T(0));
        std::fill(T_cur.begin(), T_cur.end(), T(1));
        std::fill(d_acc.begin(), d_acc.end(), T(0));
        std::fill(last.begin(), last.end(), 0);
        std::fill(active.begin(), active.end(), 1);
        int n_active = np;
        for (int64_t k0 = 0; k0 < len && n_active > 0; k0 += kChunk) {
          entries.clear();
          block_entries<T>(blk, list, k0, std::min(k0 + kChunk, len), reach.data() + img * s.N, &entries);
          for (int q = 0; q < np; ++q) {
            if (!active[q]) continue;
            const int px = blk.x0 + q % bw, py = blk.y0 + q / bw;
            const T cx = T(px) + T(0.5), cy = T(py) + T(0.5);
            T* a = acc.data() + q * C;
            for (const int32_t k : entries) {
              const int64_t n = list[k], i = img * s.N + n;
              T g;
              const T alpha = pixel_alpha(conics + i * 3, opac[b * s.N + n], cx - means2d[i * 2],
                                          cy - means2d[i * 2 + 1], &g);
              if (alpha == T(0)) continue;
              const T next_T = T_cur[q] * (T(1) - alpha);
              if (next_T <= transmittance_min<T>()) {
                active[q] = 0;
                --n_active;
                break;
              }
              const T w = alpha * T_cur[q];
              const T* f = features + (b * s.N + n) * C;
              for (int64_t c = 0; c < C; ++c) a[c] += w * f[c];
              d_acc[q] += w * depths[i];
              T_cur[q] = next_T;
              last[q] = k + 1;
            }
          }
        }
        for (int q = 0; q < np; ++q) {
          const int64_t pix = (img * s.height + blk.y0 + q / bw) * s.width + blk.x0 + q % bw;
          std::copy(acc.begin() + q * C, acc.begin() + (q + 1) * C, out_feat + pix * C);
          out_depth[pix] = d_acc[q];
          out_alpha[pix] = T(1) - T_cur[q];
          last_ids[pix] = last[q];
        }
      });
    }
  });
}

template <typename T>
void rasterize_backward_cpu(const RasterShape& s, const RasterBackwardArgs<T>& a) {
  const int64_t C = s.C;
  constexpr int kGeo = 7;  // per entry: mean2d (2), conic (3), depth, opacity
  const std::vector<Reach> reach = make_reaches(s, a.means2d, a.conics, a.opacities);
  at::parallel_for(0, s.B * s.V * s.tg.tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> geo, feat, rec(C);
    std::vector<int32_t> entries;
    for (int64_t job = begin; job < end; ++job) {
      const int64_t img = job / s.tg.tiles, t = job % s.tg.tiles, b = img / s.V;
      const int32_t* list = a.ids + a.offsets[job];
      const int64_t len = a.offsets[job + 1] - a.offsets[job];
      if (len == 0) continue;
      // Gradients of this tile's entries accumulate locally, then flush once per entry.
      geo.assign(len * kGeo, T(0));
      feat.assign(len * C, T(0));
      int32_t tile_last = 0;  // entries from here on reached no pixel of the tile
      for_each_block(s, t, [&](const PixelBlock& blk) {
        int32_t block_last = 0;  // no pixel of the block goes past this entry
        for (int py = blk.y0; py < blk.y1; ++py)
          for (int px = blk.x0; px < blk.x1; ++px)
            block_last = std::max(block_last, a.last_ids[(img * s.height + py) * s.width + px]);
        tile_last = std::max(tile_last, block_last);
        entries.clear();
        block_entries<T>(blk, list, 0, block_last, reach.data() + img * s.N, &entries);
        for (int py = blk.y0; py < blk.y1; ++py) {
          for (int px = blk.x0; px < blk.x1; ++px) {
            const int64_t pix = (img * s.height + py) * s.width + px;
            const T cx = T(px) + T(0.5), cy = T(py) + T(0.5);
            const T T_final = T(1) - a.alpha[pix];
            const T* gF = a.g_out_features + pix * C;
            const T gD = a.g_out_depth[pix], gA = a.g_out_alpha[pix];
            std::fill(rec.begin(), rec.end(), T(0));
            T rec_d = 0, T_cur = T_final;
            // the block's entries before the pixel's last contributing one, back to front
            auto j = std::lower_bound(entries.begin(), entries.end(), a.last_ids[pix]) - entries.begin();
            while (j-- > 0) {
              const int64_t k = entries[j], n = list[k], i = img * s.N + n;
              T g;
              const T dx = cx - a.means2d[i * 2], dy = cy - a.means2d[i * 2 + 1];
              const T alpha = pixel_alpha(a.conics + i * 3, a.opacities[b * s.N + n], dx, dy, &g);
              if (alpha == T(0)) continue;
              T_cur /= (T(1) - alpha);
              const T w = alpha * T_cur;
              const T* f = a.features + (b * s.N + n) * C;
              T* gf = feat.data() + k * C;
              T d_alpha = 0;
              for (int64_t c = 0; c < C; ++c) {
                gf[c] += w * gF[c];
                d_alpha += (f[c] - rec[c]) * gF[c];
                rec[c] = alpha * f[c] + (T(1) - alpha) * rec[c];
              }
              T* ge = geo.data() + k * kGeo;
              ge[5] += w * gD;
              d_alpha += (a.depths[i] - rec_d) * gD;
              rec_d = alpha * a.depths[i] + (T(1) - alpha) * rec_d;
              d_alpha = d_alpha * T_cur + gA * T_final / (T(1) - alpha);
              pixel_alpha_vjp(a.conics + i * 3, a.opacities[b * s.N + n], g, dx, dy, d_alpha, ge, ge + 2, ge + 6);
            }
          }
        }
      });
      for (int64_t k = 0; k < tile_last; ++k) {
        const int64_t n = list[k], i = img * s.N + n;
        const T* ge = geo.data() + k * kGeo;
        for (int c = 0; c < 2; ++c) atomic_add_host(a.g_means2d + i * 2 + c, ge[c]);
        for (int c = 0; c < 3; ++c) atomic_add_host(a.g_conics + i * 3 + c, ge[2 + c]);
        atomic_add_host(a.g_depths + i, ge[5]);
        atomic_add_host(a.g_opacities + b * s.N + n, ge[6]);
        const T* gf = feat.data() + k * C;
        T* dst = a.g_features + (b * s.N + n) * C;
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
  const RasterBackward rb = prepare_raster_backward(means2d, conics, depths, opacities, features, alpha, last_ids,
                                                    offsets, ids, g_feat, g_depth, g_alpha, height, width, tile_size);
  const RasterShape s = raster_shape(rb.sizes, height, width, tile_size);
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_backward_cpu",
                             [&] { rasterize_backward_cpu<scalar_t>(s, rb.pointers<scalar_t>()); });
  return rb.result();
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CPU, m) {
  m.impl("project_gaussians", &project_gaussians_cpu);
  m.impl("project_gaussians_backward", &project_gaussians_backward_cpu);
  m.impl("rasterize", &rasterize_cpu);
  m.impl("rasterize_backward", &rasterize_backward_cpu_entry);
}

}  // namespace gaussocc
