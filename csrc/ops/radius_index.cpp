// radius_index: a world-anchored cell hash over a caller-owned point buffer, updated in place
// (see csrc/include/gaussocc/radius_index_math.h and src/gaussocc_ops/radius_index.py).
#include "ops/radius_index.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

#include "ops/checks.h"

namespace gaussocc {
namespace {

// A 1-D int64 index array on the device of `points`.
void check_index_array(const char* op, const char* name, const at::Tensor& t, const at::Tensor& points) {
  check_dim(op, t, name, 1, "1-D");
  check_tensor(op, t, name, {t.size(0)}, at::kLong, points.device());
}

}  // namespace

void check_radius_index_state(const char* op, const at::Tensor& table_keys, const at::Tensor& table_heads,
                              const at::Tensor& node_slot, const at::Tensor& node_next,
                              const at::Tensor& slot_node, const at::Tensor& points, double cell_size) {
  check_dim(op, points, "points", 2, "[P, 3]");
  check_float_dtype(op, points, "points");
  check_tensor(op, points, "points", {points.size(0), 3}, points.scalar_type(), points.device());
  check_index_array(op, "table_keys", table_keys, points);
  check_index_array(op, "table_heads", table_heads, points);
  check_index_array(op, "node_slot", node_slot, points);
  check_index_array(op, "node_next", node_next, points);
  check_index_array(op, "slot_node", slot_node, points);
  const int64_t S = table_keys.numel();
  TORCH_CHECK(S > 0 && (S & (S - 1)) == 0, op, ": the table size must be a power of two, got ", S);
  TORCH_CHECK(table_heads.numel() == S, op, ": table_heads must have ", S, " entries, got ", table_heads.numel());
  TORCH_CHECK(node_next.numel() == node_slot.numel(), op, ": node_next and node_slot must have one size");
  TORCH_CHECK(slot_node.numel() >= points.size(0), op, ": slot_node must cover the ", points.size(0),
              " points, got ", slot_node.numel());
  TORCH_CHECK(std::isfinite(cell_size) && cell_size > 0, op, ": cell_size must be finite and > 0, got ",
              cell_size);
}

void check_radius_index_insert(const at::Tensor& slot_cell, const at::Tensor& node_count,
                               const at::Tensor& slot_node, const at::Tensor& slots) {
  const char* op = "radius_index_insert";
  check_index_array(op, "slot_cell", slot_cell, slot_node);
  check_index_array(op, "slots", slots, slot_node);
  check_tensor(op, slot_cell, "slot_cell", {slot_node.numel()}, at::kLong, slot_node.device());
  check_tensor(op, node_count, "node_count", {1}, at::kLong, slot_node.device());
}

IndexQuery radius_index_query_outputs(const at::Tensor& table_keys, const at::Tensor& table_heads,
                                      const at::Tensor& node_slot, const at::Tensor& node_next,
                                      const at::Tensor& slot_node, const at::Tensor& points, const at::Tensor& queries,
                                      double cell_size, double radius, int64_t max_neighbors) {
  const char* op = "radius_index_query";
  check_radius_index_state(op, table_keys, table_heads, node_slot, node_next, slot_node, points, cell_size);
  check_dim(op, queries, "queries", 2, "[M, 3]");
  const int64_t M = queries.size(0);
  check_tensor(op, queries, "queries", {M, 3}, points.scalar_type(), points.device());
  TORCH_CHECK(std::isfinite(radius) && radius >= 0, op, ": radius must be finite and >= 0, got ", radius);
  TORCH_CHECK(max_neighbors >= 0, op, ": max_neighbors must be >= 0, got ", max_neighbors);
  return {at::full({M, max_neighbors}, -1, queries.options().dtype(at::kLong)),
          at::full({M, max_neighbors}, std::numeric_limits<double>::infinity(), queries.options()),
          M == 0 || max_neighbors == 0 || points.size(0) == 0};
}

}  // namespace gaussocc

TORCH_LIBRARY_FRAGMENT(gaussocc, m) {
  // Files `slots` [m] (distinct) under the cells of points[slots]: each gets a new node
  // (node_count is advanced), slot_node/slot_cell record it. With moved_only, a slot already filed
  // under the cell it is in now is left alone. The caller guarantees node_slot has room for m
  // more nodes and that the table stays at most half full (S >= 2 * node capacity).
  m.def(
      "radius_index_insert(Tensor(a!) table_keys, Tensor(b!) table_heads, Tensor(c!) node_slot, "
      "Tensor(d!) node_next, Tensor(e!) slot_node, Tensor(f!) slot_cell, Tensor(g!) node_count, "
      "Tensor points, Tensor slots, float cell_size, bool moved_only) -> ()");
  // The nearest <= max_neighbors live slots within radius of each query [M, 3]: (slots [M, K] int64,
  // -1 padded; distances [M, K], inf padded), nearest first, ties by the smaller slot.
  m.def(
      "radius_index_query(Tensor table_keys, Tensor table_heads, Tensor node_slot, Tensor node_next, "
      "Tensor slot_node, Tensor points, Tensor queries, float cell_size, float radius, int max_neighbors) "
      "-> (Tensor, Tensor)");
}
