// CUDA kernels of the radius_index ops: one thread per filed slot (atomic claims of table
// entries and list heads) and one thread per query (search shared with the CPU kernel).
#include "cuda/radius_index.h"
#include "gaussocc/radius_index_math.h"

namespace gaussocc {
namespace {

constexpr int kThreads = 128;
using ull = unsigned long long;

template <typename T>
__global__ void radius_index_insert_kernel(int64_t* __restrict__ table_keys, int64_t* __restrict__ table_heads,
                                           int64_t table_size, int64_t* __restrict__ node_slot,
                                           int64_t* __restrict__ node_next, int64_t* __restrict__ slot_node,
                                           int64_t* __restrict__ slot_cell, int64_t* __restrict__ node_count,
                                           const T* __restrict__ points, const int64_t* __restrict__ slots, int64_t m,
                                           double cell_size, bool moved_only) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= m) return;
  const int64_t s = slots[i];
  const int64_t key = index_point_key(points + 3 * s, cell_size);
  if (moved_only && slot_node[s] >= 0 && slot_cell[s] == key) return;
  int64_t e = index_hash(key, table_size);
  while (true) {
    const ull prev = atomicCAS(reinterpret_cast<ull*>(table_keys + e), static_cast<ull>(kIndexEmpty),
                               static_cast<ull>(key));
    if (prev == static_cast<ull>(kIndexEmpty) || prev == static_cast<ull>(key)) break;
    e = (e + 1) & (table_size - 1);
  }
  const int64_t node = static_cast<int64_t>(atomicAdd(reinterpret_cast<ull*>(node_count), static_cast<ull>(1)));
  node_slot[node] = s;
  node_next[node] = static_cast<int64_t>(atomicExch(reinterpret_cast<ull*>(table_heads + e), static_cast<ull>(node)));
  slot_node[s] = node;
  slot_cell[s] = key;
}

template <typename T>
__global__ void radius_index_query_kernel(const int64_t* __restrict__ table_keys,
                                          const int64_t* __restrict__ table_heads, int64_t table_size,
                                          const int64_t* __restrict__ node_slot, const int64_t* __restrict__ node_next,
                                          const int64_t* __restrict__ slot_node, const T* __restrict__ points,
                                          const T* __restrict__ queries, int64_t M, double cell_size, double radius,
                                          int64_t K, int64_t* __restrict__ idx, T* __restrict__ dist) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= M) return;
  const int64_t found = index_search_one<T>(queries + 3 * t, points, table_keys, table_heads, table_size, node_slot,
                                            node_next, slot_node, cell_size, radius, K, idx + K * t, dist + K * t);
  for (int64_t s = 0; s < found; ++s) dist[K * t + s] = sqrt(dist[K * t + s]);
}

unsigned int blocks_for(int64_t n) { return static_cast<unsigned int>((n + kThreads - 1) / kThreads); }

}  // namespace

template <typename T>
void launch_radius_index_insert(int64_t* table_keys, int64_t* table_heads, int64_t table_size,
                                int64_t* node_slot, int64_t* node_next, int64_t* slot_node, int64_t* slot_cell,
                                int64_t* node_count, const T* points, const int64_t* slots, int64_t m,
                                double cell_size, bool moved_only, cudaStream_t stream) {
  if (m == 0) return;
  radius_index_insert_kernel<T><<<blocks_for(m), kThreads, 0, stream>>>(table_keys, table_heads, table_size,
                                                                        node_slot, node_next, slot_node, slot_cell,
                                                                        node_count, points, slots, m, cell_size,
                                                                        moved_only);
}

template <typename T>
void launch_radius_index_query(const int64_t* table_keys, const int64_t* table_heads, int64_t table_size,
                               const int64_t* node_slot, const int64_t* node_next, const int64_t* slot_node,
                               const T* points, const T* queries, int64_t M, double cell_size, double radius,
                               int64_t K, int64_t* idx, T* dist, cudaStream_t stream) {
  if (M == 0) return;
  radius_index_query_kernel<T><<<blocks_for(M), kThreads, 0, stream>>>(table_keys, table_heads, table_size,
                                                                       node_slot, node_next, slot_node, points,
                                                                       queries, M, cell_size, radius, K, idx, dist);
}

#define GO_INSTANTIATE(T)                                                                                          \
  template void launch_radius_index_insert<T>(int64_t*, int64_t*, int64_t, int64_t*, int64_t*, int64_t*,    \
                                              int64_t*, int64_t*, const T*, const int64_t*, int64_t, double, \
                                              bool, cudaStream_t);                                           \
  template void launch_radius_index_query<T>(const int64_t*, const int64_t*, int64_t, const int64_t*,       \
                                             const int64_t*, const int64_t*, const T*, const T*, int64_t,    \
                                             double, double, int64_t, int64_t*, T*, cudaStream_t);
GO_INSTANTIATE(float)
GO_INSTANTIATE(double)
#undef GO_INSTANTIATE

}  // namespace gaussocc
