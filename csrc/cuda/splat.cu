// CUDA kernels of the splatting ops: projection, tile binning (two cub radix sorts) and a
// tile rasterizer (one thread block per tile, one thread per pixel) with explicit backward.
// The math is csrc/include/gaussocc/splat_math.h, shared with the CPU kernels.
#include <cub/cub.cuh>

#include "cuda/splat.h"
#include "gaussocc/splat_math.h"

namespace gaussocc {
namespace cuda {
namespace {

using namespace splat;

constexpr int kBlock = kTileSize * kTileSize;
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
  project_and_cull(means + (b * N + n) * 3, quats + (b * N + n) * 4, scales + (b * N + n) * 3, opac[b * N + n], cam,
                   near, far, eps2d, means2d + i * 2, conics + i * 3, depths + i, radii + i * 2);
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
__global__ void count_tiles_kernel(const T* means2d, const int32_t* radii, TileShape s, int32_t* counts) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= s.images * s.N) return;
  int64_t r[4];
  counts[i] = tile_rect(means2d + i * 2, radii + i * 2, s.tile_size, s.tiles_x, s.tiles_y, r)
                  ? (int32_t)((r[1] - r[0]) * (r[3] - r[2]))
                  : 0;
}

// The depth as unsigned bits whose order is the order of the depths: the sign bit set on
// positive values, every bit flipped on negative ones (an orthographic camera with a negative
// near plane keeps Gaussians at negative depths), -0 taken as +0. 32 bits for float depths,
// 64 for double ones, so the order is exact.
__device__ uint32_t depth_bits(float d) {
  const uint32_t b = __float_as_uint(d == 0.f ? 0.f : d);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ uint64_t depth_bits(double d) {
  const uint64_t b = (uint64_t)__double_as_longlong(d == 0.0 ? 0.0 : d);
  return (b & 0x8000000000000000ull) ? ~b : (b | 0x8000000000000000ull);
}

template <typename T>
__global__ void depth_keys_kernel(const T* depths, int64_t n, void* keys, int32_t* index) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if (sizeof(T) == sizeof(float)) {
    static_cast<uint32_t*>(keys)[i] = depth_bits(depths[i]);
  } else {
    static_cast<uint64_t*>(keys)[i] = depth_bits(depths[i]);
  }
  index[i] = (int32_t)i;
}

__global__ void gather_counts_kernel(const int32_t* order, const int32_t* counts, int64_t n, int64_t* out) {
  const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (j < n) out[j] = counts[order[j]];
}

// Entry j of the depth order writes its intersections at cum[j - 1] .. cum[j].
template <typename T>
__global__ void emit_kernel(const T* means2d, const int32_t* radii, const int32_t* order, const int64_t* cum,
                            TileShape s, uint32_t* keys, int32_t* values) {
  const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= s.images * s.N) return;
  const int64_t i = order[j];
  int64_t r[4];
  if (!tile_rect(means2d + i * 2, radii + i * 2, s.tile_size, s.tiles_x, s.tiles_y, r)) return;
  const int64_t img = i / s.N;
  const int32_t n = (int32_t)(i % s.N);
  int64_t out = (j == 0 ? 0 : cum[j - 1]);
  for (int64_t ty = r[2]; ty < r[3]; ++ty) {
    for (int64_t tx = r[0]; tx < r[1]; ++tx) {
      keys[out] = (uint32_t)(img * s.tiles + ty * s.tiles_x + tx);
      values[out] = n;
      ++out;
    }
  }
}

__global__ void tile_ranges_kernel(const uint32_t* keys, int64_t n, int64_t total_tiles, int64_t* offsets) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t tile = (int64_t)keys[i];
  const int64_t prev = i == 0 ? -1 : (int64_t)keys[i - 1];
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
void count_tiles(const T* means2d, const int32_t* radii, const TileShape& s, int32_t* counts, cudaStream_t stream) {
  const int64_t n = s.images * s.N;
  if (n == 0) return;
  count_tiles_kernel<T><<<blocks_for(n), kThreads1D, 0, stream>>>(means2d, radii, s, counts);
}

int depth_key_bytes(size_t depth_bytes) { return depth_bytes == sizeof(float) ? 4 : 8; }

template <typename T>
void depth_keys(const T* depths, int64_t n, void* keys, int32_t* index, cudaStream_t stream) {
  if (n == 0) return;
  depth_keys_kernel<T><<<blocks_for(n), kThreads1D, 0, stream>>>(depths, n, keys, index);
}

size_t depth_sort_temp_bytes(int64_t n, int key_bytes) {
  size_t bytes = 0;
  if (key_bytes == 4) {
    cub::DeviceRadixSort::SortPairs(nullptr, bytes, (const uint32_t*)nullptr, (uint32_t*)nullptr,
                                    (const int32_t*)nullptr, (int32_t*)nullptr, n);
  } else {
    cub::DeviceRadixSort::SortPairs(nullptr, bytes, (const uint64_t*)nullptr, (uint64_t*)nullptr,
                                    (const int32_t*)nullptr, (int32_t*)nullptr, n);
  }
  return bytes;
}

