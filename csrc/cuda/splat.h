// What csrc/cuda/splat.cu exports: raw-pointer launchers of the splatting kernels. Plain C++
// (no torch), included by splat.cu and by the torch adapter splat_launch.cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace gaussocc {
namespace cuda {

constexpr int kMaxTileSize = 16;  // a tile is one thread block of tile_size^2 <= 256 threads

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

// Binning, in steps so that the caller can allocate between them:
// 1. tiles touched per Gaussian, 2. inclusive scan of those counts (cub), 3. one 64-bit key
// (tile << 32 | depth rounded to float, as ordered bits) and value (Gaussian index) per
// intersection, 4. radix sort of the pairs (cub, stable), 5. for float64 depths, ties of the
// rounded depths sorted by the exact ones, 6. per-tile ranges of the sorted list.
template <typename T>
void count_tiles(const T* means2d, const int32_t* radii, const TileShape& s, int64_t* counts, cudaStream_t stream);
size_t scan_temp_bytes(int64_t n);
void inclusive_scan(const int64_t* in, int64_t* out, int64_t n, void* temp, size_t temp_bytes, cudaStream_t stream);
template <typename T>
void emit_intersections(const T* means2d, const int32_t* radii, const T* depths, const int64_t* cum_counts,
                        const TileShape& s, int64_t* keys, int32_t* values, cudaStream_t stream);
int sort_end_bit(const TileShape& s);
size_t sort_temp_bytes(int64_t n, int end_bit);
void sort_intersections(const int64_t* keys_in, int64_t* keys_out, const int32_t* values_in, int32_t* values_out,
                        int64_t n, int end_bit, void* temp, size_t temp_bytes, cudaStream_t stream);
template <typename T>
void refine_depth_ties(const int64_t* sorted_keys, int64_t n, const T* depths, const TileShape& s, int32_t* ids,
                       cudaStream_t stream);
void tile_ranges(const int64_t* sorted_keys, int64_t n, int64_t total_tiles, int64_t* offsets, cudaStream_t stream);

template <typename T>
void rasterize_forward(const TileShape& s, int64_t V, int64_t C, const T* means2d, const T* conics, const T* depths,
                       const T* opacities, const T* features, const int64_t* offsets, const int32_t* ids,
                       T* out_features, T* out_depth, T* out_alpha, int32_t* last_ids, cudaStream_t stream);

template <typename T>
void rasterize_backward(const TileShape& s, int64_t V, int64_t C, const T* means2d, const T* conics,
                        const T* depths, const T* opacities, const T* features, const T* alpha,
                        const int32_t* last_ids, const int64_t* offsets, const int32_t* ids, const T* g_features,
                        const T* g_depth, const T* g_alpha, T* g_means2d, T* g_conics, T* g_depths, T* g_opacities,
                        T* g_feat, cudaStream_t stream);

}  // namespace cuda
}  // namespace gaussocc
