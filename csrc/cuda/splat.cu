// CUDA kernels of the splatting ops: projection, tile binning (cub scan + radix sort) and a
// tile rasterizer (one thread block per tile, one thread per pixel) with explicit backward.
// The math is csrc/include/gaussocc/splat_math.h, shared with the CPU kernels.
#include <cub/cub.cuh>

#include "cuda/splat.h"
#include "gaussocc/splat_math.h"

namespace gaussocc {
namespace cuda {
namespace {

using namespace splat;

constexpr int kBlock = kMaxTileSize * kMaxTileSize;
constexpr int kThreads1D = 256;

inline unsigned blocks_for(int64_t n) { return (unsigned)((n + kThreads1D - 1) / kThreads1D); }

// ---------------------------------------------------------------------------------------------
// Projection

template <typename T>
__global__ void project_forward_kernel(const T* means, const T* quats, const T* scales, const T* opac,
                                       const T* viewmats, const T* Ks, int64_t B, int64_t V, int64_t N, int width,
                                       int height, T near, T far, T eps2d, bool ortho, T* means2d, T* conics,
                                       T* depths, int32_t* radii) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * V * N) return;
  const int64_t n = i % N, bv = i / N, b = bv / V;
  const Camera<T> cam = load_camera(viewmats + bv * 16, Ks + bv * 9, width, height, ortho);
  Projection<T> pr;
  T* m2 = means2d + i * 2;
  T* con = conics + i * 3;
  int rad[2] = {0, 0};
  bool ok = project(means + (b * N + n) * 3, quats + (b * N + n) * 4, scales + (b * N + n) * 3, cam, near, far, eps2d,
                    m2, con, depths + i, &pr);
  ok = ok && pixel_radius(pr.cov2d, opac[b * N + n], rad);
  ok = ok && m2[0] + rad[0] > 0 && m2[0] - rad[0] < width && m2[1] + rad[1] > 0 && m2[1] - rad[1] < height;
  if (!ok) {
    m2[0] = m2[1] = T(0);
    con[0] = con[1] = con[2] = T(0);
    rad[0] = rad[1] = 0;
  }
  radii[i * 2] = rad[0];
  radii[i * 2 + 1] = rad[1];
}

template <typename T>
__global__ void project_backward_kernel(const T* means, const T* quats, const T* scales, const T* viewmats,
                                        const T* Ks, const int32_t* radii, const T* g_means2d, const T* g_conics,
                                        const T* g_depths, int64_t B, int64_t V, int64_t N, int width, int height,
                                        T eps2d, bool ortho, T* g_means, T* g_quats, T* g_scales) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B * N) return;
  const int64_t b = i / N, n = i % N;
  T gm[3] = {0, 0, 0}, gq[4] = {0, 0, 0, 0}, gs[3] = {0, 0, 0};
  for (int64_t v = 0; v < V; ++v) {
    const int64_t j = (b * V + v) * N + n;
    if (radii[j * 2] == 0 && radii[j * 2 + 1] == 0) continue;
    const Camera<T> cam = load_camera(viewmats + (b * V + v) * 16, Ks + (b * V + v) * 9, width, height, ortho);
    project_vjp(means + i * 3, quats + i * 4, scales + i * 3, cam, eps2d, g_means2d + j * 2, g_conics + j * 3,
                g_depths[j], gm, gq, gs);
  }
  for (int c = 0; c < 3; ++c) g_means[i * 3 + c] = gm[c];
  for (int c = 0; c < 4; ++c) g_quats[i * 4 + c] = gq[c];
  for (int c = 0; c < 3; ++c) g_scales[i * 3 + c] = gs[c];
}

// ---------------------------------------------------------------------------------------------
// Binning

template <typename T>
__device__ bool tile_rect(const T* m2, const int32_t* rad, const TileShape& s, int64_t* r) {
  if (rad[0] == 0 && rad[1] == 0) return false;
  const T ts = T(s.tile_size);
  r[0] = max((int64_t)0, (int64_t)floor((m2[0] - rad[0] - T(0.5)) / ts));
  r[1] = min(s.tiles_x, (int64_t)floor((m2[0] + rad[0] + T(0.5)) / ts) + 1);
  r[2] = max((int64_t)0, (int64_t)floor((m2[1] - rad[1] - T(0.5)) / ts));
  r[3] = min(s.tiles_y, (int64_t)floor((m2[1] + rad[1] + T(0.5)) / ts) + 1);
  return r[0] < r[1] && r[2] < r[3];
}

