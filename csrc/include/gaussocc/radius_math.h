// Radius neighbour search on a sorted cell grid, shared by the CPU and CUDA kernels.
//
// Points are binned into cubic cells of edge `cell` over their bounding box; cell (cx, cy, cz)
// has the key (cx * dims_y + cy) * dims_z + cz, and the points are sorted by key. A query visits
// every cell within `reach` (the radius plus a rounding slack) of it: each (cx, cy) column of
// cells is one contiguous key range, found with one binary search.
#pragma once

#include <cmath>
#include <cstdint>

#include "gaussocc/common.h"

namespace gaussocc {

// Cells per axis are capped so that keys fit in int64 (dims_x * dims_y * dims_z < 2^62).
constexpr double kRadiusMaxCellsPerAxis = 1048574.0;  // 2^20 - 2
// Slack on the search reach: the kernels compare squared distances in the input precision, so a
// point may pass `d2 <= r2` while lying a rounding error beyond the radius (or, for radius 0, a
// distance that underflows to 0).
constexpr double kRadiusReachSlack = 1e-4;
constexpr double kRadiusReachCellSlack = 1e-6;

// Grid parameters of one batch: origin (3), cell edge, dims (3), stored as 7 doubles.
struct RadiusGrid {
  double origin[3];
  double cell;
  double dims[3];
};

GO_HD RadiusGrid load_radius_grid(const double* p) {
  RadiusGrid g;
  for (int a = 0; a < 3; ++a) {
    g.origin[a] = p[a];
    g.dims[a] = p[4 + a];
  }
  g.cell = p[3];
  return g;
}

// Cell coordinate of x along one axis, clamped to the grid (identical arithmetic to the keys).
GO_HD double radius_cell_coord(double x, double origin, double cell) { return floor((x - origin) / cell); }

GO_HD int64_t radius_lower_bound(const int64_t* keys, int64_t n, int64_t key) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (keys[mid] < key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// (d_a, i_a) before (d_b, i_b): nearer first, ties by smaller index.
template <typename T>
GO_HD bool radius_before(T d_a, int64_t i_a, T d_b, int64_t i_b) {
  return d_a < d_b || (d_a == d_b && i_a < i_b);
}

// Squared distance without fused multiply-add, so CPU, CUDA and the reference round alike.
template <typename T>
GO_HD T radius_dist2(const T* a, const T* b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) {
    const float dx = __fsub_rn(a[0], b[0]), dy = __fsub_rn(a[1], b[1]), dz = __fsub_rn(a[2], b[2]);
    return __fadd_rn(__fadd_rn(__fmul_rn(dx, dx), __fmul_rn(dy, dy)), __fmul_rn(dz, dz));
  } else {
    const double dx = __dsub_rn(a[0], b[0]), dy = __dsub_rn(a[1], b[1]), dz = __dsub_rn(a[2], b[2]);
    return __dadd_rn(__dadd_rn(__dmul_rn(dx, dx), __dmul_rn(dy, dy)), __dmul_rn(dz, dz));
  }
#else
  const T dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
  return (dx * dx + dy * dy) + dz * dz;
#endif
}

// Offers (d2, j) to the sorted list out_idx/out_d2 of the `found` nearest so far (at most k):
// inserted in (distance, index) order, the last entry dropped when the list is full.
template <typename T>
GO_HD void radius_keep_nearest(T d2, int64_t j, int64_t k, int64_t& found, int64_t* out_idx, T* out_d2) {
  int64_t pos;
  if (found < k) {
    pos = found++;
  } else if (radius_before(d2, j, out_d2[k - 1], out_idx[k - 1])) {
    pos = k - 1;
  } else {
    return;
  }
  while (pos > 0 && radius_before(d2, j, out_d2[pos - 1], out_idx[pos - 1])) {
    out_d2[pos] = out_d2[pos - 1];
    out_idx[pos] = out_idx[pos - 1];
    --pos;
  }
  out_d2[pos] = d2;
  out_idx[pos] = j;
}

// Nearest <= k points of `points` ([n, 3], sorted by `keys` through `order`) within `radius` of
// query q (inclusive, `d2 <= radius^2` in precision T). Writes out_idx[k] (-1 padded) and
// out_d2[k] (squared distances, padding untouched) and returns the number found.
template <typename T>
GO_HD int64_t radius_search_one(const T* q, const T* points, const int64_t* keys, const int64_t* order,
                                int64_t n, const RadiusGrid& g, double radius, int64_t k, int64_t* out_idx,
                                T* out_d2) {
  for (int64_t s = 0; s < k; ++s) out_idx[s] = -1;
  if (k == 0 || n == 0) return 0;
  const T r2 = static_cast<T>(radius * radius);
  const double reach = radius * (1.0 + kRadiusReachSlack) + g.cell * kRadiusReachCellSlack;
  double lo[3], hi[3];
  for (int a = 0; a < 3; ++a) {
    const double x = static_cast<double>(q[a]);
    lo[a] = radius_cell_coord(x - reach, g.origin[a], g.cell);
    hi[a] = radius_cell_coord(x + reach, g.origin[a], g.cell);
    lo[a] = lo[a] < 0.0 ? 0.0 : lo[a];
    hi[a] = hi[a] > g.dims[a] - 1.0 ? g.dims[a] - 1.0 : hi[a];
    if (!(lo[a] <= hi[a])) return 0;
  }
  const int64_t dy = static_cast<int64_t>(g.dims[1]), dz = static_cast<int64_t>(g.dims[2]);
  const int64_t z0 = static_cast<int64_t>(lo[2]), z1 = static_cast<int64_t>(hi[2]);
  int64_t found = 0;
  for (int64_t cx = static_cast<int64_t>(lo[0]); cx <= static_cast<int64_t>(hi[0]); ++cx) {
    for (int64_t cy = static_cast<int64_t>(lo[1]); cy <= static_cast<int64_t>(hi[1]); ++cy) {
      const int64_t column = (cx * dy + cy) * dz;
      const int64_t last_key = column + z1;
      for (int64_t s = radius_lower_bound(keys, n, column + z0); s < n && keys[s] <= last_key; ++s) {
        const int64_t j = order[s];
        const T d2 = radius_dist2(q, points + 3 * j);
        if (d2 <= r2) radius_keep_nearest(d2, j, k, found, out_idx, out_d2);
      }
    }
  }
  return found;
}

}  // namespace gaussocc
