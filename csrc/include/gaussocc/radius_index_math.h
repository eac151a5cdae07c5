// An incrementally updated radius-search index, shared by the CPU and CUDA kernels.
//
// Space is cut into cubic cells of a fixed edge anchored at the world origin: cell
// (cx, cy, cz) = floor(x / edge) per axis, each clamped to [-2^20, 2^20) and packed into one
// non-negative int64 key. An open-addressing hash table (linear probing, power-of-two size, at
// most half full) maps a key to the head of a singly linked list of nodes; a node names one slot
// of the caller's point buffer. Filing a slot pushes a new node; moving or removing a slot only
// changes `slot_node[slot]`, so a node is live iff `slot_node[node_slot[node]] == node` and stale
// nodes are skipped by the search (lazy deletion; the caller rebuilds when they pile up).
//
// Clamping the cell coordinates is monotone, so a point within the search reach of a query always
// lies in one of the (clamped) cells the query visits; far-away points that share a clamped cell
// only cost time. The search returns exactly what radius_search_one returns on the live points.
#pragma once

#include <cmath>
#include <cstdint>

#include "gaussocc/common.h"
#include "gaussocc/radius_math.h"

namespace gaussocc {

constexpr int64_t kIndexCellBits = 21;
constexpr int64_t kIndexCellBias = int64_t(1) << (kIndexCellBits - 1);  // 2^20
constexpr int64_t kIndexCellMask = (int64_t(1) << kIndexCellBits) - 1;
constexpr int64_t kIndexEmpty = -1;  // empty table entry / no node

// Cell coordinate of x along one axis, clamped to [-2^20, 2^20 - 1]; NaN-free input assumed.
GO_HD int64_t index_cell_coord(double x, double edge) {
  double c = floor(x / edge);
  const double lo = -static_cast<double>(kIndexCellBias), hi = static_cast<double>(kIndexCellBias - 1);
  c = c < lo ? lo : (c > hi ? hi : c);
  return static_cast<int64_t>(c);
}

GO_HD int64_t index_pack_key(int64_t cx, int64_t cy, int64_t cz) {
  return ((cx + kIndexCellBias) << (2 * kIndexCellBits)) | ((cy + kIndexCellBias) << kIndexCellBits) |
         (cz + kIndexCellBias);
}

template <typename T>
GO_HD int64_t index_point_key(const T* p, double edge) {
  return index_pack_key(index_cell_coord(static_cast<double>(p[0]), edge),
                        index_cell_coord(static_cast<double>(p[1]), edge),
                        index_cell_coord(static_cast<double>(p[2]), edge));
}

// First probe position of a key in a table of `size` (a power of two) entries.
GO_HD int64_t index_hash(int64_t key, int64_t size) {
  uint64_t h = static_cast<uint64_t>(key);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return static_cast<int64_t>(h & static_cast<uint64_t>(size - 1));
}

// Table entry holding `key`, or -1. The table always has an empty entry, so probing ends.
GO_HD int64_t index_find(const int64_t* table_keys, int64_t size, int64_t key) {
  int64_t e = index_hash(key, size);
  while (true) {
    const int64_t k = table_keys[e];
    if (k == key) return e;
    if (k == kIndexEmpty) return -1;
    e = (e + 1) & (size - 1);
  }
}

// Nearest <= k live points within `radius` of query q (inclusive, `d2 <= radius^2` in precision
// T), nearest first, ties by the smaller slot: out_idx[k] (-1 padded) and out_d2[k] (squared
// distances, padding untouched). Returns the number found.
template <typename T>
GO_HD int64_t index_search_one(const T* q, const T* points, const int64_t* table_keys, const int64_t* table_heads,
                               int64_t table_size, const int64_t* node_slot, const int64_t* node_next,
                               const int64_t* slot_node, double edge, double radius, int64_t k, int64_t* out_idx,
                               T* out_d2) {
  for (int64_t s = 0; s < k; ++s) out_idx[s] = -1;
  if (k == 0) return 0;
  const T r2 = static_cast<T>(radius * radius);
  const double reach = radius * (1.0 + kRadiusReachSlack) + edge * kRadiusReachCellSlack;
  int64_t lo[3], hi[3];
  for (int a = 0; a < 3; ++a) {
    const double x = static_cast<double>(q[a]);
    lo[a] = index_cell_coord(x - reach, edge);
    hi[a] = index_cell_coord(x + reach, edge);
  }
  int64_t found = 0;
  for (int64_t cx = lo[0]; cx <= hi[0]; ++cx) {
    for (int64_t cy = lo[1]; cy <= hi[1]; ++cy) {
      for (int64_t cz = lo[2]; cz <= hi[2]; ++cz) {
        const int64_t e = index_find(table_keys, table_size, index_pack_key(cx, cy, cz));
        if (e < 0) continue;
        for (int64_t node = table_heads[e]; node != kIndexEmpty; node = node_next[node]) {
          const int64_t j = node_slot[node];
          if (slot_node[j] != node) continue;  // removed, or filed again under a newer node
          const T d2 = radius_dist2(q, points + 3 * j);
          if (d2 <= r2) radius_keep_nearest(d2, j, k, found, out_idx, out_d2);
        }
      }
    }
  }
  return found;
}

}  // namespace gaussocc