template <typename T>
__global__ void count_tiles_kernel(const T* means2d, const int32_t* radii, TileShape s, int64_t* counts) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= s.images * s.N) return;
  int64_t r[4];
  counts[i] = tile_rect(means2d + i * 2, radii + i * 2, s, r) ? (r[1] - r[0]) * (r[3] - r[2]) : 0;
}

// The depth as 32 bits whose unsigned order is the order of the depths rounded to float: the
// sign bit set on positive values, every bit flipped on negative ones (an orthographic camera
// with a negative near plane keeps Gaussians at negative depths), -0 taken as +0. Rounding to
// float keeps the order of float64 depths but can tie them; refine_ties_kernel sorts such ties.
template <typename T>
__device__ uint32_t depth_bits(T depth) {
  const float d = (float)depth;
  const uint32_t b = __float_as_uint(d == 0.f ? 0.f : d);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

template <typename T>
__global__ void emit_kernel(const T* means2d, const int32_t* radii, const T* depths, const int64_t* cum,
                            TileShape s, int64_t* keys, int32_t* values) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= s.images * s.N) return;
  int64_t r[4];
  if (!tile_rect(means2d + i * 2, radii + i * 2, s, r)) return;
  const int64_t img = i / s.N;
  const int32_t n = (int32_t)(i % s.N);
  int64_t out = (i == 0 ? 0 : cum[i - 1]);
  const uint64_t dbits = depth_bits(depths[i]);
  for (int64_t ty = r[2]; ty < r[3]; ++ty) {
    for (int64_t tx = r[0]; tx < r[1]; ++tx) {
      const uint64_t tile = (uint64_t)(img * s.tiles + ty * s.tiles_x + tx);
      keys[out] = (int64_t)((tile << 32) | dbits);
      values[out] = n;
      ++out;
    }
  }
}

// Float64 depths: runs of equal keys (one tile, depths equal after rounding to float) are
// re-sorted by the float64 depth, by the thread at the start of each run. Insertion sort is
// stable, so equal float64 depths stay in index order, the CPU kernel's order. Runs are short:
// equal float32 depths from distinct float64 ones, or equal depths, which insertion sort passes
// over in one step each.
template <typename T>
__global__ void refine_ties_kernel(const int64_t* keys, int64_t n, const T* depths, TileShape s, int32_t* ids) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n || (i > 0 && keys[i - 1] == keys[i]) || i + 1 == n || keys[i + 1] != keys[i]) return;
  const int64_t img = (int64_t)((uint64_t)keys[i] >> 32) / s.tiles;
  const T* d = depths + img * s.N;
  for (int64_t a = i + 1; a < n && keys[a] == keys[i]; ++a) {
    const int32_t id = ids[a];
    const T da = d[id];
    int64_t b = a;
    for (; b > i && d[ids[b - 1]] > da; --b) ids[b] = ids[b - 1];
    ids[b] = id;
  }
}

__global__ void tile_ranges_kernel(const int64_t* keys, int64_t n, int64_t total_tiles, int64_t* offsets) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t tile = (int64_t)((uint64_t)keys[i] >> 32);
  const int64_t prev = i == 0 ? -1 : (int64_t)((uint64_t)keys[i - 1] >> 32);
  for (int64_t t = prev + 1; t <= tile; ++t) offsets[t] = i;
  if (i == n - 1)
    for (int64_t t = tile + 1; t <= total_tiles; ++t) offsets[t] = n;
}

// ---------------------------------------------------------------------------------------------
// Rasterization. Each pass renders up to CH feature channels starting at c0; the first pass also
// writes depth, alpha and the per-pixel end of the contributing list.

template <typename T>
struct SharedGaussians {
  int32_t id[kBlock];
  T m2[kBlock][2];
  T conic[kBlock][3];
  T opac[kBlock];
  T depth[kBlock];
};

template <typename T>
__device__ void load_batch(SharedGaussians<T>& sh, int slot, int64_t k, const int32_t* ids, int64_t img, int64_t b,
                           int64_t N, const T* means2d, const T* conics, const T* depths, const T* opac) {
  const int32_t n = ids[k];
  const int64_t i = img * N + n;
  sh.id[slot] = n;
  sh.m2[slot][0] = means2d[i * 2];
  sh.m2[slot][1] = means2d[i * 2 + 1];
  sh.conic[slot][0] = conics[i * 3];
  sh.conic[slot][1] = conics[i * 3 + 1];
  sh.conic[slot][2] = conics[i * 3 + 2];
  sh.opac[slot] = opac[b * N + n];
  sh.depth[slot] = depths[i];
}