void sort_by_depth(const void* keys_in, void* keys_out, const int32_t* index_in, int32_t* index_out, int64_t n,
                   int key_bytes, void* temp, size_t temp_bytes, cudaStream_t stream) {
  if (n == 0) return;
  if (key_bytes == 4) {
    cub::DeviceRadixSort::SortPairs(temp, temp_bytes, static_cast<const uint32_t*>(keys_in),
                                    static_cast<uint32_t*>(keys_out), index_in, index_out, n, 0, 32, stream);
  } else {
    cub::DeviceRadixSort::SortPairs(temp, temp_bytes, static_cast<const uint64_t*>(keys_in),
                                    static_cast<uint64_t*>(keys_out), index_in, index_out, n, 0, 64, stream);
  }
}

void gather_counts(const int32_t* order, const int32_t* counts, int64_t n, int64_t* out, cudaStream_t stream) {
  if (n == 0) return;
  gather_counts_kernel<<<blocks_for(n), kThreads1D, 0, stream>>>(order, counts, n, out);
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
void emit_intersections(const T* means2d, const int32_t* radii, const int32_t* order, const int64_t* cum_counts,
                        const TileShape& s, uint32_t* keys, int32_t* values, cudaStream_t stream) {
  const int64_t n = s.images * s.N;
  if (n == 0) return;
  emit_kernel<T><<<blocks_for(n), kThreads1D, 0, stream>>>(means2d, radii, order, cum_counts, s, keys, values);
}

int tile_sort_end_bit(const TileShape& s) {
  int bits = 1;
  while (bits < 32 && (int64_t(1) << bits) < s.images * s.tiles) ++bits;
  return bits;
}

size_t tile_sort_temp_bytes(int64_t n, int end_bit) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, (const uint32_t*)nullptr, (uint32_t*)nullptr,
                                  (const int32_t*)nullptr, (int32_t*)nullptr, n, 0, end_bit);
  return bytes;
}

void sort_by_tile(const uint32_t* keys_in, uint32_t* keys_out, const int32_t* values_in, int32_t* values_out,
                  int64_t n, int end_bit, void* temp, size_t temp_bytes, cudaStream_t stream) {
  if (n == 0) return;
  // stable: inside a tile the intersections keep their emission order, the depth order
  cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out, values_in, values_out, n, 0, end_bit,
                                  stream);
}

void tile_ranges(const uint32_t* sorted_keys, int64_t n, int64_t total_tiles, int64_t* offsets, cudaStream_t stream) {
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
void rasterize_backward(const TileShape& s, int64_t V, int64_t C, const splat::RasterBackwardArgs<T>& a,
                        cudaStream_t stream) {
  const int64_t jobs = s.images * s.tiles;
  if (jobs == 0) return;
  const dim3 threads(s.tile_size, s.tile_size);
  for_each_channel_pass(C, [&](int64_t c0, auto ch) {
    rasterize_backward_kernel<T, decltype(ch)::value><<<(unsigned)jobs, threads, 0, stream>>>(
        s, V, C, c0, c0 == 0, a.means2d, a.conics, a.depths, a.opacities, a.features, a.alpha, a.last_ids, a.offsets,
        a.ids, a.g_out_features, a.g_out_depth, a.g_out_alpha, a.g_means2d, a.g_conics, a.g_depths, a.g_opacities,
        a.g_features);
  });
}

#define GAUSSOCC_INSTANTIATE(T)                                                                                    \
  template void project_forward<T>(const T*, const T*, const T*, const T*, const T*, const T*, int64_t, int64_t,  \
                                   int64_t, int, int, T, T, T, bool, T*, T*, T*, int32_t*, cudaStream_t);           \
  template void project_backward<T>(const T*, const T*, const T*, const T*, const T*, const int32_t*, const T*,   \
                                    const T*, const T*, int64_t, int64_t, int64_t, int, int, T, bool, T*, T*, T*,  \
                                    cudaStream_t);                                                                 \
  template void count_tiles<T>(const T*, const int32_t*, const TileShape&, int32_t*, cudaStream_t);              \
  template void depth_keys<T>(const T*, int64_t, void*, int32_t*, cudaStream_t);                                  \
  template void emit_intersections<T>(const T*, const int32_t*, const int32_t*, const int64_t*, const TileShape&, \
                                      uint32_t*, int32_t*, cudaStream_t);                                          \
  template void rasterize_forward<T>(const TileShape&, int64_t, int64_t, const T*, const T*, const T*, const T*,  \
                                     const T*, const int64_t*, const int32_t*, T*, T*, T*, int32_t*,             \
                                     cudaStream_t);                                                                \
  template void rasterize_backward<T>(const TileShape&, int64_t, int64_t, const splat::RasterBackwardArgs<T>&,   \
                                      cudaStream_t);

GAUSSOCC_INSTANTIATE(float)
GAUSSOCC_INSTANTIATE(double)
#undef GAUSSOCC_INSTANTIATE

}  // namespace cuda
}  // namespace gaussocc
