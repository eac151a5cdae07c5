// What csrc/cuda/radius.cu exports: the radius_neighbors search on raw device pointers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace gaussocc {

// queries [B, M, 3], points [B, N, 3], grid [B, 7], keys/order [B, N] (see ops/radius.h).
// Writes idx [B, M, K] (-1 padded) and dist [B, M, K] (Euclidean distances; padding untouched).
template <typename T>
void launch_radius_neighbors(const T* queries, const T* points, const double* grid, const int64_t* keys,
                             const int64_t* order, int64_t B, int64_t M, int64_t N, double radius, int64_t K,
                             int64_t* idx, T* dist, cudaStream_t stream);

}  // namespace gaussocc