template <typename T, int CH>
__global__ void __launch_bounds__(kBlock) rasterize_forward_kernel(
    TileShape s, int64_t V, int64_t C, int64_t c0, bool first, const T* __restrict__ means2d,
    const T* __restrict__ conics, const T* __restrict__ depths, const T* __restrict__ opac,
    const T* __restrict__ features, const int64_t* __restrict__ offsets, const int32_t* __restrict__ ids,
    T* out_feat, T* out_depth, T* out_alpha, int32_t* last_ids) {
  __shared__ SharedGaussians<T> sh;
  const int64_t job = blockIdx.x;
  const int64_t img = job / s.tiles, t = job % s.tiles, b = img / V;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  const int block = blockDim.x * blockDim.y;
  const int px = (int)((t % s.tiles_x) * s.tile_size) + threadIdx.x;
  const int py = (int)((t / s.tiles_x) * s.tile_size) + threadIdx.y;
  const bool inside = px < s.width && py < s.height;
  const T cx = T(px) + T(0.5), cy = T(py) + T(0.5);
  const int64_t start = offsets[job], end = offsets[job + 1];
  const int nch = (int)min((int64_t)CH, C - c0);

  T acc[CH];
#pragma unroll
  for (int c = 0; c < CH; ++c) acc[c] = T(0);
  T T_cur = 1, d_acc = 0;
  int32_t last = 0;
  bool done = !inside;
  for (int64_t base = start; base < end; base += block) {
    if (__syncthreads_count(done) == block) break;
    if (base + tid < end) load_batch(sh, tid, base + tid, ids, img, b, s.N, means2d, conics, depths, opac);
    __syncthreads();
    const int count = (int)min((int64_t)block, end - base);
    for (int j = 0; j < count && !done; ++j) {
      T g;
      const T alpha = pixel_alpha(sh.conic[j], sh.opac[j], cx - sh.m2[j][0], cy - sh.m2[j][1], &g);
      if (alpha == T(0)) continue;
      const T next_T = T_cur * (T(1) - alpha);
      if (next_T <= transmittance_min<T>()) {
        done = true;
        break;
      }
      const T w = alpha * T_cur;
      const T* f = features + (b * s.N + sh.id[j]) * C + c0;
#pragma unroll
      for (int c = 0; c < CH; ++c)
        if (c < nch) acc[c] += w * __ldg(f + c);
      d_acc += w * sh.depth[j];
      T_cur = next_T;
      last = (int32_t)(base + j + 1 - start);
    }
  }
  if (!inside) return;
  const int64_t pix = (img * s.height + py) * s.width + px;
#pragma unroll
  for (int c = 0; c < CH; ++c)
    if (c < nch) out_feat[pix * C + c0 + c] = acc[c];
  if (first) {
    out_depth[pix] = d_acc;
    out_alpha[pix] = T(1) - T_cur;
    last_ids[pix] = last;
  }
}

template <typename T>
__device__ T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

