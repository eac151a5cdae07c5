// CPU voxel ray caster: one Amanatides-Woo walk per ray (csrc/include/gaussocc/raycast_math.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>

#include "gaussocc/raycast_math.h"
#include "ops/raycast.h"

namespace gaussocc {
namespace {

std::tuple<at::Tensor, at::Tensor> raycast_cpu(const at::Tensor& labels, const at::Tensor& origins,
                                               const at::Tensor& directions, at::ArrayRef<double> grid_origin,
                                               at::ArrayRef<double> voxel_size, int64_t empty_label,
                                               double max_distance) {
  at::Tensor distance, hit_label;
  std::tie(distance, hit_label) = raycast_outputs(labels, origins, directions, grid_origin, voxel_size);
  const int64_t B = origins.size(0), R = origins.size(1);
  const int64_t shape[3] = {labels.size(1), labels.size(2), labels.size(3)};
  const int64_t voxels = shape[0] * shape[1] * shape[2];
  if (B * R == 0) return {distance, hit_label};

  AT_DISPATCH_FLOATING_TYPES(origins.scalar_type(), "raycast_cpu", [&] {
    const auto grid = make_raycast_grid<scalar_t>(grid_origin.data(), voxel_size.data(), max_distance);
    const int64_t* lab = labels.data_ptr<int64_t>();
    const scalar_t* o = origins.data_ptr<scalar_t>();
    const scalar_t* d = directions.data_ptr<scalar_t>();
    scalar_t* dist = distance.data_ptr<scalar_t>();
    int64_t* out = hit_label.data_ptr<int64_t>();
    at::parallel_for(0, B * R, 256, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / R;
        RayHit<scalar_t> hit = cast_ray<scalar_t>(lab + b * voxels, shape, grid.origin, grid.voxel_size, o + 3 * r,
                                                  d + 3 * r, empty_label, grid.max_distance);
        out[r] = hit.label;
        dist[r] = hit.label >= 0 ? hit.distance : std::numeric_limits<scalar_t>::infinity();
      }
    });
  });
  return {distance, hit_label};
}

}  // namespace

TORCH_LIBRARY_IMPL(gaussocc, CPU, m) { m.impl("raycast", &raycast_cpu); }

}  // namespace gaussocc
