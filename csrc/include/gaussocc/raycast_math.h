// Amanatides-Woo voxel traversal shared by the CPU and CUDA ray casters. No torch headers.
//
// A ray o + t d (d of unit length, t >= 0) is clipped to the grid box, then walked voxel by
// voxel; the first voxel whose label differs from `empty_label` is the hit. The hit distance is
// the t at which the ray enters that voxel (0 when the origin lies inside it).
#pragma once

#include <cmath>
#include <limits>

#include "gaussocc/common.h"

namespace gaussocc {

// The grid and the distance bound of one call in the kernels' dtype T (built on the host by the
// CPU kernel and the CUDA adapter): grid_origin and voxel_size rounded to T, max_distance clamped
// to T's largest finite value (an infinite bound stays a bound).
template <typename T>
struct RaycastGrid {
  T origin[3];
  T voxel_size[3];
  T max_distance;
};

template <typename T>
inline RaycastGrid<T> make_raycast_grid(const double* grid_origin, const double* voxel_size, double max_distance) {
  RaycastGrid<T> g;
  for (int a = 0; a < 3; ++a) {
    g.origin[a] = T(grid_origin[a]);
    g.voxel_size[a] = T(voxel_size[a]);
  }
  g.max_distance = max_distance > double(std::numeric_limits<T>::max()) ? std::numeric_limits<T>::max()
                                                                          : T(max_distance);
  return g;
}

template <typename T>
struct RayHit {
  T distance;     // entry distance of the hit voxel; only meaningful when label >= 0
  int64_t label;  // label of the hit voxel, -1 for a miss
};

// Clips the ray to the axis-aligned box [lower, upper]. Returns false when it misses the box
// for t >= 0; otherwise [t_enter, t_exit] is the part of the ray inside the box.
template <typename T>
GO_HD bool clip_ray_to_box(const T o[3], const T d[3], const T lower[3], const T upper[3],
                           T& t_enter, T& t_exit) {
  t_enter = T(0);
  t_exit = T(3.0e38);
  for (int a = 0; a < 3; ++a) {
    if (d[a] == T(0)) {
      if (o[a] < lower[a] || o[a] >= upper[a]) return false;
      continue;
    }
    T inv = T(1) / d[a];
    T t0 = (lower[a] - o[a]) * inv;
    T t1 = (upper[a] - o[a]) * inv;
    if (t0 > t1) {
      T tmp = t0;
      t0 = t1;
      t1 = tmp;
    }
    t_enter = t0 > t_enter ? t0 : t_enter;
    t_exit = t1 < t_exit ? t1 : t_exit;
  }
  return t_enter < t_exit;
}

// Walks the grid `labels` ([X, Y, Z], row-major) along the ray and returns the first voxel
// whose label is not `empty_label`, within distance `max_distance`.
template <typename T>
GO_HD RayHit<T> cast_ray(const int64_t* labels, const int64_t shape[3], const T grid_origin[3],
                         const T voxel_size[3], const T o[3], const T d[3], int64_t empty_label,
                         T max_distance) {
  RayHit<T> miss{T(0), -1};
  T lower[3], upper[3];
  for (int a = 0; a < 3; ++a) {
    lower[a] = grid_origin[a];
    upper[a] = grid_origin[a] + T(shape[a]) * voxel_size[a];
  }
  T t, t_exit;
  if (!clip_ray_to_box(o, d, lower, upper, t, t_exit)) return miss;
  if (t > max_distance) return miss;

  int64_t idx[3];
  int64_t step[3];
  T t_next[3], t_delta[3];
  for (int a = 0; a < 3; ++a) {
    // A start exactly on a voxel face belongs to the voxel the ray moves into.
    T g = (o[a] + t * d[a] - grid_origin[a]) / voxel_size[a];
    T g_floor = floor(g);
    int64_t i = static_cast<int64_t>(g_floor);
    if (d[a] < T(0) && g == g_floor) i -= 1;
    idx[a] = clamp_value<int64_t>(i, 0, shape[a] - 1);
    if (d[a] > T(0)) {
      step[a] = 1;
      t_next[a] = (grid_origin[a] + T(idx[a] + 1) * voxel_size[a] - o[a]) / d[a];
      t_delta[a] = voxel_size[a] / d[a];
    } else if (d[a] < T(0)) {
      step[a] = -1;
      t_next[a] = (grid_origin[a] + T(idx[a]) * voxel_size[a] - o[a]) / d[a];
      t_delta[a] = -voxel_size[a] / d[a];
    } else {
      step[a] = 0;
      t_next[a] = T(3.0e38);
      t_delta[a] = T(3.0e38);
    }
  }

  const int64_t max_steps = shape[0] + shape[1] + shape[2];
  for (int64_t s = 0; s <= max_steps; ++s) {
    int64_t label = labels[(idx[0] * shape[1] + idx[1]) * shape[2] + idx[2]];
    if (label != empty_label) {
      RayHit<T> hit{t, label};
      return hit;
    }
    T t_min = t_next[0] < t_next[1] ? t_next[0] : t_next[1];
    t_min = t_next[2] < t_min ? t_next[2] : t_min;
    t = t_min;
    if (t >= t_exit || t > max_distance) return miss;
    // Faces crossed at the same t are stepped together: a voxel touched only along an edge or
    // at a corner is never entered.
    for (int a = 0; a < 3; ++a) {
      if (t_next[a] != t_min) continue;
      idx[a] += step[a];
      if (idx[a] < 0 || idx[a] >= shape[a]) return miss;
      t_next[a] += t_delta[a];
    }
  }
  return miss;
}

}  // namespace gaussocc