template <typename T, int CH>
__global__ void __launch_bounds__(kBlock) rasterize_backward_kernel(
    TileShape s, int64_t V, int64_t C, int64_t c0, bool first, const T* __restrict__ means2d,
    const T* __restrict__ conics, const T* __restrict__ depths, const T* __restrict__ opac,
    const T* __restrict__ features, const T* __restrict__ alpha_out, const int32_t* __restrict__ last_ids,
    const int64_t* __restrict__ offsets, const int32_t* __restrict__ ids, const T* __restrict__ g_feat,
    const T* __restrict__ g_depth, const T* __restrict__ g_alpha, T* g_means2d, T* g_conics, T* g_depths, T* g_opac,
    T* g_features) {
  __shared__ SharedGaussians<T> sh;
  const int64_t job = blockIdx.x;
  const int64_t img = job / s.tiles, t = job % s.tiles, b = img / V;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  const int block = blockDim.x * blockDim.y;
  const int lane = tid % 32;
  const int px = (int)((t % s.tiles_x) * s.tile_size) + threadIdx.x;
  const int py = (int)((t / s.tiles_x) * s.tile_size) + threadIdx.y;
  const bool inside = px < s.width && py < s.height;
  const T cx = T(px) + T(0.5), cy = T(py) + T(0.5);
  const int64_t start = offsets[job];
  const int nch = (int)min((int64_t)CH, C - c0);
  const int64_t pix = inside ? (img * s.height + py) * s.width + px : 0;

  const T T_final = inside ? T(1) - alpha_out[pix] : T(1);
  const int64_t my_last = inside ? last_ids[pix] : 0;
  T gF[CH], rec[CH];
#pragma unroll
  for (int c = 0; c < CH; ++c) {
    gF[c] = (inside && c < nch) ? g_feat[pix * C + c0 + c] : T(0);
    rec[c] = T(0);
  }
  const T gD = (inside && first) ? g_depth[pix] : T(0);
  const T gA = (inside && first) ? g_alpha[pix] : T(0);
  T rec_d = 0, T_cur = T_final;

  // The largest list position any pixel of the block needs.
  __shared__ int64_t block_last;
  if (tid == 0) block_last = 0;
  __syncthreads();
  atomicMax((unsigned long long*)&block_last, (unsigned long long)my_last);
  __syncthreads();
  const int64_t stop = start + block_last;

  for (int64_t top = stop; top > start; top -= block) {
    const int64_t base = max(start, top - block);
    const int count = (int)(top - base);
    __syncthreads();
    if (tid < count) load_batch(sh, tid, base + tid, ids, img, b, s.N, means2d, conics, depths, opac);
    __syncthreads();
    for (int j = count - 1; j >= 0; --j) {
      const int64_t k = base + j - start;
      T g = 0, alpha = 0;
      const T dx = cx - sh.m2[j][0], dy = cy - sh.m2[j][1];
      if (k < my_last) alpha = pixel_alpha(sh.conic[j], sh.opac[j], dx, dy, &g);
      const bool contrib = alpha > T(0);
      if (!__any_sync(0xffffffffu, contrib)) continue;
      T w = 0, d_alpha = 0;
      T ge[7] = {0, 0, 0, 0, 0, 0, 0};
      T gf[CH];
      const T* f = features + (b * s.N + sh.id[j]) * C + c0;
      if (contrib) {
        T_cur /= (T(1) - alpha);
        w = alpha * T_cur;
#pragma unroll
        for (int c = 0; c < CH; ++c) {
          if (c < nch) {
            const T fc = __ldg(f + c);
            gf[c] = w * gF[c];
            d_alpha += (fc - rec[c]) * gF[c];
            rec[c] = alpha * fc + (T(1) - alpha) * rec[c];
          } else {
            gf[c] = T(0);
          }
        }
        if (first) {
          ge[5] = w * gD;
          d_alpha += (sh.depth[j] - rec_d) * gD;
          rec_d = alpha * sh.depth[j] + (T(1) - alpha) * rec_d;
          d_alpha = d_alpha * T_cur + gA * T_final / (T(1) - alpha);
        } else {
          d_alpha = d_alpha * T_cur;
        }
        pixel_alpha_vjp(sh.conic[j], sh.opac[j], g, dx, dy, d_alpha, ge, ge + 2, ge + 6);
      } else {
#pragma unroll
        for (int c = 0; c < CH; ++c) gf[c] = T(0);
      }
      // Sum over the warp, then one atomic per value per warp.
      const int32_t n = sh.id[j];
      const int64_t i = img * s.N + n;
#pragma unroll
      for (int e = 0; e < 7; ++e) ge[e] = warp_sum(ge[e]);
#pragma unroll
      for (int c = 0; c < CH; ++c) gf[c] = warp_sum(gf[c]);
      if (lane == 0) {
        atomicAdd(g_means2d + i * 2, ge[0]);
        atomicAdd(g_means2d + i * 2 + 1, ge[1]);
        atomicAdd(g_conics + i * 3, ge[2]);
        atomicAdd(g_conics + i * 3 + 1, ge[3]);
        atomicAdd(g_conics + i * 3 + 2, ge[4]);
        if (first) atomicAdd(g_depths + i, ge[5]);
        atomicAdd(g_opac + b * s.N + n, ge[6]);
        T* dst = g_features + (b * s.N + n) * C + c0;
#pragma unroll
        for (int c = 0; c < CH; ++c)
          if (c < nch) atomicAdd(dst + c, gf[c]);
      }
    }
  }
}

