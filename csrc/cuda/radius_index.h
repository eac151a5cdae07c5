// What csrc/cuda/radius_index.cu exports: filing and searching the radius index on raw device
// pointers (layout in ops/radius_index.cpp).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace gaussocc {

// Files slots [m] under the cells of points[slots]; node ids come from atomically advancing
// *node_count. The caller guarantees room for m more nodes and a table at most half full.
template <typename T>
void launch_radius_index_insert(int64_t* table_keys, int64_t* table_heads, int64_t table_size,
                                int64_t* node_slot, int64_t* node_next, int64_t* slot_node, int64_t* slot_cell,
                                int64_t* node_count, const T* points, const int64_t* slots, int64_t m,
                                double cell_size, bool moved_only, cudaStream_t stream);

// queries [M, 3]: writes idx [M, K] (-1 padded) and dist [M, K] (Euclidean; padding untouched).
template <typename T>
void launch_radius_index_query(const int64_t* table_keys, const int64_t* table_heads, int64_t table_size,
                               const int64_t* node_slot, const int64_t* node_next, const int64_t* slot_node,
                               const T* points, const T* queries, int64_t M, double cell_size, double radius,
                               int64_t K, int64_t* idx, T* dist, cudaStream_t stream);

}  // namespace gaussocc
