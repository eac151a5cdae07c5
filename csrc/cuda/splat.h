// What csrc/cuda/splat.cu exports: raw-pointer launchers of the splatting kernels. Plain C++
// (no torch), included by splat.cu and by the torch adapter splat_launch.cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gaussocc/splat_math.h"

namespace gaussocc {
namespace cuda {

// The tile grid of one launch; tile_size is splat::kTileSize (gaussocc/splat_math.h): a tile is
// one thread block of tile_size^2 = 256 threads.
struct TileShape {
  int64_t images, N;
  int width, height, tile_size;
  int64_t tiles_x, tiles_y, tiles;
};

template <typename T>
void project_forward(const T* means, const T* quats, const T* scales, const T* opacities, const T* viewmats,
                     const T* Ks, int64_t B, int64_t V, int64_t N, int width, int height, T near, T far, T eps2d,
                     bool ortho, T* means2d, T* conics, T* depths, int32_t* radii, cudaStream_t stream);

template <typename T>
void project_backward(const T* means, const T* quats, const T* scales, const T* viewmats, const T* Ks,
                      const int32_t* radii, const T* g_means2d, const T* g_conics, const T* g_depths, int64_t B,
                      int64_t V, int64_t N, int width, int height, T eps2d, bool ortho, T* g_means, T* g_quats,
                      T* g_scales, cudaStream_t stream);

// Binning, in steps so that the caller can allocate (and free) between them. Every (image,
// Gaussian) entry i = image * N + n gets its tile count; the entries are sorted by depth (one radix
// sort of images * N 32-bit keys, 64-bit for float64 depths: the exact depth order, ties by
// index); their intersections are emitted in that order with a 32-bit key, the global tile
// image * tiles + tile, and a stable radix sort of those keys groups them by tile while keeping
// the depth order inside each tile. Steps:
// 1. count_tiles: tiles touched per entry (int32);
// 2. depth_keys + sort_by_depth: the entries in depth order (int32 indices);
// 3. gather_counts + inclusive_scan: the end of each entry's intersections, in that order (int64);
// 4. emit_intersections: key (global tile, uint32) and value (Gaussian index n) per intersection;
// 5. sort_by_tile: stable radix sort of the pairs on the tile bits;
// 6. tile_ranges: per-tile ranges of the sorted list.
template <typename T>
void count_tiles(const T* means2d, const int32_t* radii, const TileShape& s, int32_t* counts, cudaStream_t stream);
// Depth sort keys: uint32 (float depths) or uint64 (double depths), see depth_key_bytes.
int depth_key_bytes(size_t depth_bytes);
template <typename T>
void depth_keys(const T* depths, int64_t n, void* keys, int32_t* index, cudaStream_t stream);
size_t depth_sort_temp_bytes(int64_t n, int key_bytes);
void sort_by_depth(const void* keys_in, void* keys_out, const int32_t* index_in, int32_t* index_out, int64_t n,
                   int key_bytes, void* temp, size_t temp_bytes, cudaStream_t stream);
void gather_counts(const int32_t* order, const int32_t* counts, int64_t n, int64_t* out, cudaStream_t stream);
size_t scan_temp_bytes(int64_t n);
void inclusive_scan(const int64_t* in, int64_t* out, int64_t n, void* temp, size_t temp_bytes, cudaStream_t stream);
template <typename T>
void emit_intersections(const T* means2d, const int32_t* radii, const int32_t* order, const int64_t* cum_counts,
                        const TileShape& s, uint32_t* keys, int32_t* values, cudaStream_t stream);
int tile_sort_end_bit(const TileShape& s);
size_t tile_sort_temp_bytes(int64_t n, int end_bit);
void sort_by_tile(const uint32_t* keys_in, uint32_t* keys_out, const int32_t* values_in, int32_t* values_out,
                  int64_t n, int end_bit, void* temp, size_t temp_bytes, cudaStream_t stream);
void tile_ranges(const uint32_t* sorted_keys, int64_t n, int64_t total_tiles, int64_t* offsets, cudaStream_t stream);

template <typename T>
void rasterize_forward(const TileShape& s, int64_t V, int64_t C, const T* means2d, const T* conics, const T* depths,
                       const T* opacities, const T* features, const int64_t* offsets, const int32_t* ids,
                       T* out_features, T* out_depth, T* out_alpha, int32_t* last_ids, cudaStream_t stream);

template <typename T>
void rasterize_backward(const TileShape& s, int64_t V, int64_t C, const splat::RasterBackwardArgs<T>& a,
                        cudaStream_t stream);

}  // namespace cuda
}  // namespace gaussocc
