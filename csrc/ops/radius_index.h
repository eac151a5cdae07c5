// Input checks of the radius_index ops, shared by the CPU kernels and the CUDA adapters.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace gaussocc {

// The index state (see ops/radius_index.cpp): table_keys/table_heads [S] (S a power of two),
// node_slot/node_next [Ncap], slot_node/slot_cell [P], node_count [1]; int64, contiguous, on the
// device of `points` [P, 3] (float32/float64, contiguous).
void check_radius_index_state(const char* op, const at::Tensor& table_keys, const at::Tensor& table_heads,
                              const at::Tensor& node_slot, const at::Tensor& node_next,
                              const at::Tensor& slot_node, const at::Tensor& points, double cell_size);

// slots [m] int64 contiguous on the device of `points`; for the insert, also slot_cell [P] and
// node_count [1].
void check_radius_index_insert(const at::Tensor& slot_cell, const at::Tensor& node_count,
                               const at::Tensor& slot_node, const at::Tensor& slots);

// A checked radius_index_query: its outputs filled with the padding, slots [M, K] = -1 (int64) and
// distances [M, K] = inf, and whether there is nothing to search (no query, no neighbour wanted,
// no point).
struct IndexQuery {
  at::Tensor idx, dist;
  bool empty;
};

// Checks the state (as above) and queries [M, 3] (the dtype and device of `points`; radius finite
// >= 0, max_neighbors >= 0) of a query; returns its outputs.
IndexQuery radius_index_query_outputs(const at::Tensor& table_keys, const at::Tensor& table_heads,
                                      const at::Tensor& node_slot, const at::Tensor& node_next,
                                      const at::Tensor& slot_node, const at::Tensor& points, const at::Tensor& queries,
                                      double cell_size, double radius, int64_t max_neighbors);

}  // namespace gaussocc