// Channels per pass: the smallest of 4, 8, 16, 32 that holds what is left (32 at most). There
// is always a first pass, even for C = 0: it writes depth, alpha and the last ids (forward) and
// their gradients (backward).
template <typename Fn>
void for_each_channel_pass(int64_t C, Fn&& fn) {
  for (int64_t c0 = 0; c0 == 0 || c0 < C; c0 += 32) {
    const int64_t left = C - c0;
    if (left <= 4) fn(c0, std::integral_constant<int, 4>{});
    else if (left <= 8) fn(c0, std::integral_constant<int, 8>{});
    else if (left <= 16) fn(c0, std::integral_constant<int, 16>{});
    else fn(c0, std::integral_constant<int, 32>{});
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Launchers

template <typename T>
void project_forward(const T* means, const T* quats, const T* scales, const T* opacities, const T* viewmats,
                     const T* Ks, int64_t B, int64_t V, int64_t N, int width, int height, T near, T far, T eps2d,
                     bool ortho, T* means2d, T* conics, T* depths, int32_t* radii, cudaStream_t stream) {
  const int64_t n = B * V * N;
  if (n == 0) return;
  project_forward_kernel<T><<<blocks_for(n), kThreads1D, 0, stream>>>(
      means, quats, scales, opacities, viewmats, Ks, B, V, N, width, height, near, far, eps2d, ortho, means2d, conics,
      depths, radii);
}

template <typename T>
void project_backward(const T* means, const T* quats, const T* scales, const T* viewmats, const T* Ks,
                      const int32_t* radii, const T* g_means2d, const T* g_conics, const T* g_depths, int64_t B,
                      int64_t V, int64_t N, int width, int height, T eps2d, bool ortho, T* g_means, T* g_quats,
                      T* g_scales, cudaStream_t stream) {
  if (B * N == 0) return;
  project_backward_kernel<T><<<blocks_for(B * N), kThreads1D, 0, stream>>>(
      means, quats, scales, viewmats, Ks, radii, g_means2d, g_conics, g_depths, B, V, N, width, height, eps2d, ortho,
      g_means, g_quats, g_scales);
}

template <typename T>
void count_tiles(const T* means2d, const int32_t* radii, const TileShape& s, int64_t* counts, cudaStream_t stream) {
  const int64_t n = s.images * s.N;
  if (n == 0) return;
  count_tiles_kernel<T><<<blocks_for(n), kThreads1D, 0, stream>>>(means2d, radii, s, counts);
}

size_t scan_temp_bytes(int64_t n) {
  size_t bytes = 0;
  cub::DeviceScan::InclusiveSum(nullptr, bytes, (const int64_t*)nullptr, (int64_t*)nullptr, n);
  return bytes;
}

void inclusive_scan(const int64_t* in, int64_t* out, int64_t n, void* temp, size_t temp_bytes, cudaStream_t stream) {
  if (n == 0) return;
  cub::DeviceScan::InclusiveSum(temp, temp_bytes, in, out, n, stream);
}

template <typename T>
void emit_intersections(const T* means2d, const int32_t* radii, const T* depths, const int64_t* cum_counts,
                        const TileShape& s, int64_t* keys, int32_t* values, cudaStream_t stream) {
  const int64_t n = s.images * s.N;
  if (n == 0) return;
  emit_kernel<T><<<blocks_for(n), kThreads1D, 0, stream>>>(means2d, radii, depths, cum_counts, s, keys, values);
}

int sort_end_bit(const TileShape& s) {
  int bits = 0;
  while (bits < 31 && (int64_t(1) << bits) < s.images * s.tiles) ++bits;
  return 32 + bits;
}

size_t sort_temp_bytes(int64_t n, int end_bit) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, (const uint64_t*)nullptr, (uint64_t*)nullptr,
                                  (const int32_t*)nullptr, (int32_t*)nullptr, n, 0, end_bit);
  return bytes;
}

void sort_intersections(const int64_t* keys_in, int64_t* keys_out, const int32_t* values_in, int32_t* values_out,
                        int64_t n, int end_bit, void* temp, size_t temp_bytes, cudaStream_t stream) {
  if (n == 0) return;
  // unsigned keys: the tile id occupies bits 32..end_bit, the depth bits 0..31
  cub::DeviceRadixSort::SortPairs(temp, temp_bytes, reinterpret_cast<const uint64_t*>(keys_in),
                                  reinterpret_cast<uint64_t*>(keys_out), values_in, values_out, n, 0, end_bit, stream);
}

