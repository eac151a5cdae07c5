// CPU kernels of the radius_index ops: sequential filing, queries in parallel.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>

#include "gaussocc/radius_index_math.h"
#include "ops/radius_index.h"

namespace gaussocc {
namespace {

void radius_index_insert_cpu(const at::Tensor& table_keys, const at::Tensor& table_heads,
                             const at::Tensor& node_slot, const at::Tensor& node_next, const at::Tensor& slot_node,
                             const at::Tensor& slot_cell, const at::Tensor& node_count, const at::Tensor& points,
                             const at::Tensor& slots, double cell_size, bool moved_only) {
  check_radius_index_state("radius_index_insert", table_keys, table_heads, node_slot, node_next, slot_node, points,
                           cell_size);
  check_radius_index_insert(slot_cell, node_count, slot_node, slots);
  const int64_t S = table_keys.numel(), capacity = node_slot.numel(), P = points.size(0), m = slots.numel();
  int64_t* keys = table_keys.data_ptr<int64_t>();
  int64_t* heads = table_heads.data_ptr<int64_t>();
  int64_t* nslot = node_slot.data_ptr<int64_t>();
  int64_t* nnext = node_next.data_ptr<int64_t>();
  int64_t* snode = slot_node.data_ptr<int64_t>();
  int64_t* scell = slot_cell.data_ptr<int64_t>();
  int64_t* count = node_count.data_ptr<int64_t>();
  const int64_t* sp = slots.data_ptr<int64_t>();
  TORCH_CHECK(*count >= 0 && *count + m <= capacity, "radius_index_insert: ", m, " more nodes do not fit (",
              *count, " of ", capacity, " used)");
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "radius_index_insert_cpu", [&] {
    const scalar_t* pp = points.data_ptr<scalar_t>();
    for (int64_t i = 0; i < m; ++i) {
      const int64_t s = sp[i];
      TORCH_CHECK(s >= 0 && s < P, "radius_index_insert: slot ", s, " outside [0, ", P, ")");
      const int64_t key = index_point_key(pp + 3 * s, cell_size);
      if (moved_only && snode[s] >= 0 && scell[s] == key) continue;
      int64_t e = index_hash(key, S);
      for (int64_t probes = 0; keys[e] != key; ++probes) {
        TORCH_CHECK(probes < S, "radius_index_insert: the cell table is full");
        if (keys[e] == kIndexEmpty) {
          keys[e] = key;
          heads[e] = kIndexEmpty;
          break;
        }
        e = (e + 1) & (S - 1);
      }
      const int64_t node = (*count)++;
      nslot[node] = s;
      nnext[node] = heads[e];
      heads[e] = node;
      snode[s] = node;
      scell[s] = key;
    }
  });
}

std::tuple<at::Tensor, at::Tensor> radius_index_query_cpu(const at::Tensor& table_keys, const at::Tensor& table_heads,
                                                           const at::Tensor& node_slot, const at::Tensor& node_next,
                                                           const at::Tensor& slot_node, const at::Tensor& points,
                                                           const at::Tensor& queries, double cell_size, double radius,
                                                           int64_t max_neighbors) {
  const IndexQuery out = radius_index_query_outputs(table_keys, table_heads, node_slot, node_next, slot_node,
                                                    points, queries, cell_size, radius, max_neighbors);
  if (out.empty) return {out.idx, out.dist};
  const int64_t M = queries.size(0), K = max_neighbors, S = table_keys.numel();
  AT_DISPATCH_FLOATING_TYPES(queries.scalar_type(), "radius_index_query_cpu", [&] {
    const scalar_t* qp = queries.data_ptr<scalar_t>();
    const scalar_t* pp = points.data_ptr<scalar_t>();
    const int64_t* keys = table_keys.data_ptr<int64_t>();
    const int64_t* heads = table_heads.data_ptr<int64_t>();
    const int64_t* nslot = node_slot.data_ptr<int64_t>();
    const int64_t* nnext = node_next.data_ptr<int64_t>();
    const int64_t* snode = slot_node.data_ptr<int64_t>();
    int64_t* ip = out.idx.data_ptr<int64_t>();
    scalar_t* dp = out.dist.data_ptr<scalar_t>();
    // about 1 ms of work per chunk: a frame of a few thousand queries runs inline, without waking
    // the thread pool (on a loaded machine each parallel region waits for the scheduler)
    at::parallel_for(0, M, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t found = index_search_one<scalar_t>(qp + 3 * t, pp, keys, heads, S, nslot, nnext, snode,
                                                         cell_size, radius, K, ip + K * t, dp + K * t);
        for (int64_t s = 0; s < found; ++s) dp[K * t + s] = std::sqrt(dp[K * t + s]);
      }
    });
  });
  return {out.idx, out.dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CPU, m) {
  m.impl("radius_index_insert", &radius_index_insert_cpu);
  m.impl("radius_index_query", &radius_index_query_cpu);
}

}  // namespace gaussocc