template <typename T>
void refine_depth_ties(const int64_t* sorted_keys, int64_t n, const T* depths, const TileShape& s, int32_t* ids,
                       cudaStream_t stream) {
  // float depths are exact in the keys
  if (n == 0 || sizeof(T) == sizeof(float)) return;
  refine_ties_kernel<T><<<blocks_for(n), kThreads1D, 0, stream>>>(sorted_keys, n, depths, s, ids);
}

void tile_ranges(const int64_t* sorted_keys, int64_t n, int64_t total_tiles, int64_t* offsets, cudaStream_t stream) {
  if (n == 0) {
    cudaMemsetAsync(offsets, 0, sizeof(int64_t) * (total_tiles + 1), stream);
    return;
  }
  tile_ranges_kernel<<<blocks_for(n), kThreads1D, 0, stream>>>(sorted_keys, n, total_tiles, offsets);
}

template <typename T>
void rasterize_forward(const TileShape& s, int64_t V, int64_t C, const T* means2d, const T* conics, const T* depths,
                       const T* opacities, const T* features, const int64_t* offsets, const int32_t* ids,
                       T* out_features, T* out_depth, T* out_alpha, int32_t* last_ids, cudaStream_t stream) {
  const int64_t jobs = s.images * s.tiles;
  if (jobs == 0) return;
  const dim3 threads(s.tile_size, s.tile_size);
  for_each_channel_pass(C, [&](int64_t c0, auto ch) {
    rasterize_forward_kernel<T, decltype(ch)::value><<<(unsigned)jobs, threads, 0, stream>>>(
        s, V, C, c0, c0 == 0, means2d, conics, depths, opacities, features, offsets, ids, out_features, out_depth,
        out_alpha, last_ids);
  });
}

template <typename T>
void rasterize_backward(const TileShape& s, int64_t V, int64_t C, const T* means2d, const T* conics,
                        const T* depths, const T* opacities, const T* features, const T* alpha,
                        const int32_t* last_ids, const int64_t* offsets, const int32_t* ids, const T* g_features,
                        const T* g_depth, const T* g_alpha, T* g_means2d, T* g_conics, T* g_depths, T* g_opacities,
                        T* g_feat, cudaStream_t stream) {
  const int64_t jobs = s.images * s.tiles;
  if (jobs == 0) return;
  const dim3 threads(s.tile_size, s.tile_size);
  for_each_channel_pass(C, [&](int64_t c0, auto ch) {
    rasterize_backward_kernel<T, decltype(ch)::value><<<(unsigned)jobs, threads, 0, stream>>>(
        s, V, C, c0, c0 == 0, means2d, conics, depths, opacities, features, alpha, last_ids, offsets, ids, g_features,
        g_depth, g_alpha, g_means2d, g_conics, g_depths, g_opacities, g_feat);
  });
}

#define GAUSSOCC_INSTANTIATE(T)                                                                                    \
  template void project_forward<T>(const T*, const T*, const T*, const T*, const T*, const T*, int64_t, int64_t,  \
                                   int64_t, int, int, T, T, T, bool, T*, T*, T*, int32_t*, cudaStream_t);           \
  template void project_backward<T>(const T*, const T*, const T*, const T*, const T*, const int32_t*, const T*,   \
                                    const T*, const T*, int64_t, int64_t, int64_t, int, int, T, bool, T*, T*, T*,  \
                                    cudaStream_t);                                                                 \
  template void count_tiles<T>(const T*, const int32_t*, const TileShape&, int64_t*, cudaStream_t);              \
  template void emit_intersections<T>(const T*, const int32_t*, const T*, const int64_t*, const TileShape&,       \
                                      int64_t*, int32_t*, cudaStream_t);                                           \
  template void refine_depth_ties<T>(const int64_t*, int64_t, const T*, const TileShape&, int32_t*, cudaStream_t); \
  template void rasterize_forward<T>(const TileShape&, int64_t, int64_t, const T*, const T*, const T*, const T*,  \
                                     const T*, const int64_t*, const int32_t*, T*, T*, T*, int32_t*,             \
                                     cudaStream_t);                                                                \
  template void rasterize_backward<T>(const TileShape&, int64_t, int64_t, const T*, const T*, const T*, const T*, \
                                      const T*, const T*, const int32_t*, const int64_t*, const int32_t*,         \
                                      const T*, const T*, const T*, T*, T*, T*, T*, T*, cudaStream_t);

GAUSSOCC_INSTANTIATE(float)
GAUSSOCC_INSTANTIATE(double)
#undef GAUSSOCC_INSTANTIATE

}  // namespace cuda
}  // namespace gaussocc
